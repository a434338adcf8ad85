package client

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/protobuf/proto"

	"github.com/galenadb/galena/api"
	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/security"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newTestClient returns a Client of addrs, closed when the test ends, once
// it has connected to them (or failed to), so that its calls try the
// endpoints in the order given.
func newTestClient(t *testing.T, addrs ...string) *Client {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Endpoints = addrs
	cfg.Logger = zaptest.NewLogger(t)
	cfg.DialTimeout = 2 * time.Second
	c := newClientCfg(t, cfg)
	waitConnected(t, c)
	return c
}

// waitConnected waits until none of c's connections is idle or still
// connecting.
func waitConnected(t *testing.T, c *Client) {
	t.Helper()
	ctx := testCtx(t)
	for _, ep := range c.endpoints {
		ep.conn.Connect()
		for s := ep.conn.GetState(); s == connectivity.Idle || s == connectivity.Connecting; s = ep.conn.GetState() {
			if !ep.conn.WaitForStateChange(ctx, s) {
				t.Fatalf("endpoint %s still %v", ep.addr, s)
			}
		}
	}
}

func newClientCfg(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// testCtx is a context that ends with the test, at the latest in 10 s.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	return addr
}

func addrsOf(nodes []*fakeNode) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.addr)
	}
	return out
}

func mustPut(t *testing.T, c *Client, k, v string) {
	t.Helper()
	if err := c.Put(testCtx(t), []byte(k), []byte(v)); err != nil {
		t.Fatalf("Put(%q): %v", k, err)
	}
}

func wantValue(t *testing.T, c *Client, k, want string) {
	t.Helper()
	got, err := c.Get(testCtx(t), []byte(k))
	if err != nil || string(got) != want {
		t.Fatalf("Get(%q) = %q, %v; want %q", k, got, err, want)
	}
}

func lastReq[T proto.Message](t *testing.T, n *fakeNode, method string) T {
	t.Helper()
	calls := n.callsOf(method)
	if len(calls) == 0 {
		t.Fatalf("node %s received no %s", n.addr, method)
	}
	return calls[len(calls)-1].(T)
}

// expiredTLS is a client configuration whose certificate has expired.
func expiredTLS(t *testing.T) *tls.Config {
	t.Helper()
	ca, err := security.NewCA(0)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := ca.Issue(security.Leaf{Name: "late", Role: security.RoleRead, ValidFor: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pair.TLS()
	if err != nil {
		t.Fatal(err)
	}
	return security.ClientConfig(&cert, ca.Pool())
}

func TestNewValidatesConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no endpoints", Config{}},
		{"empty endpoint", Config{Endpoints: []string{""}}},
		{"negative dial timeout", Config{Endpoints: []string{"a:1"}, DialTimeout: -1}},
		{"negative call size", Config{Endpoints: []string{"a:1"}, MaxCallSize: -1}},
		{"negative backoff", Config{Endpoints: []string{"a:1"}, ConflictBackoff: -1}},
		{"negative retries", Config{Endpoints: []string{"a:1"}, MaxConflictRetries: -1}},
		{"expired certificate", Config{Endpoints: []string{"a:1"}, TLS: expiredTLS(t)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.cfg)
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("New = %v, %v; want ErrInvalidArgument", c, err)
			}
		})
	}
}

func TestNewAppliesDefaultsAndCopies(t *testing.T) {
	eps := []string{"127.0.0.1:1"}
	c := newClientCfg(t, Config{Endpoints: eps})
	eps[0] = "changed:1"
	want := DefaultConfig()
	if c.cfg.DialTimeout != want.DialTimeout || c.cfg.MaxCallSize != want.MaxCallSize ||
		c.cfg.ConflictBackoff != want.ConflictBackoff || c.cfg.Logger == nil {
		t.Fatalf("defaults not applied: %+v", c.cfg)
	}
	if c.endpoints[0].addr != "127.0.0.1:1" {
		t.Fatalf("endpoints not copied: %q", c.endpoints[0].addr)
	}
}

func TestOneShotHelpers(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	ctx := testCtx(t)
	if _, err := c.Get(ctx, []byte("k")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get absent = %v; want ErrNotFound", err)
	}
	mustPut(t, c, "k", "v")
	wantValue(t, c, "k", "v")
	mustPut(t, c, "empty", "")
	wantValue(t, c, "empty", "")
	if err := c.Delete(ctx, []byte("k")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, []byte("k")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get deleted = %v; want ErrNotFound", err)
	}
}

func TestEmptyKeyRejectedLocally(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	ctx := testCtx(t)
	if _, err := c.Get(ctx, nil); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("Get(nil) = %v", err)
	}
	if err := c.Put(ctx, []byte{}, []byte("v")); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("Put(empty) = %v", err)
	}
	if err := c.Delete(ctx, nil); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("Delete(nil) = %v", err)
	}
	if got := len(n.callsOf("Get")) + len(n.callsOf("Commit")); got != 0 {
		t.Fatalf("server received %d calls; want none", got)
	}
}

func TestReadFailsOverFromDeadEndpoint(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, deadAddr(t), n.addr)
	mustPut(t, c, "k", "v")
	wantValue(t, c, "k", "v")
	if got := c.start(); got != 1 {
		t.Fatalf("preferred endpoint = %d; want 1 (the live one)", got)
	}
}

// A transaction pinned to a node that dies continues on another node at
// the same snapshot.
func TestPinnedTxnFailsOverAtSameSnapshot(t *testing.T) {
	nodes := newFakeCluster(t, 2)
	c := newTestClient(t, addrsOf(nodes)...)
	other := newTestClient(t, nodes[1].addr)
	mustPut(t, c, "a", "1")
	ctx := testCtx(t)

	tx, _ := c.Begin(ctx)
	defer tx.Rollback()
	if _, err := tx.Get(ctx, []byte("a")); err != nil {
		t.Fatal(err)
	}
	snap := lastReq[*galenapb.GetRequest](t, nodes[0], "Get").Snapshot // 0: first read
	if snap != 0 || tx.snapshot == 0 {
		t.Fatalf("first read: sent snapshot %d, txn snapshot %d", snap, tx.snapshot)
	}
	mustPut(t, other, "b", "2") // after the snapshot
	nodes[0].stop()

	if _, err := tx.Get(ctx, []byte("b")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(b) after failover = %v; want ErrNotFound at the old snapshot", err)
	}
	req := lastReq[*galenapb.GetRequest](t, nodes[1], "Get")
	if req.Snapshot != tx.snapshot {
		t.Fatalf("failover read at snapshot %d; want the txn's %d", req.Snapshot, tx.snapshot)
	}
}

func TestNotPrimaryFailsOver(t *testing.T) {
	nodes := newFakeCluster(t, 2)
	nodes[0].setHooks(func(context.Context, string, proto.Message) error {
		return reasonErr(codes.Unavailable, api.ReasonNotPrimary, "cut off")
	}, nil)
	c := newTestClient(t, addrsOf(nodes)...)
	mustPut(t, c, "k", "v")
	wantValue(t, c, "k", "v")
	if len(nodes[1].callsOf("Commit")) != 1 {
		t.Fatal("commit did not move to the primary node")
	}
}

func TestNoEndpointReachable(t *testing.T) {
	a, b := deadAddr(t), deadAddr(t)
	c := newTestClient(t, a, b)
	ctx := testCtx(t)
	start := time.Now()
	_, err := c.Get(ctx, []byte("k"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get = %v; want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) {
		t.Fatalf("error %q does not list the endpoints", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Get took %v; want a quick failure", d)
	}
	// A commit that never reached any member was definitely not applied:
	// unavailable, not indeterminate.
	if err := c.Put(ctx, []byte("k"), []byte("v")); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrIndeterminate) {
		t.Fatalf("Put = %v; want ErrUnavailable only", err)
	}
}

func TestSessionCausality(t *testing.T) {
	nodes := newFakeCluster(t, 2)
	c := newTestClient(t, nodes[0].addr)
	other := newTestClient(t, nodes[1].addr)
	ctx := testCtx(t)

	mustPut(t, c, "k", "1")
	s1 := nodes[0].store.appliedSeqno()
	wantValue(t, c, "k", "1")
	if req := lastReq[*galenapb.GetRequest](t, nodes[0], "Get"); req.MinSeqno != s1 || req.Snapshot != 0 {
		t.Fatalf("first read sent snapshot %d min_seqno %d; want 0, %d", req.Snapshot, req.MinSeqno, s1)
	}

	mustPut(t, other, "x", "y") // advances the cluster past c's session
	s2 := nodes[1].store.appliedSeqno()
	err := c.Update(ctx, func(tx *Txn) error {
		if _, err := tx.Get(ctx, []byte("k")); err != nil {
			return err
		}
		return tx.Put([]byte("k"), []byte("2"))
	})
	if err != nil {
		t.Fatal(err)
	}
	commit := lastReq[*galenapb.CommitRequest](t, nodes[0], "Commit")
	if commit.MinSeqno != s2 || commit.WriteSet.Snapshot != s2 {
		t.Fatalf("commit min_seqno %d snapshot %d; want both %d (seen by the read)",
			commit.MinSeqno, commit.WriteSet.Snapshot, s2)
	}
	s3 := nodes[0].store.appliedSeqno()
	wantValue(t, c, "k", "2")
	if req := lastReq[*galenapb.GetRequest](t, nodes[0], "Get"); req.MinSeqno != s3 {
		t.Fatalf("read after commit sent min_seqno %d; want %d", req.MinSeqno, s3)
	}
	if other.seen.Load() != s2 {
		t.Fatalf("sessions share state: other saw %d; want %d", other.seen.Load(), s2)
	}
}

func TestClosedClient(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	ctx := testCtx(t)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	checks := map[string]error{}
	_, checks["Get"] = c.Get(ctx, []byte("k"))
	checks["Put"] = c.Put(ctx, []byte("k"), nil)
	checks["Delete"] = c.Delete(ctx, []byte("k"))
	_, checks["Begin"] = c.Begin(ctx)
	checks["View"] = c.View(ctx, func(*Txn) error { return nil })
	checks["Update"] = c.Update(ctx, func(*Txn) error { return nil })
	_, checks["Txn.Get"] = tx.Get(ctx, []byte("k"))
	_, checks["Txn.Scan"] = tx.Scan(ctx, nil, nil, 0)
	checks["Txn.Put"] = tx.Put([]byte("k"), nil)
	_, checks["Txn.Commit"] = tx.Commit(ctx)
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v; want ErrClosed", name, err)
		}
	}
}

func TestLinearizableAsksOnTheFirstReadOnly(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	ctx := testCtx(t)
	mustPut(t, c, "k", "1")
	if _, err := c.Get(ctx, []byte("k"), Linearizable()); err != nil {
		t.Fatal(err)
	}
	if req := lastReq[*galenapb.GetRequest](t, n, "Get"); !req.Linearizable {
		t.Fatal("Get with Linearizable() did not ask for a linearizable snapshot")
	}
	tx, err := c.Begin(ctx, Linearizable())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Scan(ctx, nil, nil, 0); err != nil {
		t.Fatal(err)
	}
	if req := lastReq[*galenapb.ScanRequest](t, n, "Scan"); !req.Linearizable {
		t.Fatal("first read of a Linearizable transaction did not ask for it")
	}
	if _, err := tx.Get(ctx, []byte("k")); err != nil {
		t.Fatal(err)
	}
	if req := lastReq[*galenapb.GetRequest](t, n, "Get"); req.Linearizable || req.Snapshot == 0 {
		t.Fatalf("later read sent linearizable=%v snapshot=%d; want the pinned snapshot only", req.Linearizable, req.Snapshot)
	}
	if _, err := c.Get(ctx, []byte("k")); err != nil {
		t.Fatal(err)
	}
	if req := lastReq[*galenapb.GetRequest](t, n, "Get"); req.Linearizable {
		t.Fatal("a plain Get asked for a linearizable snapshot")
	}
}
