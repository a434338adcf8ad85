package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/groupcomm"
	"github.com/galenadb/galena/txn"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// roundTrips is what each error of statusTable becomes for a caller of the
// client: of a read, and of a membership change. A change that may have
// been made when the status came (no refusal reason) is indeterminate.
var roundTrips = map[error]struct{ read, change error }{
	txn.ErrInvalidKey:          {client.ErrInvalidKey, client.ErrInvalidKey},
	txn.ErrTooLarge:            {client.ErrTooLarge, client.ErrTooLarge},
	txn.ErrInvalidWriteSet:     {client.ErrInvalidArgument, client.ErrInvalidArgument},
	txn.ErrInvalidArgument:     {client.ErrInvalidArgument, client.ErrInvalidArgument},
	txn.ErrSnapshotTooOld:      {client.ErrSnapshotTooOld, client.ErrSnapshotTooOld},
	txn.ErrSnapshotUnavailable: {client.ErrSnapshotUnavailable, client.ErrSnapshotUnavailable},
	txn.ErrNotPrimary:          {client.ErrNotPrimary, client.ErrNotPrimary},
	txn.ErrIndeterminate:       {client.ErrIndeterminate, client.ErrIndeterminate},
	txn.ErrShuttingDown:        {client.ErrUnavailable, client.ErrUnavailable},
	txn.ErrOverloaded:          {client.ErrOverloaded, client.ErrOverloaded},
	txn.ErrNoSpace:             {client.ErrNoSpace, client.ErrNoSpace},
	txn.ErrWatchBehind:         {client.ErrWatchBehind, client.ErrWatchBehind},

	groupcomm.ErrMemberExists:  {client.ErrMemberExists, client.ErrMemberExists},
	groupcomm.ErrUnknownMember: {client.ErrMemberNotFound, client.ErrMemberNotFound},
	groupcomm.ErrLastVoter:     {client.ErrMemberRefused, client.ErrMemberRefused},
	errOtherCluster:            {client.ErrMemberRefused, client.ErrMemberRefused},
	errInvalidChange:           {client.ErrInvalidArgument, client.ErrInvalidArgument},
	errDuplicateWatch:          {client.ErrInvalidArgument, client.ErrInvalidArgument},
	groupcomm.ErrNotLeader:     {client.ErrNotPrimary, client.ErrNotPrimary},
	groupcomm.ErrNotPrimary:    {client.ErrNotPrimary, client.ErrNotPrimary},
	groupcomm.ErrIndeterminate: {client.ErrIndeterminate, client.ErrIndeterminate},
	groupcomm.ErrClosed:        {client.ErrUnavailable, client.ErrIndeterminate},
	groupcomm.ErrArbitrator:    {client.ErrInvalidArgument, client.ErrInvalidArgument},

	context.DeadlineExceeded: {context.DeadlineExceeded, client.ErrIndeterminate},
	context.Canceled:         {context.Canceled, client.ErrIndeterminate},
}

// refusing answers every Get and MemberRemove with err, as the services
// map it.
type refusing struct {
	galenapb.UnimplementedKVServer
	galenapb.UnimplementedClusterServer
	mu  sync.Mutex
	err error
}

func (r *refusing) set(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

func (r *refusing) refusal() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return toStatus(r.err)
}

func (r *refusing) Get(context.Context, *galenapb.GetRequest) (*galenapb.GetResponse, error) {
	return nil, r.refusal()
}

func (r *refusing) MemberRemove(context.Context, *galenapb.MemberRemoveRequest) (*galenapb.MemberRemoveResponse, error) {
	return nil, r.refusal()
}

// serveRefusing serves a refusing member on a loopback port until the test
// ends, and returns it with a client of it.
func serveRefusing(t *testing.T) (*refusing, *client.Client) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r, srv := &refusing{}, grpc.NewServer()
	galenapb.RegisterKVServer(srv, r)
	galenapb.RegisterClusterServer(srv, r)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	cfg := client.DefaultConfig()
	cfg.Endpoints, cfg.Logger, cfg.NoLeaderWait = []string{lis.Addr().String()}, zaptest.NewLogger(t), true
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return r, c
}

// Every error of the table reaches a caller of the client as its sentinel,
// with the server's message, through the one table on each side.
func TestStatusTableRoundTrips(t *testing.T) {
	r, c := serveRefusing(t)
	for _, row := range statusTable {
		want, ok := roundTrips[row.err]
		if !ok {
			t.Errorf("%v: no round trip listed: say what the client makes of it", row.err)
			continue
		}
		t.Run(row.err.Error(), func(t *testing.T) {
			r.set(fmt.Errorf("%w: server says why", row.err))
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			_, err := c.Get(ctx, []byte("k"))
			if !errors.Is(err, want.read) || !strings.Contains(err.Error(), "server says why") {
				t.Fatalf("Get = %v; want %v with the server's message", err, want.read)
			}
			err = c.RemoveMember(ctx, "n1")
			if !errors.Is(err, want.change) || !strings.Contains(err.Error(), "server says why") {
				t.Fatalf("RemoveMember = %v; want %v with the server's message", err, want.change)
			}
		})
	}
}

// Each row maps its error, however wrapped, to its code and reason, and the
// message is the error's; what the table does not know is Internal.
func TestStatusTable(t *testing.T) {
	for _, row := range statusTable {
		st := status.Convert(toStatus(errors.Join(row.err, errors.New("detail"))))
		if st.Code() != row.code || !strings.Contains(st.Message(), "detail") {
			t.Fatalf("%v → %v %q", row.err, st.Code(), st.Message())
		}
		if got := reasonOf(st.Err()); got != row.reason {
			t.Fatalf("%v carries reason %q, want %q", row.err, got, row.reason)
		}
	}
	if status.Code(toStatus(errors.New("boom"))) != codes.Internal {
		t.Fatal("an unknown error is not Internal")
	}
	if toStatus(nil) != nil {
		t.Fatal("no error is not OK")
	}
}
