package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/galenadb/galena/certification"
	"github.com/galenadb/galena/certification/apply"
	"github.com/galenadb/galena/groupcomm"
	"github.com/galenadb/galena/storage"
	"github.com/galenadb/galena/txn"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	gmprom "github.com/hashicorp/go-metrics/compat/prometheus"
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
	applier *apply.Applier
	group   *groupcomm.Group
	svc     *txn.Service
	conns   peerConns // to other members' Cluster service, for Applied
	grpc    *grpc.Server
	http    *http.Server
	plainLn net.Listener // MetricsAddr's; nil without it
	plain   *http.Server

	clusterID  uint64
	fatal      chan error // receives the apply loop's fatal error, once
	fatalOnce  sync.Once
	failure    atomic.Pointer[error]           // why the member stopped
	joining    atomic.Bool                     // catching up before it can serve (see monitor)
	members    atomic.Pointer[map[string]bool] // ids in the configuration, as monitor last saw it
	announce   chan certification.Checkpoint
	quotaBytes atomic.Int64 // a data member's space quota (see spaceLoop)
	dataBytes  atomic.Int64 // what its data directory held when last measured
	// certNotAfter is when the member's TLS certificate expires (Unix
	// seconds), 0 without TLS.
	certNotAfter atomic.Int64
	// started is set once New has succeeded: Close says the member stopped
	// only then.
	started bool
	ctx     context.Context // cancelled by Close: ends the member's own goroutines and calls
	cancel  context.CancelFunc

	registered  []prometheus.Collector // on cfg.Registerer until Close
	certifyTime prometheus.Histogram
	grpcMetrics *grpcprom.ServerMetrics
	raftSink    *gmprom.PrometheusSink // with Config.RaftMetrics

	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

// New opens the member's storage, joins or bootstraps its cluster and starts
// serving. Close releases everything New acquired, including on error. A
// member whose data directory records that it stopped for good (it
// diverged, or was removed) starts FAILED instead: it serves only its
// status until an operator resets it.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		if cfg.Listener != nil {
			cfg.Listener.Close() // given to the member: closed on every error
		}
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	cfg.Logger = cfg.Logger.With(zap.String("node", cfg.ID))
	cfg.secure()
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	n := &Node{cfg: cfg, lg: cfg.Logger, fatal: make(chan error, 1),
		announce: make(chan certification.Checkpoint, 4), certifyTime: newCertifyHistogram(), grpcMetrics: newGRPCMetrics()}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	// Everything that can refuse the data directory or the configuration
	// runs before anything on disk is created or changed.
	v, failed, err := readVerdict(cfg.DataDir)
	if err == nil && failed {
		if err := n.startFailed(v); err != nil {
			n.Close()
			return nil, err
		}
		n.started = true
		return n, nil
	}
	if err == nil {
		n.clusterID, err = cfg.resolveCluster(n.ctx)
	}
	if err != nil {
		n.cancel()
		if cfg.Listener != nil {
			cfg.Listener.Close()
		}
		return nil, err
	}
	if cfg.RaftMetrics {
		if n.raftSink, err = installRaftMetrics(cfg.Registerer); err != nil {
			n.Close()
			return nil, err
		}
	}
	if err := n.open(); err != nil {
		n.Close()
		return nil, err
	}
	if err := n.registerMetrics(); err != nil {
		n.Close()
		return nil, err
	}
	n.joining.Store(cfg.Join != "") // until monitor finds this member caught up
	n.serve()
	n.goTracked(n.monitor)
	if !cfg.Arbitrator {
		n.goTracked(n.announceLoop)
		n.goTracked(n.spaceLoop)
	}
	n.lg.Info("member started", zap.String("addr", n.addr), zap.String("cluster", groupcomm.FormatClusterID(n.clusterID)),
		zap.Bool("arbitrator", cfg.Arbitrator), zap.Uint64("applied", n.group.Applied()))
	n.started = true
	return n, nil
}

// listen opens the member's listener (TLS, when configured, wraps it).
func (n *Node) listen() error {
	var err error
	if n.ln = n.cfg.Listener; n.ln == nil {
		if n.ln, err = net.Listen("tcp", n.cfg.Addr); err != nil {
			return fmt.Errorf("node: listen: %w", err)
		}
	}
	n.secureListener()
	n.addr = n.cfg.advertise()
	if n.cfg.MetricsAddr != "" {
		if n.plainLn, err = net.Listen("tcp", n.cfg.MetricsAddr); err != nil {
			return fmt.Errorf("node: listen for metrics: %w", err)
		}
	}
	return nil
}

func (n *Node) open() error {
	err := n.listen()
	if err != nil {
		return err
	}
	if err := writeClusterID(n.cfg.DataDir, n.clusterID); err != nil {
		return err
	}
	gc := n.cfg.groupConfig()
	gc.Logger, gc.ClusterID = n.lg.Named("groupcomm"), n.clusterID
	gc.Peers, gc.OnRemoved = clusterPeers{n}, n.removed
	if n.cfg.Arbitrator {
		// No user data: the txn service only admits forwarded entries while
		// this member leads, and refuses clients.
		if n.svc, err = txn.New(n.txnConfig(), nil, orderer{n}); err != nil {
			return err
		}
		gc.Admit = n.svc.Admit
		n.mux = cmux.New(n.ln)
		n.mux.SetReadTimeout(10 * time.Second)
		n.group, err = groupcomm.New(gc, n.mux.Match(groupcomm.Match), nil, n.onFatal)
		return err
	}
	quota, err := n.cfg.quota()
	if err != nil {
		return err
	}
	n.quotaBytes.Store(quota)
	sc := n.cfg.storageConfig()
	sc.Logger = n.lg.Named("storage")
	if n.store, err = storage.Open(sc); err != nil {
		return err
	}
	if n.svc, err = txn.New(n.txnConfig(), txnStore{n.store}, orderer{n}); err != nil {
		return err
	}
	ac := n.cfg.applyConfig()
	ac.Logger, ac.OnOutcome = n.lg.Named("certification"), n.svc.OnOutcome
	ac.OnApplied, ac.OnRestored = n.svc.OnApplied, n.svc.OnRestored
	ac.OnCheckpoint, ac.IsMember, ac.TimeCertify = n.onCheckpoint, n.isMember, n.timeCertify
	if n.applier, err = apply.New(ac, n.store); err != nil {
		return err
	}
	n.mux = cmux.New(n.ln)
	n.mux.SetReadTimeout(10 * time.Second)
	gc.Admit = n.svc.Admit
	if n.group, err = groupcomm.New(gc, n.mux.Match(groupcomm.Match), n.applier, n.onFatal); err != nil {
		return err
	}
	return nil
}

// txnConfig is the transaction service's configuration.
func (n *Node) txnConfig() txn.Config {
	tc := n.cfg.txnConfig()
	tc.Logger = n.lg.Named("txn")
	return tc
}

// orderer lets the txn service reach the group, which is created after it.
type orderer struct{ n *Node }

func (o orderer) Broadcast(ctx context.Context, data []byte) (uint64, error) {
	if o.n.stopped() != nil {
		return 0, groupcomm.ErrStopped
	}
	return o.n.group.Broadcast(ctx, data)
}
func (o orderer) WaitApplied(ctx context.Context, s uint64) error {
	return o.n.group.WaitApplied(ctx, s)
}
func (o orderer) Applied() uint64                               { return o.n.group.Applied() }
func (o orderer) ReadIndex(ctx context.Context) (uint64, error) { return o.n.group.ReadIndex(ctx) }
func (o orderer) WaitIndex(ctx context.Context, idx uint64) (uint64, error) {
	return o.n.group.WaitIndex(ctx, idx)
}
func (o orderer) Serving(stale bool) error { return o.n.serving(stale) }

// serving says whether the member may serve clients now. It is on every
// read's path, so it only reads flags.
func (n *Node) serving(stale bool) error {
	switch err := n.stopped(); {
	case err != nil:
		return fmt.Errorf("%w: this member stopped: %v", txn.ErrShuttingDown, err)
	case n.cfg.Arbitrator:
		return fmt.Errorf("%w: %s is an arbitrator and stores no data; use a data member", txn.ErrNotPrimary, n.cfg.ID)
	case n.joining.Load() || n.group.Restoring():
		return fmt.Errorf("%w: %s is %s: still catching up with the cluster", txn.ErrNotPrimary, n.cfg.ID, StateJoining)
	case !stale && !n.group.Primary():
		return fmt.Errorf("%w: %s has no live leader in a majority; allow stale reads to read its local state", txn.ErrNotPrimary, n.cfg.ID)
	}
	return nil
}

// onFatal stops the member for good; the first reason is the one kept and
// delivered by Fatal. A divergence or a removal is recorded in the data
// directory, so that the member stays out after a restart.
func (n *Node) onFatal(err error) {
	if n.failure.CompareAndSwap(nil, &err) {
		if v, ok := verdictOf(err); ok {
			if werr := writeVerdict(n.cfg.DataDir, v); werr != nil {
				n.lg.Error("could not record why this member stopped; it would serve again after a restart", zap.Error(werr))
			}
		}
	}
	n.fatalOnce.Do(func() { n.fatal <- err })
}

// startFailed starts a member whose data directory records that it
// stopped for good (see verdictFile): it opens neither storage nor the
// group, so it takes no part in the cluster, and it serves its status
// (FAILED, with the reason and how to reset it) and refuses everything
// else.
func (n *Node) startFailed(v verdict) error {
	stopped := v.err(n.cfg.ID, n.cfg.DataDir)
	n.failure.Store(&stopped)
	err := n.listen()
	if err != nil {
		return err
	}
	if n.clusterID, _, err = readClusterID(n.cfg.DataDir); err != nil {
		return err
	}
	if n.svc, err = txn.New(n.txnConfig(), nil, orderer{n}); err != nil {
		return err
	}
	n.mux = cmux.New(n.ln)
	n.mux.SetReadTimeout(10 * time.Second)
	n.serve()
	n.lg.Error("this member stopped for good earlier; it serves only its status", zap.String("addr", n.addr), zap.Error(stopped))
	return nil
}

// stopped is why the member stopped, or nil while it runs.
func (n *Node) stopped() error {
	if err := n.failure.Load(); err != nil {
		return *err
	}
	return nil
}

// removed stops a member that is no longer in the configuration, unless
// it already stopped.
func (n *Node) removed() {
	if n.stopped() != nil {
		return
	}
	n.lg.Warn("this member was removed from the cluster; it no longer serves")
	n.onFatal(ErrRemoved)
}

// Fatal delivers the error that stopped the member, if one ever does: its
// apply loop failed (its state diverged or cannot be trusted), or it was
// removed from the cluster (ErrRemoved). The member then refuses clients; its
// process should exit. A divergence or a removal is recorded in the data
// directory first, so the member stays out if it is started again.
func (n *Node) Fatal() <-chan error { return n.fatal }

// serve starts gRPC, HTTP and the connection multiplexer.
func (n *Node) serve() {
	grpcLn := n.mux.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
	httpLn := n.mux.Match(cmux.HTTP1Fast())
	n.grpc = grpc.NewServer(append(n.grpcOptions(), n.securityOptions()...)...)
	n.registerServices(n.grpc)
	n.grpcMetrics.InitializeMetrics(n.grpc)
	n.http = &http.Server{Handler: n.httpHandler(), ReadHeaderTimeout: 10 * time.Second, ConnContext: httpConnContext}
	n.goTracked(func() { n.grpc.Serve(grpcLn) })
	n.goTracked(func() { n.http.Serve(httpLn) })
	if n.plainLn != nil {
		n.plain = &http.Server{Handler: n.plainHandler(), ReadHeaderTimeout: 10 * time.Second}
		n.goTracked(func() { n.plain.Serve(n.plainLn) })
	}
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

// MetricsAddr is the address of the plaintext metrics listener
// (Config.MetricsAddr, with the port it got), or "" without one.
func (n *Node) MetricsAddr() string {
	if n.plainLn == nil {
		return ""
	}
	return n.plainLn.Addr().String()
}

// ID is the member's id.
func (n *Node) ID() string { return n.cfg.ID }

// Applied is the highest seqno applied on this member (0 on a member
// started failed, which opens no state).
func (n *Node) Applied() uint64 {
	if n.group == nil {
		return 0
	}
	return n.group.Applied()
}

// Digest is the applied seqno and the running digest of every outcome
// applied up to it; members at the same seqno must have the same digest. An
// arbitrator has none.
func (n *Node) Digest() (uint64, [32]byte) {
	if n.applier == nil {
		return n.Applied(), [32]byte{}
	}
	at, d := n.applier.Digest()
	return at.Seqno, d
}

// Close stops the member gracefully and releases everything, in reverse
// order of New. It first refuses new commits (ErrShuttingDown, gRPC
// Unavailable, so clients move to another member) and lets those in flight
// finish, then hands leadership over if the member leads, so the others
// need not wait out an election timeout; then it stops client traffic, the
// group and storage. In-flight requests get ShutdownTimeout in all; the
// leadership transfer, at most an election timeout. It is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.close() })
	return n.closeErr
}

func (n *Node) close() error {
	deadline := time.Now().Add(n.cfg.ShutdownTimeout)
	n.handOver(deadline)
	n.cancel()
	n.unregisterMetrics()
	var errs []error
	if n.grpc != nil {
		stopped := make(chan struct{})
		go func() { n.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(time.Until(deadline)):
			n.grpc.Stop()
			<-stopped
		}
	}
	if n.http != nil {
		n.http.Close()
	}
	if n.plain != nil {
		n.plain.Close()
	}
	if n.plainLn != nil {
		n.plainLn.Close() // when the member failed before serving it
	}
	if n.group != nil {
		errs = append(errs, n.group.Close())
	}
	n.conns.reset(true) // after the group: its policy asks through them
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
	if n.raftSink != nil {
		uninstallRaftMetrics(n.cfg.Registerer, n.raftSink)
	}
	if n.started {
		n.lg.Info("member stopped")
	}
	return errors.Join(errs...)
}

// handOver prepares a running member to stop without disturbing the
// cluster: it refuses new commits, waits until deadline for those in flight,
// and hands leadership over if this member leads.
func (n *Node) handOver(deadline time.Time) {
	if n.svc == nil || n.group == nil {
		return // New failed before the member served
	}
	n.lg.Info("stopping: refusing new commits, finishing those in flight")
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := n.svc.Drain(ctx); err != nil {
		n.lg.Warn("stopping with commits still in flight", zap.Duration("waited", n.cfg.ShutdownTimeout), zap.Error(err))
	}
	if n.stopped() != nil {
		return
	}
	// Raft bounds the transfer by its election timeout, whatever is left
	// of the deadline.
	if err := n.group.TransferLeadership(n.ctx); err != nil {
		n.lg.Warn("could not hand leadership over; the others elect a leader after their election timeout", zap.Error(err))
	}
}
