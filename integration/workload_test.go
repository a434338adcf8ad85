package integration

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/checker"
	"github.com/galenadb/galena/integration/harness"
	"github.com/galenadb/galena/integration/nemesis"
)

// Flags of TestJepsen, e.g.
//
//	go test ./integration -run TestJepsen -v -jepsen.duration 30s -jepsen.workloads append,register
var (
	jepsenDuration   = flag.Duration("jepsen.duration", 6*time.Second, "how long each Jepsen workload's clients run")
	jepsenClients    = flag.Int("jepsen.clients", 6, "concurrent clients per Jepsen workload, spread over the members")
	jepsenWorkloads  = flag.String("jepsen.workloads", strings.Join(WorkloadNames, ","), "comma-separated Jepsen workloads to run: "+strings.Join(WorkloadNames, ", "))
	jepsenNemesis    = flag.String("jepsen.nemesis", "all", `faults injected while a Jepsen workload runs: fault kinds and groups as nemesis.ParseKinds takes them; "" or "none" for none`)
	jepsenHistoryDir = flag.String("jepsen.history-dir", "", "directory to keep each Jepsen workload's history in (a subdirectory per workload); default: a temporary directory, kept only on failure")
	jepsenSeed       = flag.Uint64("jepsen.seed", 0, "seed of the Jepsen clients' and faults' random choices; 0 picks one (printed)")
)

// TestJepsen runs each workload of -jepsen.workloads on a cluster of its
// own, with the faults -jepsen.nemesis names, and requires a valid history,
// identical contents on every member, some successful operations, and
// faults that were injected, took effect and were healed. The workloads
// share the fault kinds out in turn, so that together they inject every
// kind; one seed, printed, drives the clients and the faults of them all.
func TestJepsen(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts real galena processes")
	}
	names := jepsenWorkloadNames(t)
	mix := strings.TrimSpace(*jepsenNemesis)
	var kinds []nemesis.Kind
	if mix != "" && mix != "none" {
		var err error
		if kinds, err = nemesis.ParseKinds(mix); err != nil {
			t.Fatalf("-jepsen.nemesis=%q: %v", mix, err)
		}
	}
	seed := *jepsenSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("jepsen: seed %d (-jepsen.seed=%d repeats the clients' and the faults' choices)", seed, seed)
	injected := map[string]bool{}
	every := true // whether every workload ran
	for part, name := range names {
		ran := false
		t.Run(name, func(t *testing.T) {
			ran = true
			spec := nemesis.FaultSpec{Nemesis: mix, Seed: seed, Part: part, Parts: len(names)}
			for _, k := range runJepsen(t, name, spec).FaultKinds() {
				injected[k] = true
			}
		})
		every = every && ran
	}
	var missing []nemesis.Kind
	for _, k := range kinds {
		if !injected[string(k)] {
			missing = append(missing, k)
		}
	}
	if every && len(missing) > 0 {
		t.Errorf("fault kinds never injected by the workloads %v: %v", names, missing)
	}
}

// jepsenWorkloadNames are the workloads -jepsen.workloads lists.
func jepsenWorkloadNames(t *testing.T) []string {
	var names []string
	for _, name := range strings.Split(*jepsenWorkloads, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if _, err := NewWorkload(name); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	return names
}

// runJepsen runs workload name with the faults of spec on a new cluster,
// and fails t unless the run was valid.
func runJepsen(t *testing.T, name string, spec nemesis.FaultSpec) Report {
	if _, err := spec.Schedule(*jepsenDuration); err != nil {
		t.Fatalf("-jepsen.nemesis=%q: %v", spec.Nemesis, err)
	}
	withFaults := spec.Nemesis != "" && spec.Nemesis != "none"
	opts := harness.Options{Binary: galenaBin}
	var c *harness.Cluster
	var faults Faults // none unless withFaults
	if withFaults {
		var nw *nemesis.Net
		c, nw = nemesis.NewCluster(t, opts, 0)
		faults = jepsenFaults{n: nemesis.New(c, nw, spec.Seed), spec: spec}
	} else {
		c = harness.NewCluster(t, opts)
	}
	cfg := RunConfig{Workload: name, Duration: *jepsenDuration, Clients: *jepsenClients, Faults: faults, Seed: spec.Seed,
		HistoryDir: historyDir(t, name)}
	rep := Run(t.Context(), c, cfg)
	t.Logf("jepsen %s", rep.Summary())
	if !rep.Valid() || testing.Verbose() {
		t.Logf("jepsen report:\n%s", rep)
	}
	for _, err := range rep.Errors {
		t.Errorf("run: %v", err)
	}
	switch {
	case rep.CheckErr != nil:
		t.Errorf("check could not decide: %v", rep.CheckErr)
	case !rep.Result.Valid:
		t.Errorf("%d anomalies %v (history: %s)", rep.Anomalies(), rep.Result.Kinds(), rep.HistoryDir)
	}
	if rep.ContentsDiff != "" {
		t.Errorf("members' contents differ at seqno %d: %s", rep.Seqno, rep.ContentsDiff)
	}
	if rep.Ops.OK == 0 {
		t.Errorf("no operation succeeded: ok/fail/info=%s", rep.Ops)
	}
	if withFaults && len(rep.FaultKinds()) == 0 {
		t.Errorf("-jepsen.nemesis=%q: no fault was injected, took effect and was healed", spec.Nemesis)
	}
	return rep
}

// jepsenFaults injects the faults of a FaultSpec while a workload runs: the
// nemesis's Schedule for the run's length, its events as the Report shows
// them.
type jepsenFaults struct {
	n    *nemesis.Nemesis
	spec nemesis.FaultSpec
}

func (f jepsenFaults) Run(ctx context.Context, d time.Duration) ([]FaultEvent, error) {
	s, err := f.spec.Schedule(d)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	events, err := s.Run(ctx, f.n)
	out := make([]FaultEvent, len(events))
	for i, e := range events {
		out[i] = FaultEvent{Time: e.Time.Sub(start), Kind: string(e.Kind), Detail: e.Detail, Effect: e.Effect, Err: e.Err}
	}
	if err != nil {
		err = fmt.Errorf("nemesis with seed %d: %w", f.spec.Seed, err)
	}
	return out, err
}

func (f jepsenFaults) HealAll() error { return f.n.HealAll() }

// historyDir is where workload name keeps its history: a subdirectory of
// -jepsen.history-dir, or a new temporary directory removed when the test
// passes (unless harness.KeepEnv is set).
func historyDir(t *testing.T, name string) string {
	if *jepsenHistoryDir != "" {
		return filepath.Join(*jepsenHistoryDir, name)
	}
	dir, err := os.MkdirTemp("", "galena-jepsen-"+name+"-")
	if err != nil {
		t.Fatalf("history dir: %v", err)
	}
	t.Cleanup(func() {
		if !t.Failed() && os.Getenv(harness.KeepEnv) == "" {
			os.RemoveAll(dir)
			return
		}
		t.Logf("jepsen: history kept in %s", dir)
	})
	return dir
}

// Classify maps every client error to the outcome the checkers assume.
func TestClassify(t *testing.T) {
	conflict := &client.ConflictError{Key: []byte("k"), Seqno: 7}
	indeterminateUnavailable := fmt.Errorf("%w: no answer: %w", client.ErrIndeterminate, client.ErrUnavailable)
	for _, tc := range []struct {
		name     string
		err      error
		readOnly bool
		want     checker.Type
	}{
		{"nil", nil, false, checker.TypeOK},
		{"nil read", nil, true, checker.TypeOK},
		{"conflict", conflict, false, checker.TypeFail},
		{"wrapped conflict", fmt.Errorf("update gave up: %w: %w", context.DeadlineExceeded, conflict), false, checker.TypeFail},
		{"not primary", fmt.Errorf("%w: cut off", client.ErrNotPrimary), false, checker.TypeFail},
		{"unavailable", fmt.Errorf("%w: no endpoint", client.ErrUnavailable), false, checker.TypeFail},
		{"invalid key", client.ErrInvalidKey, false, checker.TypeFail},
		{"invalid argument", client.ErrInvalidArgument, false, checker.TypeFail},
		{"too large", client.ErrTooLarge, false, checker.TypeFail},
		{"snapshot too old", client.ErrSnapshotTooOld, false, checker.TypeFail},
		{"snapshot unavailable", client.ErrSnapshotUnavailable, false, checker.TypeFail},
		{"indeterminate", client.ErrIndeterminate, false, checker.TypeInfo},
		{"indeterminate before unavailable", indeterminateUnavailable, false, checker.TypeInfo},
		{"deadline", context.DeadlineExceeded, false, checker.TypeInfo},
		{"canceled", context.Canceled, false, checker.TypeInfo},
		{"unknown", errors.New("boom"), false, checker.TypeInfo},
		{"read deadline", context.DeadlineExceeded, true, checker.TypeFail},
		{"read indeterminate", client.ErrIndeterminate, true, checker.TypeFail},
		{"not applied deadline", NotApplied(context.DeadlineExceeded), false, checker.TypeFail},
		{"not applied wrapped", fmt.Errorf("step: %w", NotApplied(errors.New("boom"))), false, checker.TypeFail},
	} {
		if got := Classify(tc.err, tc.readOnly); got != tc.want {
			t.Errorf("%s: Classify(%v, %v) = %s, want %s", tc.name, tc.err, tc.readOnly, got, tc.want)
		}
	}
	if !errors.Is(NotApplied(client.ErrConflict), client.ErrConflict) || NotApplied(nil) != nil {
		t.Error("NotApplied must keep errors.Is and map nil to nil")
	}
}

// The Recorder keeps invocation order and monotonic times, under
// concurrency, and reports ops still pending as info without completion.
func TestRecorder(t *testing.T) {
	rec := NewRecorder()
	var wg sync.WaitGroup
	for p := range 8 {
		wg.Go(func() {
			for v := range 50 {
				inv := rec.Invoke(p, "n1", &checker.SetOp{F: checker.SetAdd, Value: p*1000 + v})
				inv.Complete(checker.TypeOK, nil, nil)
			}
		})
	}
	wg.Wait()
	pending := rec.Invoke(99, "n2", &checker.SetOp{F: checker.SetAdd, Value: 1})
	done := rec.Invoke(98, "n3", nil)
	got := done.Complete(checker.TypeFail, &checker.RegOp{F: checker.RegWrite, Key: "x", Value: 2}, client.ErrConflict)
	if got.Reg == nil || got.Error != client.ErrConflict.Error() || got.Process != 98 || got.Node != "n3" {
		t.Errorf("Complete returned %+v", got)
	}
	h := rec.History()
	if len(h) != 8*50+2 {
		t.Fatalf("%d ops, want %d", len(h), 8*50+2)
	}
	for i, o := range h {
		if i > 0 && o.Invoke < h[i-1].Invoke {
			t.Errorf("op %d invoked at %d, before op %d at %d", i, o.Invoke, i-1, h[i-1].Invoke)
		}
		if o.Type != checker.TypeInfo && (o.Invoke <= 0 || o.Complete < o.Invoke) {
			t.Errorf("op %d: invoke %d complete %d", i, o.Invoke, o.Complete)
		}
		if err := o.Validate(); err != nil {
			t.Errorf("op %d: %v", i, err)
		}
	}
	if p := h[len(h)-2]; p.Type != checker.TypeInfo || p.Complete != 0 || p.Process != 99 {
		t.Errorf("pending op recorded as %+v, want info without completion", p)
	}
	pending.Complete(checker.TypeOK, nil, nil)
	if p := rec.History()[len(h)-2]; p.Type != checker.TypeOK {
		t.Errorf("completed op recorded as %v", p)
	}
	defer func() {
		if recover() == nil {
			t.Error("completing twice did not panic")
		}
	}()
	pending.Complete(checker.TypeOK, nil, nil)
}

// Each workload's Check sees an anomaly planted in a history recorded the
// way Run records it (final reads included): the wiring from the
// workloads to the checkers loses nothing.
func TestWorkloadChecksCatchAnomalies(t *testing.T) {
	do := func(rec *Recorder, p int, node string, op checker.Op) checker.Op {
		return rec.Invoke(p, node, nil).CompleteOp(op)
	}
	check := func(name string, w Workload, h []checker.Op, final FinalState, want string) {
		t.Helper()
		res, err := w.Check(h, final)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.Valid || !slices.Contains(res.Kinds(), want) {
			t.Errorf("%s: want a %s anomaly, got %s", name, want, res)
		}
	}
	ok := func(payload any) checker.Op { return outcome(payload, nil, false) }

	bank := &BankWorkload{Accounts: 2, Initial: 10}
	rec := NewRecorder()
	do(rec, 0, "n1", ok(&checker.BankOp{F: checker.BankTransfer, From: "a0", To: "a1", Amount: 3}))
	h := rec.History()
	final := []checker.Op{
		do(rec, 6, "n1", ok(&checker.BankOp{F: checker.BankRead, Balances: map[string]int64{"a0": 7, "a1": 13}})),
		do(rec, 7, "n2", ok(&checker.BankOp{F: checker.BankRead, Balances: map[string]int64{"a0": 10, "a1": 10}})),
	}
	check("bank", bank, h, FinalState{Reads: final}, checker.KindFinalDivergence)

	rec = NewRecorder()
	do(rec, 0, "n1", ok(&checker.SetOp{F: checker.SetAdd, Value: 1}))
	do(rec, 1, "n2", ok(&checker.SetOp{F: checker.SetAdd, Value: 2}))
	h = rec.History()
	final = []checker.Op{do(rec, 6, "n3", ok(&checker.SetOp{F: checker.SetRead, Values: []int{1}}))}
	check("set", &SetWorkload{}, h, FinalState{Reads: final}, checker.KindLost)

	rec = NewRecorder()
	do(rec, 0, "n1", ok(&checker.RegOp{F: checker.RegWrite, Key: "0", Value: 1}))
	h = rec.History()
	final = []checker.Op{do(rec, 6, "n2", ok(&checker.RegOp{F: checker.RegRead, Key: "0", Result: checker.Absent}))}
	check("register", &RegisterWorkload{}, h, FinalState{Reads: final}, checker.KindNonlinearizable)

	rec = NewRecorder()
	do(rec, 0, "n1", ok(&checker.TxnOp{Mops: []checker.MicroOp{{F: checker.MopAppend, Key: "0", Value: 1}}}))
	do(rec, 1, "n2", ok(&checker.TxnOp{Mops: []checker.MicroOp{{F: checker.MopAppend, Key: "0", Value: 2}}}))
	h = rec.History()
	final = []checker.Op{do(rec, 6, "n3", ok(&checker.TxnOp{Mops: []checker.MicroOp{{F: checker.MopRead, Key: "0", List: []int{2}}}}))}
	check("append", &AppendWorkload{}, h, FinalState{Reads: final}, checker.KindLostAppend)
}

// Lists round-trip through their encoding, and prefixEnd bounds a prefix.
func TestAppendListEncoding(t *testing.T) {
	for _, l := range [][]int{nil, {1}, {3, 1, 2}} {
		got, err := decodeList(encodeList(l))
		if err != nil || !slices.Equal(got, l) {
			t.Errorf("%v -> %q -> %v, %v", l, encodeList(l), got, err)
		}
	}
	if _, err := decodeList([]byte("1,x")); err == nil {
		t.Error("decodeList accepted garbage")
	}
	for _, tc := range []struct{ in, want string }{{"bank/", "bank0"}, {"a\xff", "b"}, {"\xff", ""}} {
		if got := string(prefixEnd([]byte(tc.in))); got != tc.want {
			t.Errorf("prefixEnd(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
