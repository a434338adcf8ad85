package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/harness"
)

// sstMinStreamMB is the data set size from which the joiner's peak
// anonymous memory must stay below half the data set's size: it streams the
// snapshot, never holds it.
const sstMinStreamMB = 200

// A joiner of a cluster whose log was compacted (small --snapshot-threshold
// and --trailing-logs) receives the state as a Raft snapshot (SST), ends a
// SYNCED voter with the data set intact, and the members' digests agree.
// Logs the transfer's rate and the donor's and joiner's peak RSS during it.
func TestOpsStateTransferBySnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts real galena processes")
	}
	d := newDataSet("bulk", *opsSSTMB)
	slack := time.Duration(d.MB()) * 500 * time.Millisecond // 2 MB/s at worst
	c := harness.NewCluster(t, harness.Options{Binary: galenaBin, Members: 3, WaitTimeout: 20*time.Second + slack,
		ExtraArgs: []string{"--snapshot-threshold", "16", "--trailing-logs", "8"}})
	ctx := testCtx(t, 2*time.Minute+4*slack)
	began := time.Now()
	if err := d.load(ctx, newClient(t, c), 4); err != nil {
		t.Fatalf("load %.0f MB: %v", d.MB(), err)
	}
	t.Logf("loaded %.0f MB in %v", d.MB(), time.Since(began).Round(time.Millisecond))
	want := make(map[string][]byte)
	writeRows(t, ctx, newClient(t, c), want, "rows", 40, 1) // past the snapshot
	target := converge(t, c)
	for i := range c.Size() { // each takes its own snapshots; any may lead
		if _, err := c.Member(i).Process().WaitLog(20*time.Second, "compacting logs"); err != nil {
			t.Fatalf("no snapshot although --snapshot-threshold 16: %v", err)
		}
	}
	ld := mustLeader(t, c)

	donorPID := c.Member(ld).Process().PID()
	memErr := harness.ResetPeakRSS(donorPID)
	j := addMember(t, c, ld)
	states := watchStates(c)
	began = time.Now()
	if err := c.Member(j).Start(); err != nil {
		t.Fatal(err)
	}
	joinerPID := c.Member(j).Process().PID()
	anon := harness.SampleAnon(20*time.Millisecond, donorPID, joinerPID)
	_, err := c.Member(j).WaitStatus(opsJoinTimeout+4*slack, func(st *galenapb.StatusResponse) error {
		if st.GetAppliedSeqno() < target {
			return fmt.Errorf("%s applied %d of %d", st.GetId(), st.GetAppliedSeqno(), target)
		}
		return harness.SyncedVoter(st)
	})
	took := time.Since(began)
	seen := states.stop()
	anonPeak := anon.Stop()
	if err != nil {
		t.Fatalf("%v; states seen: %s", err, seen)
	}
	donorPeak, joinerPeak := peakRSS(t, memErr, donorPID, joinerPID)
	donorNow, _ := harness.RSSParts(donorPID)
	joinerNow, _ := harness.RSSParts(joinerPID)
	t.Logf("SST of %.0f MB to %s: SYNCED voter in %v, %.1f MB/s; donor (leader %s): peak RSS %.0f MB, peak anonymous %.0f MB (now %s); joiner: peak RSS %.0f MB, peak anonymous %.0f MB (now %s); states: %s",
		d.MB(), c.ID(j), took.Round(time.Millisecond), d.MB()/took.Seconds(), c.ID(ld), mb(donorPeak), mb(anonPeak[donorPID]), donorNow,
		mb(joinerPeak), mb(anonPeak[joinerPID]), joinerNow, seen)

	if _, err := c.Member(j).Process().WaitLog(time.Second, "Installed remote snapshot"); err != nil {
		t.Errorf("the joiner did not receive the state by snapshot: %v", err)
	}
	// Streamed, never held whole: the joiner's own memory stays well under
	// the data set. Its RSS also counts the pages of storage's
	// memory-mapped files, which are the page cache, not its memory.
	if p, ok := anonPeak[joinerPID]; d.MB() >= sstMinStreamMB && memErr == nil && (!ok || p >= d.Bytes()/2) {
		t.Errorf("joiner peak anonymous memory %.0f MB (measured: %v) for a %.0f MB data set: the snapshot is not streamed (now: %s)", mb(p), ok, d.MB(), joinerNow)
	}
	converge(t, c)
	if err := d.verify(ctx, c, j); err != nil {
		t.Error(err)
	}
	ensureSamePrefix(t, c, "rows/", want)
	wantCheckOK(t, c)
}

// peakRSS reads the peak RSS of the donor and joiner processes, or logs why
// it cannot: memErr, from resetting the donor's peak, says whether it can.
func peakRSS(t *testing.T, memErr error, donor, joiner int) (int64, int64) {
	t.Helper()
	if errors.Is(memErr, errors.ErrUnsupported) {
		t.Log("peak RSS: not measured on this system")
		return 0, 0
	}
	if memErr != nil {
		t.Fatal(memErr)
	}
	dp, err := harness.PeakRSS(donor)
	if err != nil {
		t.Fatal(err)
	}
	jp, err := harness.PeakRSS(joiner)
	if err != nil {
		t.Fatal(err)
	}
	return dp, jp
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// A follower killed (-9) and restarted resumes from the applied seqno it
// stored, not from the start of the log, and catches up from the log, with a
// small and a larger data set held and with M and 10·M write-sets missed;
// every member ends with the same contents. BenchmarkOpsRestartCatchUp
// measures how long the catch-up takes.
func TestOpsRestartResumesFromApplied(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t, 10*time.Minute)
	small, large := newDataSet("small", 1), newDataSet("large", 15)
	want := make(map[string][]byte)
	if err := small.load(ctx, newClient(t, c), 4); err != nil {
		t.Fatal(err)
	}
	rejoin(t, ctx, c, want, "m1", 100)
	if err := large.load(ctx, newClient(t, c), 4); err != nil {
		t.Fatal(err)
	}
	rejoin(t, ctx, c, want, "m2", 100)
	rejoin(t, ctx, c, want, "m3", 1000)

	converge(t, c)
	for i := range c.Size() {
		if err := small.verify(ctx, c, i); err != nil {
			t.Error(err)
		}
		if err := large.verify(ctx, c, i); err != nil {
			t.Error(err)
		}
	}
	ensureSamePrefix(t, c, "missed/", want)
	wantCheckOK(t, c)
}

// BenchmarkOpsRestartCatchUp measures how long a follower killed (-9) takes,
// from its restart, to apply the write-sets it missed, for a small and a
// large data set held and for M and 10·M write-sets missed: the time should
// grow with what was missed, not with what is held. By default the large
// set is 16 MB and M is 100; -ops.figures makes them 200 MB and 1000.
//
//	go test ./integration/ -run '^$' -bench OpsRestartCatchUp -benchtime 3x -timeout 30m
func BenchmarkOpsRestartCatchUp(b *testing.B) {
	if testing.Short() {
		b.Skip("integration: starts real galena processes")
	}
	largeMB, m := 16, 100
	if *opsFigures {
		largeMB, m = 200, 1000
	}
	for _, bc := range []struct{ heldMB, missed int }{{1, m}, {largeMB, m}, {largeMB, 10 * m}} {
		b.Run(fmt.Sprintf("held=%dMB/missed=%d", bc.heldMB, bc.missed), func(b *testing.B) {
			c := harness.NewCluster(b, harness.Options{Binary: galenaBin, Members: 3})
			ctx := b.Context()
			if err := newDataSet("held", bc.heldMB).load(ctx, newClient(b, c), 4); err != nil {
				b.Fatal(err)
			}
			want := make(map[string][]byte)
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				f, before, target := miss(b, ctx, c, want, fmt.Sprintf("b%d", i), bc.missed)
				b.StartTimer()
				catchUp(b, c, f, before, target, bc.missed)
			}
		})
	}
}

// rejoin kills a follower, commits missed single-key write-sets through the
// others, and restarts it (see catchUp).
func rejoin(t *testing.T, ctx context.Context, c *harness.Cluster, want map[string][]byte, prefix string, missed int) {
	t.Helper()
	f, before, target := miss(t, ctx, c, want, prefix, missed)
	catchUp(t, c, f, before, target, missed)
}

// miss kills a follower and commits missed single-key write-sets through the
// others. It returns the follower, the seqno it had applied before the kill
// and the seqno the others then converged on.
func miss(t testing.TB, ctx context.Context, c *harness.Cluster, want map[string][]byte, prefix string, missed int) (f int, before, target uint64) {
	t.Helper()
	f = (mustLeader(t, c) + 1) % c.Size()
	st, err := c.Member(f).Status()
	if err != nil {
		t.Fatal(err)
	}
	before = st.GetAppliedSeqno()
	if err := c.Member(f).Kill(); err != nil {
		t.Fatal(err)
	}
	putMany(t, ctx, newClient(t, c, c.EndpointsExcept(f)...), want, "missed/"+prefix, missed, 8)
	return f, before, converge(t, c)
}

// catchUp restarts member f and waits until it has applied target. It checks
// that the member resumed from at least before, the seqno it had applied
// before the kill.
func catchUp(t testing.TB, c *harness.Cluster, f int, before, target uint64, missed int) {
	t.Helper()
	began := time.Now()
	if err := c.Member(f).Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Member(f).WaitStatus(time.Minute, func(st *galenapb.StatusResponse) error {
		if st.GetAppliedSeqno() < target {
			return fmt.Errorf("applied %d of %d", st.GetAppliedSeqno(), target)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	resumed, err := c.Member(f).Process().StartedApplied(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if resumed < before {
		t.Errorf("%s resumed from applied seqno %d, below the %d it had applied before the kill", c.ID(f), resumed, before)
	}
	t.Logf("%s: applied %d before kill -9, resumed from %d, caught up to %d (%d write-sets missed) in %v",
		c.ID(f), before, resumed, target, missed, took.Round(time.Millisecond))
}

// putMany puts n keys prefix/0000000.. through cl, one write-set each, from
// writers concurrent writers (again when the outcome is unknown: see
// idempotent), and records them in want.
func putMany(t testing.TB, ctx context.Context, cl *client.Client, want map[string][]byte, prefix string, n, writers int) {
	t.Helper()
	var next atomic.Int64
	var mu sync.Mutex
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				k, v := fmt.Sprintf("%s/%07d", prefix, i), fmt.Appendf(nil, "v%d", i)
				errs[w] = idempotent(ctx, func() error { return cl.Put(ctx, []byte(k), v) })
				if errs[w] != nil {
					return
				}
				mu.Lock()
				want[k] = v
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("put %s/..: %v", prefix, err)
	}
}

// checkReport is the output of `galena check --json`.
type checkReport struct {
	Verdict string `json:"verdict"`
	Seqno   uint64 `json:"seqno"`
	Members []struct {
		ID      string `json:"id"`
		Outcome string `json:"outcome"`
	} `json:"members"`
}

// runCheck runs `galena check --json` through endpoints and decodes its
// report.
func runCheck(t *testing.T, endpoints []string) (checkReport, harness.CLIResult) {
	t.Helper()
	r := harness.RunCLI(galenaBin, endpoints, "check", "--json")
	var rep checkReport
	if err := json.Unmarshal([]byte(r.Stdout), &rep); r.Err != nil || err != nil {
		t.Fatalf("%v\nwant a JSON report (%v)", r, err)
	}
	return rep, r
}

// outcomes maps each member's id to its outcome in rep.
func (rep checkReport) outcomes() map[string]string {
	m := make(map[string]string)
	for _, mb := range rep.Members {
		m[mb.ID] = mb.Outcome
	}
	return m
}

// wantCheckOK runs `galena check` through the live members and wants it to
// pass, with every running data member compared and agreeing.
func wantCheckOK(t *testing.T, c *harness.Cluster) {
	t.Helper()
	rep, r := runCheck(t, c.LiveEndpoints())
	want := make(map[string]string)
	for i := range c.Size() {
		switch {
		case c.Member(i).Arbitrator():
			want[c.ID(i)] = "arbitrator"
		case c.Running(i):
			want[c.ID(i)] = "agrees"
		}
	}
	got := rep.outcomes()
	for id, o := range got {
		if o == "unreachable" && want[id] == "" {
			delete(got, id) // a member that does not run
		}
	}
	if r.Code != 0 || rep.Verdict != "consistent" || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%v\nwant exit 0, verdict consistent and outcomes %v", r, want)
	}
}

// stateWatch records, per member, the sequence of distinct states its
// Status reports while it runs.
type stateWatch struct {
	done chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	seq  map[string][]string
}

// watchStates polls every running member's state until stop.
func watchStates(c *harness.Cluster) *stateWatch {
	w := &stateWatch{done: make(chan struct{}), seq: make(map[string][]string)}
	w.wg.Go(func() {
		tick := time.NewTicker(harness.PollInterval / 2)
		defer tick.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-tick.C:
			}
			for _, i := range c.LiveMembers() {
				if st, err := c.Member(i).Status(); err == nil {
					w.note(st.GetId(), st.GetState())
				}
			}
		}
	})
	return w
}

func (w *stateWatch) note(id, state string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s := w.seq[id]; len(s) == 0 || s[len(s)-1] != state {
		w.seq[id] = append(s, state)
	}
}

// stop ends the watch and describes what it saw, e.g. "n1 SYNCED>DONOR>SYNCED".
func (w *stateWatch) stop() string {
	close(w.done)
	w.wg.Wait()
	ids := make([]string, 0, len(w.seq))
	for id := range w.seq {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = id + " " + strings.Join(w.seq[id], ">")
	}
	return strings.Join(parts, ", ")
}

// arbitratorHandOff bounds how long an arbitrator may lead before it hands
// leadership to a data member.
const arbitratorHandOff = 5 * time.Second

// Two data members and an arbitrator: the arbitrator never leads for long;
// with a data member killed (-9) the survivor keeps committing; the dead one
// is removed, wiped and joined again, and receives everything from the
// survivor.
func TestOpsArbitrator(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts real galena processes")
	}
	const arb = 2
	c := harness.NewCluster(t, harness.Options{Binary: galenaBin, Members: 3, MemberArgs: [][]string{nil, nil, {"--arbitrator"}}})
	lead := watchLeading(c, arb)
	ctx := testCtx(t, 2*time.Minute)
	rows, _ := statusRows(t, c)
	for i, r := range rows {
		if want := map[bool]string{false: "data", true: "arbitrator"}[i == arb]; r.Role != want {
			t.Errorf("galena status: %s has role %q, want %q", r.ID, r.Role, want)
		}
	}
	want := make(map[string][]byte)
	writeRows(t, ctx, newClient(t, c, c.Endpoint(0), c.Endpoint(1)), want, "before", 100, 10)

	dead := dataLeader(t, c, arb)
	survivor := 1 - dead
	if err := c.Member(dead).Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed the leader %s; %s and the arbitrator %s remain", c.ID(dead), c.ID(survivor), c.ID(arb))
	dataLeader(t, c, arb) // the survivor: the only data member left
	writeRows(t, ctx, newClient(t, c, c.Endpoint(survivor)), want, "while-down", 100, 1)

	removeMember(t, c, []string{c.Endpoint(survivor)}, dead)
	if err := c.Member(dead).Wipe(); err != nil {
		t.Fatal(err)
	}
	c.Member(dead).SetJoin(survivor)
	if err := c.Member(dead).Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Member(dead).WaitStatus(opsJoinTimeout, harness.SyncedVoter); err != nil {
		t.Fatal(err)
	}
	ensureSame(t, c, want)
	writeRows(t, ctx, newClient(t, c, c.Endpoint(dead)), want, "rejoined", 20, 1)
	ensureSame(t, c, want)
	wantMembers(t, c, map[string]bool{c.ID(0): true, c.ID(1): true, c.ID(arb): true})

	dataLeader(t, c, arb)
	longest, times := lead.stop()
	t.Logf("the arbitrator %s led %d times, at most for %v", c.ID(arb), times, longest.Round(time.Millisecond))
	if longest > arbitratorHandOff {
		t.Errorf("the arbitrator %s led for %v at a stretch, want at most %v", c.ID(arb), longest, arbitratorHandOff)
	}
}

// dataLeader waits until the cluster has one leader that is not the
// arbitrator arb, and returns it. After the wait bound, an arbitrator that
// still leads fails the test.
func dataLeader(t *testing.T, c *harness.Cluster, arb int) int {
	t.Helper()
	ld := -1
	err := harness.WaitFor(arbitratorHandOff+c.Options().WaitTimeout, func() error {
		i, err := c.Leader()
		if err != nil {
			return err
		}
		if ld = i; i == arb {
			return fmt.Errorf("the arbitrator %s leads", c.ID(arb))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ld
}

// leadWatch samples whether one member reports itself Leader.
type leadWatch struct {
	done    chan struct{}
	wg      sync.WaitGroup
	longest time.Duration // longest stretch of Leader samples
	times   int           // stretches of Leader samples
}

// watchLeading samples member i's raft state until stop.
func watchLeading(c *harness.Cluster, i int) *leadWatch {
	w := &leadWatch{done: make(chan struct{})}
	w.wg.Go(func() {
		tick := time.NewTicker(harness.PollInterval)
		defer tick.Stop()
		var since time.Time // start of the current stretch; zero when not leading
		for {
			select {
			case <-w.done:
				return
			case <-tick.C:
			}
			st, err := c.Member(i).Status()
			leading := err == nil && st.GetRaftState() == harness.RaftLeader
			switch {
			case leading && since.IsZero():
				since = time.Now()
				w.times++
			case !leading && !since.IsZero():
				since = time.Time{}
			}
			if !since.IsZero() {
				w.longest = max(w.longest, time.Since(since))
			}
		}
	})
	return w
}

// stop ends the watch and returns the longest stretch and how many there
// were.
func (w *leadWatch) stop() (time.Duration, int) {
	close(w.done)
	w.wg.Wait()
	return w.longest, w.times
}
