package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/certification"
	"github.com/galenadb/galena/groupcomm"
	"github.com/galenadb/galena/storage"
	"github.com/galenadb/galena/txn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/soheilhy/cmux"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Node is one running member. Its methods are safe for concurrent use.
type Node struct {
	cfg  Config
	lg   *zap.Logger
	addr string

	ln      net.Listener
	mux     cmux.CMux
	store   *storage.Store
	applier *certification.Applier
	group   *groupcomm.Group
	svc     *txn.Service
	grpc    *grpc.Server
	http    *http.Server

	fatal     chan error // receives the apply loop's fatal error, once
	fatalOnce sync.Once
	failed    atomic.Bool

	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

// New opens the member's storage, joins or bootstraps its cluster and starts
// serving. Close releases everything New acquired, including on error.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	cfg.Logger = cfg.Logger.With(zap.String("node", cfg.ID))
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	n := &Node{cfg: cfg, lg: cfg.Logger, fatal: make(chan error, 1)}
	if err := n.open(); err != nil {
		n.Close()
		return nil, err
	}
	n.serve()
	n.lg.Info("member started", zap.String("addr", n.addr), zap.Uint64("applied", n.applier.Applied()))
	return n, nil
}

func (n *Node) open() error {
	var err error
	if n.ln = n.cfg.Listener; n.ln == nil {
		if n.ln, err = net.Listen("tcp", n.cfg.Addr); err != nil {
			return fmt.Errorf("node: listen: %w", err)
		}
	}
	n.addr = n.cfg.advertise()
	sc := storage.DefaultConfig()
	sc.Dir, sc.Logger = filepath.Join(n.cfg.DataDir, "data"), n.lg.Named("storage")
	if n.store, err = storage.Open(sc); err != nil {
		return err
	}
	tc := n.cfg.txnConfig()
	tc.Window, tc.Logger = certification.DefaultWindow, n.lg.Named("txn")
	if n.svc, err = txn.New(tc, n.store, orderer{n}); err != nil {
		return err
	}
	ac := certification.ApplierConfig{Certification: certification.DefaultConfig(), Logger: n.lg.Named("certification"), OnOutcome: n.svc.OnOutcome}
	if n.applier, err = certification.NewApplier(ac, n.store); err != nil {
		return err
	}
	n.mux = cmux.New(n.ln)
	n.mux.SetReadTimeout(10 * time.Second)
	gcLn := n.mux.Match(groupcomm.Match)
	gc := n.cfg.groupConfig()
	gc.Logger, gc.Admit = n.lg.Named("groupcomm"), n.svc.Admit
	if n.group, err = groupcomm.New(gc, gcLn, n.applier, n.onFatal); err != nil {
		return err
	}
	return nil
}

// orderer lets the txn service reach the group, which is created after it.
type orderer struct{ n *Node }

func (o orderer) Broadcast(ctx context.Context, data []byte) (uint64, error) {
	if o.n.failed.Load() {
		return 0, groupcomm.ErrStopped
	}
	return o.n.group.Broadcast(ctx, data)
}
func (o orderer) WaitApplied(ctx context.Context, s uint64) error {
	return o.n.group.WaitApplied(ctx, s)
}
func (o orderer) Applied() uint64                               { return o.n.group.Applied() }
func (o orderer) ReadIndex(ctx context.Context) (uint64, error) { return o.n.group.ReadIndex(ctx) }

func (n *Node) onFatal(err error) {
	n.failed.Store(true)
	n.fatalOnce.Do(func() { n.fatal <- err })
}

// Fatal delivers the error that stopped the apply loop, if one ever does. The
// member then refuses commits; its process should exit.
func (n *Node) Fatal() <-chan error { return n.fatal }

// serve starts gRPC, HTTP and the connection multiplexer.
func (n *Node) serve() {
	grpcLn := n.mux.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
	httpLn := n.mux.Match(cmux.HTTP1Fast())
	max := n.cfg.Limits.MaxWriteSetSize + 1<<20
	n.grpc = grpc.NewServer(grpc.MaxRecvMsgSize(max), grpc.MaxSendMsgSize(max))
	galenapb.RegisterKVServer(n.grpc, txn.NewServer(n.svc, n.statusProto))
	n.http = &http.Server{Handler: n.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
	n.goTracked(func() { n.grpc.Serve(grpcLn) })
	n.goTracked(func() { n.http.Serve(httpLn) })
	n.goTracked(func() {
		if err := n.mux.Serve(); err != nil && !errors.Is(err, net.ErrClosed) {
			n.lg.Debug("listener stopped", zap.Error(err))
		}
	})
}

func (n *Node) goTracked(fn func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		fn()
	}()
}

// Addr is the address the member serves on.
func (n *Node) Addr() string { return n.addr }

// ID is the member's id.
func (n *Node) ID() string { return n.cfg.ID }

// Applied is the highest seqno applied on this member.
func (n *Node) Applied() uint64 { return n.applier.Applied() }

// Digest is the applied seqno and the running digest of every outcome
// applied up to it; members at the same seqno must have the same digest.
func (n *Node) Digest() (uint64, [32]byte) { return n.applier.Digest() }

// Close stops serving and releases everything, in reverse order of New:
// client traffic first, then the group, then storage. It is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.close() })
	return n.closeErr
}

func (n *Node) close() error {
	var errs []error
	if n.grpc != nil {
		stopped := make(chan struct{})
		go func() { n.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(n.cfg.ShutdownTimeout):
			n.grpc.Stop()
			<-stopped
		}
	}
	if n.http != nil {
		n.http.Close()
	}
	if n.group != nil {
		errs = append(errs, n.group.Close())
	}
	if n.mux != nil {
		n.mux.Close()
	}
	if n.ln != nil {
		n.ln.Close() // cmux does not close its root listener
	}
	n.wg.Wait()
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	n.lg.Info("member stopped")
	return errors.Join(errs...)
}
