package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/galenadb/galena/api"
	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/api/writesetpb"
)

// once returns a hook that runs fn on the first call of method only.
func once(method string, fn hook) hook { return times(1, method, fn) }

// times returns a hook that runs fn on the first n calls of method only.
// Nodes given the same hook share the count.
func times(n int, method string, fn hook) hook {
	var mu sync.Mutex
	fired := 0
	return func(ctx context.Context, m string, req proto.Message) error {
		mu.Lock()
		hit := m == method && fired < n
		if hit {
			fired++
		}
		mu.Unlock()
		if !hit {
			return nil
		}
		return fn(ctx, m, req)
	}
}

func TestUpdateRetriesConflict(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	rival := newTestClient(t, n.addr)
	mustPut(t, c, "k", "a")
	ctx := testCtx(t)
	attempts := 0
	err := c.Update(ctx, func(tx *Txn) error {
		attempts++
		v, err := tx.Get(ctx, []byte("k"))
		if err != nil {
			return err
		}
		if attempts == 1 {
			mustPut(t, rival, "k", "b") // commits after our snapshot
		}
		return tx.Put([]byte("k"), append(v, '!'))
	})
	if err != nil {
		t.Fatal(err)
	}
	if attempts != 2 {
		t.Fatalf("attempts = %d; want 2", attempts)
	}
	wantValue(t, c, "k", "b!")
}

func TestUpdateConcurrentIncrements(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	ctx := testCtx(t)
	const workers, each = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range each {
				if err := c.Update(ctx, increment(ctx, "ctr")); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	wantValue(t, c, "ctr", strconv.Itoa(workers*each))
}

func increment(ctx context.Context, key string) func(*Txn) error {
	return func(tx *Txn) error {
		v, err := tx.Get(ctx, []byte(key))
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		i, _ := strconv.Atoi(string(v))
		return tx.Put([]byte(key), []byte(strconv.Itoa(i+1)))
	}
}

func TestUpdateRetriesSnapshotTooOld(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	n.setHooks(once("Commit", func(context.Context, string, proto.Message) error {
		return reasonErr(codes.FailedPrecondition, api.ReasonSnapshotTooOld, "below bound")
	}), nil)
	c := newTestClient(t, n.addr)
	mustPut(t, c, "k", "v")
	if got := len(n.callsOf("Commit")); got != 2 {
		t.Fatalf("commits = %d; want 2", got)
	}
}

func TestUpdateStopsAfterMaxConflictRetries(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	cfg := DefaultConfig()
	cfg.Endpoints = []string{n.addr}
	cfg.MaxConflictRetries = 2
	c := newClientCfg(t, cfg)
	rival := newTestClient(t, n.addr)
	ctx := testCtx(t)
	attempts := 0
	err := c.Update(ctx, func(tx *Txn) error {
		attempts++
		if _, err := tx.Get(ctx, []byte("k")); !errors.Is(err, ErrNotFound) && err != nil {
			return err
		}
		mustPut(t, rival, "k", "rival")
		return tx.Put([]byte("k"), []byte("mine"))
	})
	if !errors.Is(err, ErrConflict) || attempts != 3 {
		t.Fatalf("Update = %v after %d attempts; want ErrConflict after 3", err, attempts)
	}
}

func TestUpdateStopsWhenContextDone(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	rival := newTestClient(t, n.addr)
	ctx, cancel := context.WithTimeout(testCtx(t), 200*time.Millisecond)
	defer cancel()
	err := c.Update(ctx, func(tx *Txn) error {
		if _, err := tx.Get(ctx, []byte("k")); !errors.Is(err, ErrNotFound) && err != nil {
			return err
		}
		mustPut(t, rival, "k", "rival")
		return tx.Put([]byte("k"), []byte("mine"))
	})
	if !errors.Is(err, ErrConflict) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Update = %v; want a conflict or deadline error", err)
	}
}

func TestCommitConflictError(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	ctx := testCtx(t)
	mustPut(t, c, "k", "a")

	tx, _ := c.Begin(ctx)
	if _, err := tx.Get(ctx, []byte("k")); err != nil {
		t.Fatal(err)
	}
	rival, _ := c.Begin(ctx)
	_ = rival.Put([]byte("k"), []byte("b"))
	info, err := rival.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = tx.Put([]byte("k"), []byte("c"))
	_, err = tx.Commit(ctx)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("Commit = %v; want ErrConflict", err)
	}
	var ce *ConflictError
	if !errors.As(err, &ce) || string(ce.Key) != "k" || ce.Seqno != info.Seqno {
		t.Fatalf("conflict = %#v; want key k at seqno %d", ce, info.Seqno)
	}
	wantValue(t, c, "k", "b")
}

func TestUpdateRetriesOverloaded(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	n.setHooks(once("Commit", func(context.Context, string, proto.Message) error {
		return reasonErr(codes.ResourceExhausted, api.ReasonOverloaded, "too many commits in flight")
	}), nil)
	c := newTestClient(t, n.addr)
	mustPut(t, c, "k", "v")
	if got := len(n.callsOf("Commit")); got != 2 {
		t.Fatalf("commits = %d; want 2", got)
	}
}

// Commit reports an overload to its caller, without trying another
// endpoint; after an attempt that may have been applied, the outcome is
// unknown instead.
func TestCommitOverloaded(t *testing.T) {
	overloaded := func(context.Context, string, proto.Message) error {
		return reasonErr(codes.ResourceExhausted, api.ReasonOverloaded, "too many commits in flight")
	}
	commit := func(c *Client) error {
		tx, _ := c.Begin(testCtx(t))
		_ = tx.Put([]byte("k"), []byte("v"))
		_, err := tx.Commit(testCtx(t))
		return err
	}
	t.Run("refused", func(t *testing.T) {
		nodes := newFakeCluster(t, 2)
		nodes[0].setHooks(once("Commit", overloaded), nil)
		err := commit(newTestClient(t, addrsOf(nodes)...))
		if !errors.Is(err, ErrOverloaded) || errors.Is(err, ErrIndeterminate) {
			t.Fatalf("Commit = %v; want ErrOverloaded only", err)
		}
		if got := len(nodes[1].callsOf("Commit")); got != 0 {
			t.Fatalf("commits on the other endpoint = %d; want 0", got)
		}
	})
	// A refusal by the next member says nothing of the attempt whose answer
	// was lost, unless the write-set itself is refused.
	for _, tc := range []struct {
		name    string
		refusal hook
		want    error
	}{
		{"overloaded", overloaded, ErrIndeterminate},
		{"snapshot too old", func(context.Context, string, proto.Message) error {
			return reasonErr(codes.FailedPrecondition, api.ReasonSnapshotTooOld, "below the window")
		}, ErrIndeterminate},
		{"snapshot unavailable", func(context.Context, string, proto.Message) error {
			return reasonErr(codes.FailedPrecondition, api.ReasonSnapshotUnavailable, "not applied here")
		}, ErrIndeterminate},
		{"too large", func(context.Context, string, proto.Message) error {
			return reasonErr(codes.InvalidArgument, api.ReasonTooLarge, "value too large")
		}, ErrTooLarge},
	} {
		t.Run("after a lost answer, "+tc.name, func(t *testing.T) {
			nodes := newFakeCluster(t, 2)
			nodes[0].setHooks(nil, once("Commit", func(context.Context, string, proto.Message) error {
				nodes[0].dropConns()
				return errors.New("dropped")
			}))
			nodes[1].setHooks(once("Commit", tc.refusal), nil)
			err := commit(newTestClient(t, addrsOf(nodes)...))
			if !errors.Is(err, tc.want) || (tc.want != ErrIndeterminate && errors.Is(err, ErrIndeterminate)) {
				t.Fatalf("Commit = %v; want %v", err, tc.want)
			}
		})
	}
}

func TestIndeterminateIsNotRetried(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail hook
		want error
	}{
		{"deadline", func(ctx context.Context, _ string, _ proto.Message) error {
			<-ctx.Done()
			return ctx.Err()
		}, context.DeadlineExceeded},
		{"server indeterminate", func(context.Context, string, proto.Message) error {
			return reasonErr(codes.Unknown, api.ReasonIndeterminate, "waiter timed out")
		}, ErrIndeterminate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeCluster(t, 1)[0]
			n.setHooks(nil, func(ctx context.Context, m string, req proto.Message) error {
				if m != "Commit" {
					return nil
				}
				return tc.fail(ctx, m, req)
			})
			c := newTestClient(t, n.addr)
			ctx, cancel := context.WithTimeout(testCtx(t), 300*time.Millisecond)
			defer cancel()
			err := c.Put(ctx, []byte("k"), []byte("v"))
			if !errors.Is(err, ErrIndeterminate) || !errors.Is(err, tc.want) {
				t.Fatalf("Put = %v; want ErrIndeterminate and %v", err, tc.want)
			}
			if got := len(n.callsOf("Commit")); got != 1 {
				t.Fatalf("commits = %d; want 1 (no retry)", got)
			}
		})
	}
}

// A commit whose connection drops after the write-set was applied is resent
// with the same id to the next endpoint, which reports the first outcome.
func TestCommitResendsSameIDOnFailover(t *testing.T) {
	nodes := newFakeCluster(t, 2)
	nodes[0].setHooks(nil, once("Commit", func(context.Context, string, proto.Message) error {
		nodes[0].dropConns()
		return errors.New("dropped")
	}))
	c := newTestClient(t, addrsOf(nodes)...)
	ctx := testCtx(t)
	tx, _ := c.Begin(ctx)
	_ = tx.Put([]byte("k"), []byte("v"))
	info, err := tx.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := lastReq[*galenapb.CommitRequest](t, nodes[0], "Commit")
	second := lastReq[*galenapb.CommitRequest](t, nodes[1], "Commit")
	if !bytes.Equal(first.WriteSet.Id, second.WriteSet.Id) {
		t.Fatalf("resent id %x; want %x", second.WriteSet.Id, first.WriteSet.Id)
	}
	if applied := nodes[0].store.appliedSeqno(); info.Seqno != 2 || applied != 2 {
		t.Fatalf("seqno %d, store at %d; want one commit, at 2", info.Seqno, applied)
	}
	wantValue(t, c, "k", "v")
}

func TestCommitIndeterminateWhenEveryEndpointDrops(t *testing.T) {
	nodes := newFakeCluster(t, 2)
	for _, n := range nodes {
		n.setHooks(func(_ context.Context, m string, _ proto.Message) error {
			if m == "Commit" {
				n.dropConns()
			}
			return nil
		}, nil)
	}
	c := newTestClient(t, addrsOf(nodes)...)
	err := c.Put(testCtx(t), []byte("k"), []byte("v"))
	if !errors.Is(err, ErrIndeterminate) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("Put = %v; want only ErrIndeterminate", err)
	}
	ids := [][]byte{}
	for _, n := range nodes {
		for _, req := range n.callsOf("Commit") {
			ids = append(ids, req.(*galenapb.CommitRequest).WriteSet.Id)
		}
	}
	if len(ids) != 2 || !bytes.Equal(ids[0], ids[1]) {
		t.Fatalf("commit ids %x; want one id sent to each endpoint", ids)
	}
}

func TestCommitWithoutWrites(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	mustPut(t, c, "k", "v")
	ctx := testCtx(t)
	tx, _ := c.Begin(ctx)
	if _, err := tx.Get(ctx, []byte("k")); err != nil {
		t.Fatal(err)
	}
	info, err := tx.Commit(ctx)
	if err != nil || info.Seqno != tx.snapshot || info.Seqno == 0 {
		t.Fatalf("Commit = %+v, %v; want the snapshot %d", info, err, tx.snapshot)
	}
	if got := len(n.callsOf("Commit")); got != 1 {
		t.Fatalf("commits = %d; want only the Put's", got)
	}
}

func TestGetReadsOwnWrites(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	mustPut(t, c, "old", "server")
	ctx := testCtx(t)
	tx, _ := c.Begin(ctx)
	defer tx.Rollback()
	val := []byte("mine")
	_ = tx.Put([]byte("new"), val)
	val[0] = 'X' // Put copied it
	_ = tx.Delete([]byte("old"))
	if v, err := tx.Get(ctx, []byte("new")); err != nil || string(v) != "mine" {
		t.Fatalf("Get(new) = %q, %v", v, err)
	}
	if _, err := tx.Get(ctx, []byte("old")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(old) = %v; want ErrNotFound", err)
	}
	if got := len(n.callsOf("Get")); got != 0 {
		t.Fatalf("server reads = %d; want 0", got)
	}
}

func TestScanReadsOwnWrites(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	n.pageCap = 2 // forces paging
	c := newTestClient(t, n.addr)
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
		mustPut(t, c, k, k)
	}
	for _, tc := range []struct {
		name       string
		start, end string
		limit      int
		want       string
	}{
		{"all", "", "", 0, "a=A b=b bb=BB e=e f=f zz=ZZ"},
		{"limit", "", "", 3, "a=A b=b bb=BB"},
		{"limit past deletes", "b", "", 2, "b=b bb=BB"},
		{"limit hides deleted", "c", "", 2, "e=e f=f"},
		{"bounded", "b", "e", 0, "b=b bb=BB"},
		{"only local after end of server", "g", "", 1, "zz=ZZ"},
		{"empty range", "c", "c", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			tx, _ := c.Begin(ctx)
			defer tx.Rollback()
			_ = tx.Put([]byte("a"), []byte("A"))
			_ = tx.Put([]byte("bb"), []byte("BB"))
			_ = tx.Put([]byte("zz"), []byte("ZZ"))
			_ = tx.Delete([]byte("c"))
			_ = tx.Delete([]byte("d"))
			var end []byte
			if tc.end != "" {
				end = []byte(tc.end)
			}
			kvs, err := tx.Scan(ctx, []byte(tc.start), end, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if got := formatKVs(kvs); got != tc.want {
				t.Fatalf("Scan = %q; want %q", got, tc.want)
			}
		})
	}
}

func formatKVs(kvs []KV) string {
	var b bytes.Buffer
	for i, kv := range kvs {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", kv.Key, kv.Value)
	}
	return b.String()
}

// Scan pages through the server's responses at one snapshot.
func TestScanFollowsMoreAtSameSnapshot(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	n.pageCap = 2
	c := newTestClient(t, n.addr)
	for i := range 5 {
		mustPut(t, c, fmt.Sprintf("k%d", i), "v")
	}
	ctx := testCtx(t)
	err := c.View(ctx, func(tx *Txn) error {
		kvs, err := tx.Scan(ctx, []byte("k"), nil, 0)
		if err != nil {
			return err
		}
		if got := formatKVs(kvs); got != "k0=v k1=v k2=v k3=v k4=v" {
			return fmt.Errorf("scan = %q", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	reqs := n.callsOf("Scan")
	if len(reqs) != 3 {
		t.Fatalf("scan pages = %d; want 3", len(reqs))
	}
	for _, r := range reqs[1:] {
		req := r.(*galenapb.ScanRequest)
		if req.Snapshot != 6 {
			t.Fatalf("page read at snapshot %d; want 6", req.Snapshot)
		}
	}
	if start := reqs[1].(*galenapb.ScanRequest).Start; string(start) != "k1\x00" {
		t.Fatalf("second page starts at %q; want after k1", start)
	}
}

func TestViewRejectsWrites(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	err := c.View(testCtx(t), func(tx *Txn) error {
		if err := tx.Put([]byte("k"), []byte("v")); !errors.Is(err, ErrReadOnly) {
			return fmt.Errorf("Put = %v", err)
		}
		return tx.Delete([]byte("k"))
	})
	if !errors.Is(err, ErrReadOnly) {
		t.Fatalf("View = %v; want ErrReadOnly", err)
	}
}

func TestTxnDoneAfterCommitOrRollback(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	ctx := testCtx(t)
	for _, end := range []string{"commit", "rollback"} {
		t.Run(end, func(t *testing.T) {
			tx, _ := c.Begin(ctx)
			_ = tx.Put([]byte("k"), []byte("v"))
			if end == "commit" {
				if _, err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
			}
			tx.Rollback()
			tx.Rollback()
			errs := []error{tx.Put([]byte("k"), nil), tx.Delete([]byte("k"))}
			_, err := tx.Get(ctx, []byte("k"))
			errs = append(errs, err)
			_, err = tx.Scan(ctx, nil, nil, 0)
			errs = append(errs, err)
			_, err = tx.Commit(ctx)
			errs = append(errs, err)
			for i, err := range errs {
				if !errors.Is(err, ErrTxnDone) {
					t.Errorf("call %d = %v; want ErrTxnDone", i, err)
				}
			}
		})
	}
}

func TestWriteSetOverMaxCallSize(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	cfg := DefaultConfig()
	cfg.Endpoints = []string{n.addr}
	cfg.MaxCallSize = 1 << 10
	c := newClientCfg(t, cfg)
	err := c.Put(testCtx(t), []byte("k"), make([]byte, 2<<10))
	if !errors.Is(err, ErrTooLarge) || errors.Is(err, ErrIndeterminate) {
		t.Fatalf("Put = %v; want ErrTooLarge", err)
	}
	if got := len(n.callsOf("Commit")); got != 0 {
		t.Fatalf("commits = %d; want 0", got)
	}
}

// A write-set that read nothing carries an origin: the session's highest
// seen seqno, learned from a member first (one Status call) when the session
// has seen none. A resend keeps it, and a refusal as too old makes the
// session learn a fresh one for the next write-set.
func TestBlindWriteSetOrigin(t *testing.T) {
	nodes := newFakeCluster(t, 1)
	nodes[0].store.advance(41) // the cluster is at seqno 42
	c := newTestClient(t, nodes[0].addr)
	if err := c.Put(testCtx(t), []byte("k"), []byte("v")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	commits := nodes[0].callsOf("Commit")
	if len(commits) != 1 {
		t.Fatalf("%d commits, want 1", len(commits))
	}
	if ws := commits[0].(*galenapb.CommitRequest).GetWriteSet(); ws.GetSnapshot() != 0 || ws.GetOrigin() != 42 {
		t.Fatalf("blind write-set snapshot %d origin %d, want 0 and the member's applied 42", ws.GetSnapshot(), ws.GetOrigin())
	}

	// The cluster moves on while the session is idle; the member refuses
	// the stale origin, and the retry carries a fresh one.
	nodes[0].store.advance(1000)
	refused := false
	nodes[0].setHooks(func(_ context.Context, method string, req proto.Message) error {
		if method == "Commit" && !refused {
			refused = true
			return reasonErr(codes.FailedPrecondition, api.ReasonSnapshotTooOld, "origin below the window")
		}
		return nil
	}, nil)
	if err := c.Put(testCtx(t), []byte("k"), []byte("w")); err != nil {
		t.Fatalf("Put after the origin fell out of the window: %v", err)
	}
	commits = nodes[0].callsOf("Commit")
	last := commits[len(commits)-1].(*galenapb.CommitRequest).GetWriteSet()
	if len(commits) != 3 || last.GetOrigin() < 1042 {
		t.Fatalf("%d commits, the last with origin %d; want a retry with an origin of at least 1042", len(commits), last.GetOrigin())
	}
}

func TestPrefixEnd(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"a", "b"},
		{"acct/", "acct0"},
		{"a\xff", "b"},
		{"\xff\xff", ""},
	}
	for _, tt := range tests {
		if got := PrefixEnd([]byte(tt.in)); string(got) != tt.want {
			t.Errorf("PrefixEnd(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// A serializable transaction's write-set carries what it read from its
// snapshot: each key once, in key order (a miss too; not a key it also
// writes, whose write is certified alike), and the ranges it scanned, a scan stopped by its limit only up to its
// last key. Under snapshot isolation, the client's default unless
// Config.Serializable, it carries none.
func TestSerializableReadSet(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	ctx := testCtx(t)
	run := func(c *Client, opts ...TxnOption) *writesetpb.WriteSet {
		t.Helper()
		err := c.Update(ctx, func(tx *Txn) error {
			for _, k := range []string{"a3", "zz", "a1", "a3"} {
				if _, err := tx.Get(ctx, []byte(k)); err != nil && !errors.Is(err, ErrNotFound) {
					return err
				}
			}
			if err := tx.Put([]byte("w"), []byte("x")); err != nil {
				return err
			}
			if _, err := tx.Get(ctx, []byte("b")); err != nil { // read, then written
				return err
			}
			if err := tx.Put([]byte("b"), []byte("x")); err != nil {
				return err
			}
			if _, err := tx.Get(ctx, []byte("w")); err != nil { // its own write
				return err
			}
			if _, err := tx.Scan(ctx, []byte("a"), []byte("b"), 2); err != nil {
				return err
			}
			_, err := tx.Scan(ctx, []byte("b"), nil, 0)
			return err
		}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return lastReq[*galenapb.CommitRequest](t, n, "Commit").GetWriteSet()
	}
	si := newTestClient(t, n.addr)
	for _, k := range []string{"a1", "a2", "a3", "b"} {
		mustPut(t, si, k, "v")
	}
	ws := run(si, Serializable())
	if got := fmt.Sprintf("%q", ws.Reads); got != `["a1" "a3" "zz"]` {
		t.Errorf("reads %s; want a1, a3 and zz once each, in order", got)
	}
	var scans []string
	for _, r := range ws.Scans {
		scans = append(scans, fmt.Sprintf("[%q, %q)", r.Start, r.End))
	}
	if got := strings.Join(scans, " "); got != `["a", "a2\x00") ["b", "")` {
		t.Errorf("scans %s; want [a, a2\\x00) (stopped at its limit) and [b, no end)", got)
	}
	if ws := run(si); len(ws.Reads)+len(ws.Scans) != 0 {
		t.Errorf("a snapshot-isolation transaction sent a read set: %v %v", ws.Reads, ws.Scans)
	}

	cfg := DefaultConfig()
	cfg.Endpoints, cfg.Serializable = []string{n.addr}, true
	ser := newClientCfg(t, cfg)
	if ws := run(ser); len(ws.Reads) != 3 || len(ws.Scans) != 2 {
		t.Errorf("with Config.Serializable, a transaction sent reads %q and scans %v; want its read set", ws.Reads, ws.Scans)
	}
	if ws := run(ser, SnapshotIsolation()); len(ws.Reads)+len(ws.Scans) != 0 {
		t.Errorf("SnapshotIsolation() sent a read set: %v %v", ws.Reads, ws.Scans)
	}
}

// A conflict says whether the transaction wrote the key, read it, or
// scanned a range holding it.
func TestConflictOf(t *testing.T) {
	ws := &writesetpb.WriteSet{
		Writes: []*writesetpb.Write{{Key: []byte("w")}},
		Reads:  [][]byte{[]byte("r"), []byte("w")},
		Scans:  []*writesetpb.KeyRange{{Start: []byte("a"), End: []byte("c")}, {Start: []byte("m")}},
	}
	for key, want := range map[string]string{
		"w": `client: conflict on key "w" written at seqno 7`,
		"r": `client: conflict: key "r", which this transaction read, was written at seqno 7`,
		"b": `client: conflict: key "b", in the range ["a", "c") this transaction scanned, was written at seqno 7`,
		"z": `client: conflict: key "z", in the range ["m", "") this transaction scanned, was written at seqno 7`,
	} {
		err := conflictOf(ws, []byte(key), 7)
		if err.Error() != want || !errors.Is(err, ErrConflict) {
			t.Errorf("conflict on %q: %q; want %q", key, err, want)
		}
	}
}
