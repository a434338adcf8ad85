package integration

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/harness"
	"github.com/galenadb/galena/integration/nemesis"
)

// The TestOps tests operate a cluster as its operators do: join, remove,
// restart, crash, partition, arbitrate and check it, on real processes.
// By default they use small data sets; the flags make the measurements
// larger:
//
//	go test ./integration/ -run TestOpsStateTransfer -v -timeout 30m -ops.sst-mb=200
//	go test ./integration/ -run '^$' -bench OpsRestartCatchUp -benchtime 3x -timeout 30m -ops.figures
//	go test ./integration/ -run TestOpsMemoryBounded -v -ops.figures
var (
	opsSSTMB = flag.Int("ops.sst-mb", 16,
		"size in MB of the data set TestOpsStateTransferBySnapshot transfers to a joiner (200 checks the joiner streams it)")
	opsFigures = flag.Bool("ops.figures", false,
		"BenchmarkOpsRestartCatchUp: large data set of 200 MB and M=1000 entries missed, instead of 16 MB and 100; "+
			"TestOpsMemoryBoundedUnderLargeWriteSets: write-sets of 15 MiB and 480 MB missed, instead of 4 MiB and 96 MB")
)

const (
	// opsJoinTimeout bounds a small joiner's wait until it is a SYNCED voter.
	opsJoinTimeout = 60 * time.Second
	// opsExitTimeout bounds the wait for a removed or failed member to exit.
	opsExitTimeout = 20 * time.Second
	// removedMessage is what a removed member logs before it exits 0.
	removedMessage = "removed from the cluster"
)

// A member joins a running cluster with data: it ends a SYNCED voter with
// the others' contents. Then members leave: a dead one, the leader (the
// others elect another and keep committing) and the one the command line
// talks to; each removed running member exits 0 having logged why.
func TestOpsJoinThenRemove(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t, 2*time.Minute)
	want := make(map[string][]byte)
	writeRows(t, ctx, newClient(t, c), want, "before", 200, 10)

	ld := mustLeader(t, c)
	via := (ld + 1) % c.Size() // a follower passes the join to the leader
	j := addMember(t, c, via)
	if err := c.Member(j).Start(); err != nil {
		t.Fatal(err)
	}
	st, err := c.Member(j).WaitStatus(opsJoinTimeout, harness.SyncedVoter)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s joined through %s: %s, applied seqno %d", c.ID(j), c.ID(via), st.GetState(), st.GetAppliedSeqno())
	if hs, err := c.Member(j).HTTPStatus(); err != nil || !strings.EqualFold(fmt.Sprint(field(hs, "State")), harness.StateSynced) {
		t.Errorf("/status of the joiner %s: %v (%v), want state SYNCED", c.ID(j), hs, err)
	}
	ensureSame(t, c, want)
	wantMembers(t, c, map[string]bool{c.ID(0): true, c.ID(1): true, c.ID(2): true, c.ID(j): true})
	writeRows(t, ctx, newClient(t, c, c.Endpoint(j)), want, "joined", 20, 1)

	dead := otherThan(c, ld, via, j)
	if err := c.Member(dead).Kill(); err != nil {
		t.Fatal(err)
	}
	removeMember(t, c, c.LiveEndpoints(), dead)
	writeRows(t, ctx, newClient(t, c, c.LiveEndpoints()...), want, "dead-removed", 20, 1)

	ld = mustLeader(t, c)
	removeMember(t, c, c.EndpointsExcept(ld, dead), ld) // waits until it has exited and another leads
	writeRows(t, ctx, newClient(t, c, c.LiveEndpoints()...), want, "leader-removed", 20, 1)

	self := otherThan(c, mustLeader(t, c)) // it passes its own removal to the leader
	removeMember(t, c, []string{c.Endpoint(self)}, self)
	last := c.RunningMembers()
	if len(last) != 1 {
		t.Fatalf("running members %v, want one", c.IDs(last...))
	}
	if err := c.WaitReady(); err != nil {
		t.Fatal(err)
	}
	writeRows(t, ctx, newClient(t, c, c.Endpoint(last[0])), want, "alone", 20, 1)
	ensureSame(t, c, want)
	wantMembers(t, c, map[string]bool{c.ID(last[0]): true})
}

// removeMember runs `galena member remove` of member i through endpoints
// and checks it succeeds; a running member must then exit 0 having logged
// that it was removed. The cluster must then have a leader again, and
// member i must no longer be listed.
func removeMember(t *testing.T, c *harness.Cluster, endpoints []string, i int) {
	t.Helper()
	running := c.Running(i)
	if running {
		c.Member(i).Process().ExpectExit()
	}
	before := listMembers(t, c)
	if r := harness.RunCLI(galenaBin, endpoints, "member", "remove", c.ID(i)); r.Err != nil || r.Code != 0 {
		t.Fatalf("%v\nwant exit 0", r)
	}
	if running {
		code, err := c.Member(i).Process().Wait(opsExitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if code != 0 {
			t.Errorf("removed %s exited %d, want 0\n%s", c.ID(i), code, c.Member(i).LogTail())
		}
		if _, err := c.Member(i).Process().WaitLog(time.Second, removedMessage); err != nil {
			t.Errorf("removed %s: %v", c.ID(i), err)
		}
	}
	if err := c.WaitReady(); err != nil {
		t.Fatal(err)
	}
	want := make(map[string]bool)
	for _, m := range before {
		if m.ID != c.ID(i) {
			want[m.ID] = m.Voter
		}
	}
	wantMembers(t, c, want)
	t.Logf("removed %s (running: %v) through %v", c.ID(i), running, endpoints)
}

// Every member is killed (-9) at once while clients write, then started
// again as it was, with no operator action: every acknowledged write is on
// every member and the cluster commits again.
func TestOpsFullClusterCrash(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t, time.Minute)
	want := make(map[string][]byte)
	writeRows(t, ctx, newClient(t, c), want, "before", 60, 3)

	stop := make(chan struct{})
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range c.Size() {
		cl := newClient(t, c, c.Endpoint(i))
		wg.Go(func() { writeUntil(ctx, stop, cl, c.ID(i), &mu, want) })
	}
	waitAcked(t, &mu, want, 60+3*20)
	if err := c.Each((*harness.Member).Kill); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	t.Logf("killed every member with %d acknowledged or refused writes", len(want))

	if err := c.Each((*harness.Member).Start); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(); err != nil {
		t.Fatal(err)
	}
	ensureSame(t, c, want)
	for i := range c.Size() {
		writeRows(t, ctx, newClient(t, c, c.Endpoint(i)), want, "after/"+c.ID(i), 5, 1)
	}
	ensureSame(t, c, want)
}

// writeUntil puts keys prefix/0, prefix/1, ... through cl until stop is
// closed or a put fails, recording outcomes in want as expectPut does.
func writeUntil(ctx context.Context, stop <-chan struct{}, cl *client.Client, prefix string, mu *sync.Mutex, want map[string][]byte) {
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		k, v := fmt.Sprintf("during/%s/%04d", prefix, n), []byte(prefix)
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := cl.Put(pctx, []byte(k), v)
		cancel()
		mu.Lock()
		expectPut(want, k, v, err)
		mu.Unlock()
		if err != nil {
			return
		}
	}
}

// waitAcked waits until want holds at least n writes.
func waitAcked(t *testing.T, mu *sync.Mutex, want map[string][]byte, n int) {
	t.Helper()
	err := harness.WaitFor(30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(want) < n {
			return fmt.Errorf("%d writes, want %d", len(want), n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// One member cut off from the others by the proxies: within a bound set by
// its not-primary timeout it is NON_PRIMARY and its commits and reads fail
// with ErrNotPrimary, while a stale read serves its local value; healed, it is
// SYNCED again by itself and sees what the majority wrote meanwhile.
func TestOpsQuorumLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts real galena processes")
	}
	if max(notPrimaryCommitBound, notPrimaryKnownBound) >= 2*isolatedAnswerBound {
		t.Fatal("a commit that hangs until timedPut's deadline would pass as answered in time")
	}
	c, nw := nemesis.NewCluster(t, harness.Options{Binary: galenaBin, Members: 3,
		ExtraArgs: []string{"--not-primary-timeout", quorumNotPrimaryTimeout.String()}}, 0)
	ctx := testCtx(t, time.Minute)
	want := map[string][]byte{"q": []byte("before")}
	if err := newClient(t, c).Put(ctx, []byte("q"), want["q"]); err != nil {
		t.Fatal(err)
	}
	converge(t, c)
	x := (mustLeader(t, c) + 1) % c.Size()
	isolated := c.Member(x).Probe()

	nw.Isolate(x)
	began := time.Now()
	waitNotPrimary(t, c, x, isolated, want, began)
	majority := newClient(t, c, c.EndpointsExcept(x)...)
	if err := majority.Put(ctx, []byte("q"), []byte("during")); err != nil {
		t.Fatalf("put through the majority: %v", err)
	}
	want["q"] = []byte("during")
	checkIsolatedReads(t, ctx, c, x, isolated)

	nw.Heal()
	healed := time.Now()
	if _, err := c.Member(x).WaitStatus(20*time.Second, func(st *galenapb.StatusResponse) error {
		if st.GetState() != harness.StateSynced {
			return fmt.Errorf("%s", st.GetState())
		}
		return nil
	}); err != nil {
		t.Fatalf("after the heal: %v", err)
	}
	t.Logf("%s SYNCED %v after the heal", c.ID(x), time.Since(healed).Round(time.Millisecond))
	if err := c.WaitReady(); err != nil {
		t.Fatal(err)
	}
	ensureSame(t, c, want)
	if v, err := isolated.Get(ctx, []byte("q")); err != nil || string(v) != "during" {
		t.Errorf("read of q through %s after the heal: %q, %v; want %q", c.ID(x), v, err, "during")
	}
}

// TestOpsQuorumLoss runs its members with a --not-primary-timeout of twice
// the harness's election timeout. A member cut off from the others must
// report NON_PRIMARY within notPrimaryStatusBound of the cut; a commit sent
// at the cut must fail within notPrimaryCommitBound; a commit sent to a
// member that knows it is NON_PRIMARY, within notPrimaryKnownBound. Each
// bound adds busySlack, room for a busy machine, to what the timeout
// allows; the commits' own deadline (timedPut's) and the members' commit
// timeout are longer than every bound, so an answer within one still comes
// from the member giving up on the majority, not from a call timing out.
const (
	quorumNotPrimaryTimeout = 2 * 500 * time.Millisecond
	busySlack               = 6 * time.Second
	notPrimaryStatusBound   = quorumNotPrimaryTimeout + busySlack
	notPrimaryCommitBound   = 2*quorumNotPrimaryTimeout + busySlack
	notPrimaryKnownBound    = quorumNotPrimaryTimeout + busySlack
)

// waitNotPrimary checks member x, isolated at began: a commit sent at once
// fails (ErrNotPrimary, or ErrIndeterminate as it may have left) within
// notPrimaryCommitBound; x reports NON_PRIMARY within notPrimaryStatusBound;
// a commit sent after that fails with ErrNotPrimary within the
// notPrimaryKnownBound.
func waitNotPrimary(t *testing.T, c *harness.Cluster, x int, cl *client.Client, want map[string][]byte, began time.Time) {
	t.Helper()
	inflight := make(chan error, 1)
	go func() {
		_, err := timedPut(t.Context(), cl, "isolated/inflight")
		inflight <- err
	}()
	_, err := c.Member(x).WaitStatus(notPrimaryStatusBound, func(st *galenapb.StatusResponse) error {
		if st.GetState() != "NON_PRIMARY" {
			return fmt.Errorf("%s", st.GetState())
		}
		return nil
	})
	if err != nil {
		t.Errorf("isolated %s not NON_PRIMARY in time: %v", c.ID(x), err)
	}
	t.Logf("isolated %s: NON_PRIMARY after %v", c.ID(x), time.Since(began).Round(time.Millisecond))

	err = <-inflight
	took := time.Since(began)
	expectPut(want, "isolated/inflight", []byte("v"), err)
	switch {
	case err == nil:
		t.Fatalf("the isolated %s acknowledged a commit", c.ID(x))
	case !errors.Is(err, client.ErrNotPrimary) && !errors.Is(err, client.ErrIndeterminate):
		t.Errorf("commit sent to %s as it was cut off: %v, want ErrNotPrimary or ErrIndeterminate", c.ID(x), err)
	case took > notPrimaryCommitBound:
		t.Errorf("commit sent to %s as it was cut off: answered after %v, want within %v", c.ID(x), took, notPrimaryCommitBound)
	}
	t.Logf("commit sent to %s as it was cut off: %v after %v", c.ID(x), err, took.Round(time.Millisecond))

	took, err = timedPut(t.Context(), cl, "isolated/known")
	expectPut(want, "isolated/known", []byte("v"), err)
	if !errors.Is(err, client.ErrNotPrimary) || took > notPrimaryKnownBound {
		t.Errorf("commit through the NON_PRIMARY %s: %v after %v, want ErrNotPrimary within %v", c.ID(x), err, took, notPrimaryKnownBound)
	}
}

// checkIsolatedReads: the NON_PRIMARY member x refuses a plain read with
// ErrNotPrimary, and serves its own, older value of q to a stale read,
// through the client and through `galena get --stale`.
func checkIsolatedReads(t *testing.T, ctx context.Context, c *harness.Cluster, x int, cl *client.Client) {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if v, err := cl.Get(rctx, []byte("q")); !errors.Is(err, client.ErrNotPrimary) {
		t.Errorf("read through the NON_PRIMARY %s: %q, %v; want ErrNotPrimary", c.ID(x), v, err)
	}
	if v, err := cl.Get(rctx, []byte("q"), client.AllowStale()); err != nil || string(v) != "before" {
		t.Errorf("stale read through the NON_PRIMARY %s: %q, %v; want its local %q", c.ID(x), v, err, "before")
	}
	if r := c.Member(x).CLI("get", "--stale", "q"); r.Err != nil || r.Code != 0 || r.Stdout != "before\n" {
		t.Errorf("%v\nwant exit 0 and %q", r, "before\n")
	}
	if r := c.Member(x).CLI("get", "q"); r.Code == 0 || !strings.Contains(strings.ToLower(r.Stderr), "primary") {
		t.Errorf("%v\nwant a failure saying the member is not primary", r)
	}
	rows, _ := statusRows(t, c)
	if r := rows[x]; r.State != "NON_PRIMARY" || r.LastContactMs < quorumNotPrimaryTimeout.Milliseconds() {
		t.Errorf("galena status: %+v, want %s NON_PRIMARY, last contact at least %v ago", r, c.ID(x), quorumNotPrimaryTimeout)
	}
}

// addMember is c.AddMember, failing the test on error.
func addMember(t *testing.T, c *harness.Cluster, via int, args ...string) int {
	t.Helper()
	j, err := c.AddMember(via, args...)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// otherThan is the first running member not listed.
func otherThan(c *harness.Cluster, skip ...int) int {
	for _, i := range c.RunningMembers() {
		if !slices.Contains(skip, i) {
			return i
		}
	}
	return -1
}

// field is m[name], matched case-insensitively and ignoring underscores.
func field(m map[string]any, name string) any {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
	for k, v := range m {
		if norm(k) == norm(name) {
			return v
		}
	}
	return nil
}

// writeRows commits n keys prefix/0000.. through cl, perTxn to a
// transaction, and records them in want.
func writeRows(t *testing.T, ctx context.Context, cl *client.Client, want map[string][]byte, prefix string, n, perTxn int) {
	t.Helper()
	for first := 0; first < n; first += perTxn {
		batch := make(map[string][]byte)
		for i := first; i < min(n, first+perTxn); i++ {
			batch[fmt.Sprintf("%s/%04d", prefix, i)] = fmt.Appendf(nil, "%s value %d", prefix, i)
		}
		err := cl.Update(ctx, func(tx *client.Txn) error {
			for k, v := range batch {
				if err := tx.Put([]byte(k), v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("write %s/%04d..: %v", prefix, first, err)
		}
		for k, v := range batch {
			want[k] = v
		}
	}
}

// listedMember is one member in `galena member list --json`.
type listedMember struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
}

// listMembers runs `galena member list --json` through the live members
// and returns the members listed.
func listMembers(t *testing.T, c *harness.Cluster) []listedMember {
	t.Helper()
	r := harness.RunCLI(galenaBin, c.LiveEndpoints(), "member", "list", "--json")
	if r.Err != nil || r.Code != 0 {
		t.Fatalf("%v\nwant exit 0", r)
	}
	ms, err := decodeMembers(r.Stdout)
	if err != nil {
		t.Fatalf("member list --json: %v in\n%s", err, r.Stdout)
	}
	return ms
}

// decodeMembers reads `member list --json`: one object with the cluster id,
// the leader's id and the members.
func decodeMembers(out string) ([]listedMember, error) {
	var list struct {
		ClusterID string         `json:"cluster_id"`
		Members   []listedMember `json:"members"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, err
	}
	if list.ClusterID == "" {
		return nil, errors.New("no cluster_id")
	}
	return list.Members, nil
}

// wantMembers checks that `galena member list` shows exactly the members
// of want (id → voter), with their addresses.
func wantMembers(t *testing.T, c *harness.Cluster, want map[string]bool) {
	t.Helper()
	ms := listMembers(t, c)
	got := make(map[string]bool)
	for _, m := range ms {
		got[m.ID] = m.Voter
		if i := slices.Index(c.Endpoints(), m.Address); i < 0 || c.ID(i) != m.ID {
			t.Errorf("member list: %+v, not a member of the harness at that address", m)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("member list: %v (id:voter), want %v", got, want)
	}
}
