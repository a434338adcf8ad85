package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/harness"
	"github.com/galenadb/galena/integration/nemesis"
)

// Environment variables that change TestNemesisSchedule, to reproduce a run
// or to run longer: the seed of its random choices, the fault mix (as
// nemesis.ParseKinds takes it) and how long faults are injected.
const (
	SeedEnv     = "GALENA_NEMESIS_SEED"
	FaultsEnv   = "GALENA_NEMESIS_FAULTS"
	DurationEnv = "GALENA_NEMESIS_DURATION"
)

// isolatedAnswerBound is how long an isolated member may take to refuse a
// commit: its leader lease (500ms) plus its NotPrimaryTimeout (2s), with
// room to spare.
const isolatedAnswerBound = 5 * time.Second

// startFaultCluster starts a ready cluster of n members whose links run
// through the proxies of the Net it returns, or skips under -short.
func startFaultCluster(t *testing.T, n int) (*harness.Cluster, *nemesis.Net) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration: starts real galena processes")
	}
	return nemesis.NewCluster(t, harness.Options{Binary: galenaBin, Members: n}, 0)
}

// Isolating the leader through the proxies: it stops being primary and
// refuses commits within a few seconds, and nothing it was asked to commit
// survives; the majority elects a leader and keeps committing; after Heal
// the isolated member catches up.
func TestIsolatedLeaderStepsDownMajorityCommits(t *testing.T) {
	c, nw := startFaultCluster(t, 3)
	ctx := testCtx(t, 50*time.Second)
	want := make(map[string][]byte)
	putThrough(t, ctx, c, want, "before")
	ld := mustLeader(t, c)
	for j := range c.Size() {
		if j != ld && (nw.Stats(ld, j).Bytes == 0 || nw.Stats(j, ld).Bytes == 0) {
			t.Fatalf("no traffic through the proxies between %s and %s: %+v, %+v",
				c.ID(ld), c.ID(j), nw.Stats(ld, j), nw.Stats(j, ld))
		}
	}

	nw.Isolate(ld)
	t.Logf("isolated leader %s: %v", c.ID(ld), nw)
	isolated := c.Member(ld).Probe()
	took, err := timedPut(ctx, isolated, "isolated/1")
	t.Logf("first commit through the isolated %s: %v after %v", c.ID(ld), err, took)
	if !errors.Is(err, client.ErrNotPrimary) && !errors.Is(err, client.ErrIndeterminate) {
		t.Errorf("commit through the isolated leader: %v, want ErrNotPrimary or ErrIndeterminate", err)
	}
	if took > isolatedAnswerBound {
		t.Errorf("the isolated leader took %v to answer, want at most %v", took, isolatedAnswerBound)
	}
	want["isolated/1"] = nil // never acknowledged, and nothing could leave the member
	// Having stepped down, it knows it has no leader: refused outright.
	took, err = timedPut(ctx, isolated, "isolated/2")
	if !errors.Is(err, client.ErrNotPrimary) || took > isolatedAnswerBound {
		t.Errorf("second commit through the isolated %s: %v after %v, want ErrNotPrimary within %v",
			c.ID(ld), err, took, isolatedAnswerBound)
	}
	want["isolated/2"] = nil
	if st, err := c.Member(ld).Status(); err != nil || st.GetState() != "NON_PRIMARY" {
		t.Errorf("isolated %s: status %v (%v), want NON_PRIMARY", c.ID(ld), st, err)
	}

	// Leader fails if the isolated member still claims to lead.
	if nl := mustLeader(t, c); nl == ld {
		t.Fatalf("the isolated %s is still the only leader", c.ID(ld))
	}
	for i := range c.Size() {
		if i == ld {
			continue
		}
		cl := newClient(t, c, c.Endpoint(i))
		for n := range 5 {
			k, v := fmt.Sprintf("majority/%s/%d", c.ID(i), n), "v"
			if err := cl.Put(ctx, []byte(k), []byte(v)); err != nil {
				t.Fatalf("put %s through %s in the majority: %v", k, c.ID(i), err)
			}
			want[k] = []byte(v)
		}
	}
	var dropped int64
	for j := range c.Size() {
		if j != ld {
			dropped += nw.Stats(ld, j).Dropped + nw.Stats(j, ld).Dropped
		}
	}
	if dropped == 0 {
		t.Errorf("no byte was dropped on the isolated leader's links")
	}

	nw.Heal()
	if err := c.WaitReady(); err != nil {
		t.Fatal(err)
	}
	ensureSame(t, c, want)
	if err := isolated.Put(ctx, []byte("after/heal"), []byte(c.ID(ld))); err != nil {
		t.Fatalf("put through %s after the heal: %v", c.ID(ld), err)
	}
	want["after/heal"] = []byte(c.ID(ld))
	ensureSame(t, c, want)
}

// A follower cut off from the leader while it forwards commits answers a
// commit within a few seconds, as it does once it knows it has no leader,
// even when the partition never resets its stream to the leader.
func TestPartitionedFollowerAnswersPromptly(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts real galena processes")
	}
	c, nw := nemesis.NewCluster(t, harness.Options{Binary: galenaBin, Members: 3}, time.Minute)
	ctx := testCtx(t, 50*time.Second)
	ld := mustLeader(t, c)
	f := (ld + 1) % c.Size()
	cl := c.Member(f).Probe()
	want := make(map[string][]byte)
	putThrough(t, ctx, c, want, "before") // f's stream to the leader is open

	nw.Isolate(f)
	took, err := timedPut(ctx, cl, "cut-off")
	t.Logf("commit through the isolated follower %s: %v after %v", c.ID(f), err, took)
	switch {
	case err == nil:
		t.Fatalf("the isolated follower %s acknowledged a write", c.ID(f))
	case !errors.Is(err, client.ErrNotPrimary) && !errors.Is(err, client.ErrIndeterminate):
		t.Errorf("commit through the isolated follower: %v, want ErrNotPrimary or ErrIndeterminate", err)
	case took > isolatedAnswerBound:
		t.Errorf("the isolated follower took %v to answer, want at most %v", took, isolatedAnswerBound)
	}
	want["cut-off"] = nil // its bytes never left the follower's proxy

	nw.Heal()
	if err := c.WaitReady(); err != nil {
		t.Fatal(err)
	}
	ensureSame(t, c, want)
}

// SIGSTOP the leader: the others elect a new one and commit; a commit sent
// to the paused leader waits in its socket and, once it is continued, gets
// an answer that matches what the cluster holds; it rejoins.
func TestPausedLeaderReplacedThenRejoins(t *testing.T) {
	c, _ := startFaultCluster(t, 3)
	ctx := testCtx(t, 50*time.Second)
	want := make(map[string][]byte)
	putThrough(t, ctx, c, want, "before")
	ld := mustLeader(t, c)
	if err := c.Member(ld).Pause(); err != nil {
		t.Fatal(err)
	}
	t.Logf("paused leader %s", c.ID(ld))
	stalled := make(chan error, 1)
	paused := newClient(t, c, c.Endpoint(ld))
	go func() { stalled <- paused.Put(ctx, []byte("stalled"), []byte("v")) }()

	if nl := mustLeader(t, c); nl == ld {
		t.Fatalf("paused %s reported as leader", c.ID(ld))
	}
	survivors := newClient(t, c, c.EndpointsExcept(ld)...)
	for n := range 10 {
		k := fmt.Sprintf("during/%d", n)
		if err := survivors.Put(ctx, []byte(k), []byte("v")); err != nil {
			t.Fatalf("put %s through the survivors: %v", k, err)
		}
		want[k] = []byte("v")
	}

	if err := c.Member(ld).Resume(); err != nil {
		t.Fatal(err)
	}
	err := <-stalled
	t.Logf("commit sent to the paused %s: %v", c.ID(ld), err)
	expectPut(want, "stalled", []byte("v"), err)
	if err := c.WaitReady(); err != nil {
		t.Fatal(err)
	}
	ensureSame(t, c, want)
}

// With 50ms added on every link, commits through every member still
// succeed, and each takes at least a replication round trip.
func TestLatencyCommitsStillSucceed(t *testing.T) {
	const delay = 50 * time.Millisecond
	c, nw := startFaultCluster(t, 3)
	ctx := testCtx(t, 50*time.Second)
	for from := range c.Size() {
		for to := range c.Size() {
			if from != to {
				nw.Delay(from, to, delay)
			}
		}
	}
	want := make(map[string][]byte)
	for i := range c.Size() {
		cl := newClient(t, c, c.Endpoint(i))
		for n := range 3 {
			k := fmt.Sprintf("slow/%s/%d", c.ID(i), n)
			began := time.Now()
			if err := cl.Put(ctx, []byte(k), []byte("v")); err != nil {
				t.Fatalf("put %s through %s with %v latency: %v", k, c.ID(i), delay, err)
			}
			took := time.Since(began)
			want[k] = []byte("v")
			if took < 2*delay {
				t.Errorf("put %s through %s took %v, less than a round trip (%v)", k, c.ID(i), took, 2*delay)
			}
			t.Logf("put through %s: %v", c.ID(i), took)
		}
	}
	nw.Heal()
	if err := c.WaitReady(); err != nil {
		t.Fatal(err)
	}
	ensureSame(t, c, want)
}

// A mixed fault schedule under a light write load through every member:
// once healed, the members converge on identical contents that hold every
// acknowledged write and no write that definitely failed, and the shared
// counter counts every acknowledged increment and no more than were tried.
func TestNemesisSchedule(t *testing.T) {
	c, nw := startFaultCluster(t, 3)
	kinds, err := nemesis.ParseKinds(nemesisEnv(FaultsEnv, "all"))
	if err != nil {
		t.Fatal(err)
	}
	duration, err := time.ParseDuration(nemesisEnv(DurationEnv, "12s"))
	if err != nil {
		t.Fatalf("%s: %v", DurationEnv, err)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(SeedEnv); s != "" {
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s: %v", SeedEnv, err)
		}
	}
	t.Logf("nemesis: %v for %v, seed %d (%s=%d to repeat)", kinds, duration, seed, SeedEnv, seed)
	ctx := testCtx(t, duration+45*time.Second)

	w := startFaultLoad(t, c)
	n := nemesis.New(c, nw, seed)
	events, err := nemesis.Schedule{Kinds: kinds, Duration: duration, Logf: t.Logf}.Run(ctx, n)
	w.stop()
	t.Logf("nemesis summary:\n%s\nworkload: %s", nemesis.Summary(events), w)
	if err != nil {
		t.Errorf("nemesis: %v", err)
	}
	if err := n.HealAll(); err != nil {
		t.Fatal(err)
	}
	want := w.model()
	putThrough(t, ctx, c, want, "healed")
	kvs := ensureSame(t, c, want)
	if err := w.checkCounter(kvs); err != nil {
		t.Error(err)
	}
}

// A member whose Raft log suffix was truncated restarts on its data: it led,
// was cut off while appending an entry, and the new leader's log replaced
// that entry once the network healed. (With raft-wal v0.4.0 it panicked on
// every restart: hashicorp/raft-wal#31.)
func TestRestartAfterLogSuffixTruncated(t *testing.T) {
	c, nw := startFaultCluster(t, 3)
	ctx := testCtx(t, 40*time.Second)
	want := make(map[string][]byte)
	putThrough(t, ctx, c, want, "before")
	ld := mustLeader(t, c)
	nw.Isolate(ld)
	if _, err := timedPut(ctx, c.Member(ld).Probe(), "orphan"); err == nil {
		t.Fatalf("the isolated leader %s acknowledged a write", c.ID(ld))
	}
	want["orphan"] = nil
	if nl := mustLeader(t, c); nl == ld {
		t.Fatalf("the isolated %s is still the only leader", c.ID(ld))
	}
	if err := newClient(t, c, c.EndpointsExcept(ld)...).Put(ctx, []byte("majority"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	want["majority"] = []byte("v")
	nw.Heal()
	if err := c.WaitReady(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(c.Member(ld).LogPath()); err != nil || !strings.Contains(string(b), "clearing log suffix") {
		t.Fatalf("%s did not truncate its log suffix (%v): the test's premise failed", c.ID(ld), err)
	}

	restarts := []struct {
		name string
		do   func(*harness.Member) error
	}{
		{"restart (SIGTERM)", (*harness.Member).Restart},
		{"kill -9 and start", func(m *harness.Member) error { return errors.Join(m.Kill(), m.Start()) }},
	}
	for _, r := range restarts {
		if err := r.do(c.Member(ld)); err != nil {
			t.Fatalf("%s of %s: %v", r.name, c.ID(ld), err)
		}
		if err := c.WaitReady(); err != nil {
			t.Fatal(err)
		}
		ensureSame(t, c, want)
	}
}

// faultLoad writes through every member, each worker on a client bound to
// one member (and one on a client of all of them), alternating puts of
// unique keys and increments of one shared counter, and records every
// outcome.
type faultLoad struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	acked   map[string][]byte // acknowledged puts
	failed  map[string]bool   // puts that definitely failed: must be absent
	unknown map[string]bool   // indeterminate puts: either way
	incs    struct{ acked, failed, unknown int }
}

const (
	faultLoadPace      = 50 * time.Millisecond // between one worker's operations
	faultLoadOpTimeout = 5 * time.Second       // bounds one operation
	faultLoadCounter   = "shared/counter"
)

func startFaultLoad(t *testing.T, c *harness.Cluster) *faultLoad {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	w := &faultLoad{cancel: cancel, acked: map[string][]byte{}, failed: map[string]bool{}, unknown: map[string]bool{}}
	setup, done := context.WithTimeout(ctx, 10*time.Second)
	defer done()
	if err := newClient(t, c).Put(setup, []byte(faultLoadCounter), []byte("0")); err != nil {
		t.Fatalf("create the counter: %v", err)
	}
	for i := range c.Size() + 1 {
		eps, name := c.Endpoints(), "all"
		if i < c.Size() {
			eps, name = []string{c.Endpoint(i)}, c.ID(i)
		}
		cl := newClient(t, c, eps...)
		w.wg.Go(func() { w.run(ctx, cl, name) })
	}
	return w
}

func (w *faultLoad) stop() {
	w.cancel()
	w.wg.Wait()
}

func (w *faultLoad) run(ctx context.Context, cl *client.Client, name string) {
	tick := time.NewTicker(faultLoadPace)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		op, cancel := context.WithTimeout(ctx, faultLoadOpTimeout)
		if n%2 == 0 {
			k, v := fmt.Sprintf("w/%s/%05d", name, n), fmt.Sprintf("%s#%d", name, n)
			err := cl.Put(op, []byte(k), []byte(v))
			w.put(ctx, k, []byte(v), err)
		} else {
			w.increment(ctx, cl.Update(op, incrementCounter(op)))
		}
		cancel()
	}
}

func incrementCounter(ctx context.Context) func(tx *client.Txn) error {
	return func(tx *client.Txn) error {
		v, err := tx.Get(ctx, []byte(faultLoadCounter))
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(string(v))
		if err != nil {
			return fmt.Errorf("counter holds %q", v)
		}
		return tx.Put([]byte(faultLoadCounter), []byte(strconv.Itoa(n+1)))
	}
}

// put records a put's outcome; outcomes cut short by the end of the run
// are indeterminate.
func (w *faultLoad) put(ctx context.Context, k string, v []byte, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err == nil:
		w.acked[k] = v
	case errors.Is(err, client.ErrIndeterminate) || ctx.Err() != nil:
		w.unknown[k] = true
	default:
		w.failed[k] = true
	}
}

func (w *faultLoad) increment(ctx context.Context, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err == nil:
		w.incs.acked++
	case errors.Is(err, client.ErrIndeterminate) || ctx.Err() != nil:
		w.incs.unknown++
	default:
		w.incs.failed++
	}
}

// model is what the members must hold: every acknowledged put, and none
// that definitely failed.
func (w *faultLoad) model() map[string][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	want := make(map[string][]byte, len(w.acked)+len(w.failed))
	for k, v := range w.acked {
		want[k] = v
	}
	for k := range w.failed {
		want[k] = nil
	}
	return want
}

// checkCounter checks the counter in kvs against the increments: at least
// every acknowledged one, at most those that may have been applied.
func (w *faultLoad) checkCounter(kvs []client.KV) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, kv := range kvs {
		if string(kv.Key) != faultLoadCounter {
			continue
		}
		n, err := strconv.Atoi(string(kv.Value))
		if err != nil || n < w.incs.acked || n > w.incs.acked+w.incs.unknown {
			return fmt.Errorf("counter holds %q after %d acknowledged and %d indeterminate increments",
				kv.Value, w.incs.acked, w.incs.unknown)
		}
		return nil
	}
	return errors.New("the counter is missing")
}

func (w *faultLoad) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return fmt.Sprintf("puts %d acknowledged, %d failed, %d indeterminate; increments %d acknowledged, %d failed, %d indeterminate",
		len(w.acked), len(w.failed), len(w.unknown), w.incs.acked, w.incs.failed, w.incs.unknown)
}

// checkCounter accepts a counter between the acknowledged increments and
// those that may have been applied, and nothing else.
func TestCheckCounter(t *testing.T) {
	kv := func(k, v string) client.KV { return client.KV{Key: []byte(k), Value: []byte(v)} }
	counter := func(v string) []client.KV { return []client.KV{kv("a", "1"), kv(faultLoadCounter, v), kv("z", "2")} }
	for _, tc := range []struct {
		name           string
		acked, unknown int
		kvs            []client.KV
		err            string // "" when it must pass
	}{
		{"every acknowledged increment", 5, 0, counter("5"), ""},
		{"some indeterminate applied", 5, 3, counter("7"), ""},
		{"every indeterminate applied", 5, 3, counter("8"), ""},
		{"acknowledged increment lost", 5, 3, counter("4"), `counter holds "4" after 5 acknowledged`},
		{"more than were tried", 5, 3, counter("9"), `counter holds "9"`},
		{"not a number", 0, 0, counter("x"), `counter holds "x"`},
		{"counter missing", 0, 0, []client.KV{kv("a", "1")}, "the counter is missing"},
		{"no contents", 0, 0, nil, "the counter is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &faultLoad{}
			w.incs.acked, w.incs.unknown = tc.acked, tc.unknown
			err := w.checkCounter(tc.kvs)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("rejected a good counter: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("err = %v, want one saying %q", err, tc.err)
			}
		})
	}
}

// putThrough puts one key through each running member alone and records it
// in want.
func putThrough(t *testing.T, ctx context.Context, c *harness.Cluster, want map[string][]byte, prefix string) {
	t.Helper()
	for _, i := range c.RunningMembers() {
		k, v := prefix+"/"+c.ID(i), "through "+c.ID(i)
		if err := newClient(t, c, c.Endpoint(i)).Put(ctx, []byte(k), []byte(v)); err != nil {
			t.Fatalf("put %s through %s: %v", k, c.ID(i), err)
		}
		want[k] = []byte(v)
	}
}

// timedPut puts key=v through cl, bounded by isolatedAnswerBound and a
// margin, and says how long the answer took.
func timedPut(ctx context.Context, cl *client.Client, key string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*isolatedAnswerBound)
	defer cancel()
	began := time.Now()
	err := cl.Put(ctx, []byte(key), []byte("v"))
	return time.Since(began), err
}

// expectPut adds a put's outcome to want: an acknowledged write must be
// there, a definitely failed one must not; an indeterminate one may be.
func expectPut(want map[string][]byte, k string, v []byte, err error) {
	switch {
	case err == nil:
		want[k] = v
	case !errors.Is(err, client.ErrIndeterminate):
		want[k] = nil
	}
}

// mustLeader is c.Leader, failing the test on error.
func mustLeader(t testing.TB, c *harness.Cluster) int {
	t.Helper()
	ld, err := c.Leader()
	if err != nil {
		t.Fatal(err)
	}
	return ld
}

func nemesisEnv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
