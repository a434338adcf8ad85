package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/harness"
	"github.com/galenadb/galena/integration/workload"
)

// Writes taken by any member, including deletes, reach every member.
func TestWritesThroughEveryMemberVisibleOnAll(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t, 30*time.Second)
	want := make(map[string][]byte)
	for i := range c.Size() {
		cl := newClient(t, c, c.Endpoint(i))
		for j := range 5 {
			k, v := fmt.Sprintf("m%d/k%d", i, j), fmt.Sprintf("written through %s", c.ID(i))
			if err := cl.Put(ctx, []byte(k), []byte(v)); err != nil {
				t.Fatalf("put %s through %s: %v", k, c.ID(i), err)
			}
			want[k] = []byte(v)
		}
	}
	// One multi-key transaction and one delete, on members that did not
	// write those keys.
	if err := newClient(t, c, c.Endpoint(2)).Update(ctx, func(tx *client.Txn) error {
		if err := tx.Delete([]byte("m0/k0")); err != nil {
			return err
		}
		return tx.Put([]byte("m1/k1"), []byte("rewritten through n3"))
	}); err != nil {
		t.Fatalf("update through %s: %v", c.ID(2), err)
	}
	want["m0/k0"], want["m1/k1"] = nil, []byte("rewritten through n3")

	kvs := ensureSame(t, c, want)
	if len(kvs) != len(want)-1 {
		t.Errorf("%d keys, want %d: %s", len(kvs), len(want)-1, workload.DiffContents(nil, kvs))
	}
}

// Two transactions on different members that write the same key from the
// same snapshot: the first to commit wins, the second gets a conflict naming
// the key and the winner's seqno. Disjoint keys both commit.
func TestFirstCommitterWinsAcrossMembers(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t, 60*time.Second)
	a, b := newClient(t, c, c.Endpoint(0)), newClient(t, c, c.Endpoint(1))
	if err := a.Put(ctx, []byte("seed"), []byte("0")); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"seed": []byte("0")}
	// begin converges first, so both members serve the same snapshot.
	begin := func(cl *client.Client) *client.Txn {
		t.Helper()
		converge(t, c)
		tx, err := cl.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Get(ctx, []byte("seed")); err != nil {
			t.Fatalf("read seed: %v", err)
		}
		return tx
	}

	t1, t2 := begin(a), begin(b)
	t1.Put([]byte("x"), []byte("from n1"))
	t2.Put([]byte("x"), []byte("from n2"))
	info, err := t1.Commit(ctx)
	if err != nil {
		t.Fatalf("first committer on n1: %v", err)
	}
	_, err = t2.Commit(ctx)
	wantConflict(t, err, "x", info.Seqno)
	want["x"] = []byte("from n1")

	t3, t4 := begin(a), begin(b)
	t3.Put([]byte("y1"), []byte("from n1"))
	t4.Put([]byte("y2"), []byte("from n2"))
	if _, err := t3.Commit(ctx); err != nil {
		t.Fatalf("disjoint write on n1: %v", err)
	}
	if _, err := t4.Commit(ctx); err != nil {
		t.Fatalf("disjoint write on n2: %v", err)
	}
	want["y1"], want["y2"] = []byte("from n1"), []byte("from n2")

	// Same key, committed concurrently through n1 and n2: exactly one wins.
	for round := range 5 {
		key := fmt.Sprintf("race/%d", round)
		winner := raceCommit(t, ctx, key, begin(a), begin(b))
		want[key] = []byte(winner)
	}
	ensureSame(t, c, want)
}

// raceCommit commits ta (writing key=n1) and tb (key=n2) concurrently and
// checks that exactly one commits and the other conflicts on key at the
// winner's seqno. It returns the winner's value.
func raceCommit(t *testing.T, ctx context.Context, key string, ta, tb *client.Txn) string {
	t.Helper()
	values := []string{"n1", "n2"}
	txs := []*client.Txn{ta, tb}
	infos := make([]client.CommitInfo, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, tx := range txs {
		tx.Put([]byte(key), []byte(values[i]))
		wg.Go(func() { infos[i], errs[i] = tx.Commit(ctx) })
	}
	wg.Wait()
	switch {
	case errs[0] == nil && errs[1] == nil:
		t.Fatalf("%s: both committed, at seqnos %d and %d", key, infos[0].Seqno, infos[1].Seqno)
	case errs[0] == nil:
		wantConflict(t, errs[1], key, infos[0].Seqno)
		return values[0]
	case errs[1] == nil:
		wantConflict(t, errs[0], key, infos[1].Seqno)
		return values[1]
	}
	t.Fatalf("%s: neither committed: %v; %v", key, errs[0], errs[1])
	return ""
}

// wantConflict checks that err is a conflict on key with a write at seqno.
func wantConflict(t *testing.T, err error, key string, seqno uint64) {
	t.Helper()
	var ce *client.ConflictError
	if !errors.Is(err, client.ErrConflict) || !errors.As(err, &ce) {
		t.Fatalf("second committer: got %v, want a *client.ConflictError", err)
	}
	if string(ce.Key) != key || ce.Seqno != seqno {
		t.Fatalf("conflict on %q at seqno %d, want %q at %d", ce.Key, ce.Seqno, key, seqno)
	}
}

// The command line tool against a running cluster.
func TestCLI(t *testing.T) {
	c := startCluster(t, 3)
	ok := func(r harness.CLIResult, stdout string) {
		t.Helper()
		if r.Err != nil || r.Code != 0 || r.Stdout != stdout {
			t.Fatalf("%v\nwant exit 0 and stdout %q", r, stdout)
		}
	}
	ok(c.Member(0).CLI("put", "greeting", "hello"), "OK\n")
	ok(c.Member(1).CLI("put", "gr/2", "hi there"), "OK\n")
	ok(c.Member(2).CLI("put", "other", "x"), "OK\n")
	// A CLI run is a new session: another member serves the write once it
	// has applied it.
	converge(t, c)
	ok(c.Member(2).CLI("get", "greeting"), "hello\n")
	ok(c.Member(1).CLI("scan", "--prefix", "gr"), "gr/2\thi there\ngreeting\thello\n")
	ok(c.CLI("scan", "--limit", "2"), "gr/2\thi there\ngreeting\thello\n")

	ok(c.Member(1).CLI("del", "greeting"), "OK\n")
	converge(t, c)
	if r := c.Member(2).CLI("get", "greeting"); r.Err != nil || r.Code != 1 || r.Stdout != "" || !strings.Contains(r.Stderr, "not found") {
		t.Fatalf("%v\nwant exit 1 and \"not found\" on stderr", r)
	}
	ok(c.Member(0).CLI("scan", "--prefix", "gr"), "gr/2\thi there\n")

	checkStatus(t, c)
	checkUnreachable(t)
}

// checkStatus checks `galena status` in both formats: one row per member,
// all SYNCED, one leader.
func checkStatus(t *testing.T, c *harness.Cluster) {
	t.Helper()
	rows, out := statusRows(t, c)
	leaders := 0
	for i, row := range rows {
		if row.ID != c.ID(i) || row.Address != c.Endpoint(i) || row.State != harness.StateSynced {
			t.Errorf("status row %d: %+v, want %s at %s, SYNCED", i, row, c.ID(i), c.Endpoint(i))
		}
		if row.RaftState == harness.RaftLeader {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("%d members report Leader:\n%s", leaders, out)
	}
	r := c.CLI("status")
	lines := strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n")
	if r.Code != 0 || len(lines) != 1+c.Size() || !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("%v\nwant a header and %d rows", r, c.Size())
	}
	for i, line := range lines[1:] {
		if f := strings.Fields(line); len(f) < 7 || f[0] != c.ID(i) || f[len(f)-1] != harness.StateSynced {
			t.Errorf("status row %q, want %s ... SYNCED", line, c.ID(i))
		}
	}
}

// statusRow is one line of `galena status --json`.
type statusRow struct {
	ID            string `json:"id"`
	Address       string `json:"address"`
	Role          string `json:"role"` // data or arbitrator
	RaftState     string `json:"raft_state"`
	LeaderID      string `json:"leader_id"`
	AppliedSeqno  uint64 `json:"applied_seqno"`
	LastContactMs int64  `json:"last_contact_ms"`
	State         string `json:"state"`
	Error         string `json:"error"`
}

// statusRows runs `galena status --json` and returns one row per member (it
// fails the test unless there is one per member) and the raw output. The
// command exits 0 when every member is SYNCED, else 1 naming the others.
func statusRows(t *testing.T, c *harness.Cluster) ([]statusRow, string) {
	t.Helper()
	r := c.CLI("status", "--json")
	if r.Err != nil {
		t.Fatal(r)
	}
	rows := decodeStatus(t, r.Stdout)
	if len(rows) != c.Size() {
		t.Fatalf("status lists %d members, want %d:\n%s", len(rows), c.Size(), r.Stdout)
	}
	synced := !slices.ContainsFunc(rows, func(row statusRow) bool { return row.State != harness.StateSynced })
	if synced != (r.Code == 0) || (!synced && (r.Code != 1 || !strings.Contains(r.Stderr, "not every member is SYNCED"))) {
		t.Fatalf("%v\nwant exit 0 exactly when every member is SYNCED, else 1 saying so", r)
	}
	return rows, r.Stdout
}

func decodeStatus(t *testing.T, out string) []statusRow {
	t.Helper()
	var rows []statusRow
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var row statusRow
		if err := dec.Decode(&row); err != nil {
			t.Fatalf("status --json: %v in\n%s", err, out)
		}
		rows = append(rows, row)
	}
	return rows
}

// checkUnreachable: with no endpoint listening, a command fails at once,
// naming the endpoint.
func checkUnreachable(t *testing.T) {
	t.Helper()
	addr, err := harness.ClosedAddr()
	if err != nil {
		t.Fatal(err)
	}
	r := harness.RunCLI(galenaBin, []string{addr}, "get", "greeting")
	if r.Err != nil || r.Code != 1 || !strings.Contains(r.Stderr, "no endpoint reachable") || !strings.Contains(r.Stderr, addr) {
		t.Fatalf("%v\nwant exit 1 and a message naming %s", r, addr)
	}
	if r.Elapsed > 3*time.Second {
		t.Errorf("took %v to report an unreachable endpoint", r.Elapsed)
	}
}

// Kill -9 the leader: the survivors keep committing; the killed member,
// restarted on its data directory, catches up, and every member ends with
// identical contents holding every acknowledged write.
func TestLeaderKilledSurvivorsCommitRestartCatchesUp(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t, 60*time.Second)
	const counters, increments = 5, 50
	want := make(map[string][]byte)
	for i := range c.Size() {
		cl := newClient(t, c, c.Endpoint(i))
		for j := range 4 {
			k, v := fmt.Sprintf("before/%s/%d", c.ID(i), j), "v"
			if err := cl.Put(ctx, []byte(k), []byte(v)); err != nil {
				t.Fatalf("put %s: %v", k, err)
			}
			want[k] = []byte(v)
		}
	}
	if err := newClient(t, c).Update(ctx, func(tx *client.Txn) error {
		for i := range counters {
			if err := tx.Put(counterKey(i), []byte("0")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("create counters: %v", err)
	}

	ld, err := c.Leader()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Member(ld).Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed leader %s", c.ID(ld))
	if err := c.WaitReady(); err != nil { // the survivors elect a leader
		t.Fatal(err)
	}
	checkStatusShowsDown(t, c, ld)

	survivors := newClient(t, c, c.EndpointsExcept(ld)...)
	loop := testCtx(t, 30*time.Second)
	counts := make([]int, counters)
	began := time.Now()
	for n := range increments {
		i := n % counters
		if err := survivors.Update(loop, func(tx *client.Txn) error { return increment(loop, tx, i, n) }); err != nil {
			t.Fatalf("increment %d of %d (after %v): %v", n+1, increments, time.Since(began), err)
		}
		counts[i]++
		want[fmt.Sprintf("after/%02d", n)] = []byte(strconv.Itoa(counts[i]))
	}
	t.Logf("%d increments through the survivors in %v", increments, time.Since(began))
	for i, n := range counts {
		want[string(counterKey(i))] = []byte(strconv.Itoa(n))
	}

	if err := c.Member(ld).Restart(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(); err != nil {
		t.Fatal(err)
	}
	ensureSame(t, c, want)

	// The restarted member takes writes again.
	if err := newClient(t, c, c.Endpoint(ld)).Put(ctx, []byte("restarted"), []byte(c.ID(ld))); err != nil {
		t.Fatalf("put through the restarted %s: %v", c.ID(ld), err)
	}
	want["restarted"] = []byte(c.ID(ld))
	ensureSame(t, c, want)
}

func counterKey(i int) []byte { return fmt.Appendf(nil, "ctr/%d", i) }

// increment adds one to counter i and records the new value under after/n.
func increment(ctx context.Context, tx *client.Txn, i, n int) error {
	v, err := tx.Get(ctx, counterKey(i))
	if err != nil {
		return err
	}
	cur, err := strconv.Atoi(string(v))
	if err != nil {
		return fmt.Errorf("counter %d holds %q", i, v)
	}
	next := []byte(strconv.Itoa(cur + 1))
	if err := tx.Put(counterKey(i), next); err != nil {
		return err
	}
	return tx.Put(fmt.Appendf(nil, "after/%02d", n), next)
}

// checkStatusShowsDown checks that `galena status` lists member down as
// UNREACHABLE and the others as SYNCED.
func checkStatusShowsDown(t *testing.T, c *harness.Cluster, down int) {
	t.Helper()
	rows, _ := statusRows(t, c)
	for i, row := range rows {
		wantState := harness.StateSynced
		if i == down {
			wantState = "UNREACHABLE"
		}
		if row.ID != c.ID(i) || row.State != wantState {
			t.Errorf("status row %d: %+v, want %s %s", i, row, c.ID(i), wantState)
		}
	}
}
