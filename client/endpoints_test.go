package client

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/galenadb/galena/api"
	"github.com/galenadb/galena/api/galenapb"
)

// notPrimary is a hook that refuses as a member without a leader does.
func notPrimary(context.Context, string, proto.Message) error {
	return reasonErr(codes.Unavailable, api.ReasonNotPrimary, "no leader")
}

// deadlineCtx is a context that ends with the test, at the latest after d.
func deadlineCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// hungFirstClient returns a client whose first endpoint is a member that
// accepts connections but never answers, with a DialTimeout longer than any
// deadline the test gives its calls, and then addrs.
func hungFirstClient(t *testing.T, addrs ...string) (*Client, *hungListener) {
	hung := newHungListener(t)
	cfg := DefaultConfig()
	cfg.Endpoints = append([]string{hung.addr()}, addrs...)
	cfg.Logger = zaptest.NewLogger(t)
	cfg.DialTimeout = time.Minute
	return newClientCfg(t, cfg), hung
}

// A hung member listed first costs a new client nothing while another
// endpoint connects: calls go to the connected one, although a connection
// attempt to the hung member could last longer than the calls' deadline.
func TestHungEndpointSkipped(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c, hung := hungFirstClient(t, n.addr)
	ctx := deadlineCtx(t, 20*time.Second)
	if err := c.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatalf("Put with a hung first endpoint: %v", err)
	}
	if v, err := c.Get(ctx, []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("Get with a hung first endpoint = %q, %v", v, err)
	}
	if _, err := c.Members(ctx); err != nil {
		t.Fatalf("Members with a hung first endpoint: %v", err)
	}
	if hung.accepted() == 0 {
		t.Fatal("the client never connected to the hung endpoint")
	}
	if got := c.start(); got != 1 {
		t.Fatalf("preferred endpoint = %d; want 1 (the live one)", got)
	}
}

// With no endpoint connected, each hung one costs a call about DialTimeout,
// not the call's deadline: the call fails with ErrUnavailable, and a commit
// that reached no member is not indeterminate.
func TestHungEndpointsBoundedByDialTimeout(t *testing.T) {
	a, b := newHungListener(t), newHungListener(t)
	cfg := DefaultConfig()
	cfg.Endpoints = []string{a.addr(), b.addr()}
	cfg.Logger = zaptest.NewLogger(t)
	cfg.DialTimeout = 200 * time.Millisecond
	c := newClientCfg(t, cfg)
	ctx := deadlineCtx(t, 20*time.Second)
	if _, err := c.Get(ctx, []byte("k")); !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
		t.Fatalf("Get = %v (context: %v); want ErrUnavailable before the deadline", err, ctx.Err())
	}
	err := c.Put(ctx, []byte("k"), []byte("v"))
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrIndeterminate) || ctx.Err() != nil {
		t.Fatalf("Put = %v (context: %v); want ErrUnavailable only, before the deadline", err, ctx.Err())
	}
}

// hookedCluster starts two fake nodes that both run before ahead of every
// call, and a client of both.
func hookedCluster(t *testing.T, before hook) ([]*fakeNode, *Client) {
	nodes := newFakeCluster(t, 2)
	for _, n := range nodes {
		n.setHooks(before, nil)
	}
	return nodes, newTestClient(t, addrsOf(nodes)...)
}

// commitIDs returns the write-set ids of the commits nodes received.
func commitIDs(nodes []*fakeNode) [][]byte {
	var ids [][]byte
	for _, n := range nodes {
		for _, req := range n.callsOf("Commit") {
			ids = append(ids, req.(*galenapb.CommitRequest).WriteSet.Id)
		}
	}
	return ids
}

// While every endpoint refuses as not primary (an election), a commit goes
// round again, with the same write-set id, until a member takes it.
func TestCommitWaitsForLeader(t *testing.T) {
	nodes, c := hookedCluster(t, times(5, "Commit", notPrimary)) // rounds of two, and one more
	mustPut(t, c, "k", "v")
	ids := commitIDs(nodes)
	if len(ids) != 6 {
		t.Fatalf("%d commits sent; want 6 (five refused)", len(ids))
	}
	for _, id := range ids[1:] {
		if !bytes.Equal(id, ids[0]) {
			t.Fatalf("commit ids %x; want one id throughout", ids)
		}
	}
	if applied := nodes[0].store.appliedSeqno(); applied != 2 {
		t.Fatalf("store at %d; want one commit, at 2", applied)
	}
}

// Without a leader until the deadline, a commit that no member may have
// applied fails with ErrNotPrimary, after rounds spaced by a backoff, not
// in a busy loop; unless the deadline cut an attempt in flight, whose
// outcome is then unknown.
func TestCommitWithoutLeaderUntilDeadline(t *testing.T) {
	nodes, c := hookedCluster(t, notPrimary)
	err := c.Put(deadlineCtx(t, time.Second), []byte("k"), []byte("v"))
	switch {
	case errors.Is(err, ErrIndeterminate) && !errors.Is(err, context.DeadlineExceeded):
		t.Fatalf("Put = %v; indeterminate only when the deadline cut an attempt", err)
	case !errors.Is(err, ErrIndeterminate) && !errors.Is(err, ErrNotPrimary):
		t.Fatalf("Put = %v; want ErrNotPrimary", err)
	}
	// Rounds of two, at 0 and then after pauses of at least 25, 50, 100,
	// 200 and 400 ms: at most seven rounds fit in a second.
	if sent := len(commitIDs(nodes)); sent < 4 || sent > 14 {
		t.Fatalf("%d commits sent in a second; want a few rounds", sent)
	}
}

// A commit whose answer was lost may have been applied: when no member
// takes its resends before the deadline, the outcome is indeterminate.
func TestCommitLostAnswerThenNoLeader(t *testing.T) {
	nodes := newFakeCluster(t, 2)
	nodes[0].setHooks(nil, func(_ context.Context, m string, _ proto.Message) error {
		if m == "Commit" {
			nodes[0].dropConns()
		}
		return errors.New("dropped")
	})
	nodes[1].setHooks(notPrimary, nil)
	c := newTestClient(t, addrsOf(nodes)...)
	err := c.Put(deadlineCtx(t, time.Second), []byte("k"), []byte("v"))
	if !errors.Is(err, ErrIndeterminate) {
		t.Fatalf("Put = %v; want ErrIndeterminate", err)
	}
	if applied := nodes[0].store.appliedSeqno(); applied != 2 {
		t.Fatalf("store at %d; want the write-set applied once, at 2", applied)
	}
}

// A refusal of the write-set itself ends the commit at once, also after
// rounds without a leader.
func TestCommitRefusedAfterNoLeader(t *testing.T) {
	var calls atomic.Int32
	nodes, c := hookedCluster(t, times(10, "Commit", func(ctx context.Context, m string, req proto.Message) error {
		if calls.Add(1) <= 2 {
			return notPrimary(ctx, m, req)
		}
		return reasonErr(codes.InvalidArgument, api.ReasonInvalidWriteSet, "malformed")
	}))
	err := c.Put(testCtx(t), []byte("k"), []byte("v"))
	if !errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrIndeterminate) {
		t.Fatalf("Put = %v; want ErrInvalidArgument only", err)
	}
	if sent := len(commitIDs(nodes)); sent != 3 {
		t.Fatalf("%d commits sent; want 3 (a round refused, then the refusal)", sent)
	}
}

// A client of a single endpoint returns its refusal at once: that member
// has already waited for a leader, and says it is cut off.
func TestSingleEndpointWaitsForLeader(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	n.setHooks(times(3, "Commit", notPrimary), nil)
	c := newTestClient(t, n.addr)
	if err := c.Put(testCtx(t), []byte("k"), []byte("v")); err != nil {
		t.Fatalf("Put = %v; want it committed once the member has a leader", err)
	}
	if sent := len(n.callsOf("Commit")); sent != 4 {
		t.Fatalf("%d commits sent; want 4 (three refused)", sent)
	}
}

// With NoLeaderWait, a call refused for want of a leader fails at once with
// the member's own answer.
func TestNoLeaderWait(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	n.setHooks(notPrimary, nil)
	cfg := DefaultConfig()
	cfg.Endpoints, cfg.Logger, cfg.NoLeaderWait = []string{n.addr}, zaptest.NewLogger(t), true
	c := newClientCfg(t, cfg)
	if err := c.Put(testCtx(t), []byte("k"), []byte("v")); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("Put = %v; want ErrNotPrimary", err)
	}
	if sent := len(n.callsOf("Commit")); sent != 1 {
		t.Fatalf("%d commits sent; want 1", sent)
	}
}

// Reads and membership calls that every endpoint refused as not primary
// wait for a leader too.
func TestReadsAndMembershipWaitForLeader(t *testing.T) {
	get, add := times(3, "Get", notPrimary), times(3, "MemberAdd", notPrimary)
	nodes, c := hookedCluster(t, func(ctx context.Context, m string, req proto.Message) error {
		if err := get(ctx, m, req); err != nil {
			return err
		}
		return add(ctx, m, req)
	})
	ctx := testCtx(t)
	if _, err := c.Get(ctx, []byte("k"), Linearizable()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get = %v; want ErrNotFound once a leader answers", err)
	}
	if err := c.AddMember(ctx, "n3", "127.0.0.1:7003"); err != nil {
		t.Fatalf("AddMember: %v", err)
	}
	if got := len(nodes[0].callsOf("MemberAdd")) + len(nodes[1].callsOf("MemberAdd")); got != 4 {
		t.Fatalf("%d MemberAdd sent; want 4 (three refused)", got)
	}
}

// Close ends a call that waits for a leader.
func TestCloseEndsWaitForLeader(t *testing.T) {
	nodes, c := hookedCluster(t, notPrimary)
	ctx := testCtx(t)
	done := make(chan error, 1)
	go func() { done <- c.Put(ctx, []byte("k"), []byte("v")) }()
	for len(commitIDs(nodes)) < 2 { // a round was refused: the Put waits
		select {
		case err := <-done:
			t.Fatalf("Put returned %v before Close", err)
		case <-ctx.Done():
			t.Fatal("no round was refused")
		case <-time.After(5 * time.Millisecond):
		}
	}
	_ = c.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close = %v; want ErrClosed", err)
	}
}

// A read whose deadline ends while it waits for a leader fails with the
// members' refusal, not with the deadline.
func TestReadDeadlineWhileWaitingForLeader(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	var calls atomic.Int32
	n.setHooks(func(ctx context.Context, m string, req proto.Message) error {
		if calls.Add(1) == 1 {
			return notPrimary(ctx, m, req)
		}
		<-ctx.Done() // the next round is still waiting when the deadline comes
		return ctx.Err()
	}, nil)
	ctx, cancel := context.WithTimeout(testCtx(t), 2*time.Second)
	defer cancel()
	if _, err := c.Get(ctx, []byte("k")); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("Get = %v; want the member's ErrNotPrimary", err)
	}
}
