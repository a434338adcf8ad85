package integration

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/galenadb/galena/integration/harness"
	"github.com/galenadb/galena/integration/nemesis"
	"github.com/galenadb/galena/integration/workload"
)

// Flags of TestJepsen, e.g.
//
//	go test ./integration -run TestJepsen -v -jepsen.duration 30s -jepsen.workloads append,register
var (
	jepsenDuration   = flag.Duration("jepsen.duration", 6*time.Second, "how long each Jepsen workload's clients run")
	jepsenClients    = flag.Int("jepsen.clients", 6, "concurrent clients per Jepsen workload, spread over the members")
	jepsenWorkloads  = flag.String("jepsen.workloads", strings.Join(workload.Names, ","), "comma-separated Jepsen workloads to run: "+strings.Join(workload.Names, ", "))
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
	seed := jepsenSeedOf(t)
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

// jepsenSeedOf is -jepsen.seed, or a random seed when it is 0; it logs
// the seed, which repeats the run's choices.
func jepsenSeedOf(t *testing.T) uint64 {
	seed := *jepsenSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("jepsen: seed %d (-jepsen.seed=%d repeats the clients' and the faults' choices)", seed, seed)
	return seed
}

// jepsenWorkloadNames are the workloads -jepsen.workloads lists.
func jepsenWorkloadNames(t *testing.T) []string {
	var names []string
	for _, name := range strings.Split(*jepsenWorkloads, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(workload.Names, name) {
			t.Fatalf("-jepsen.workloads: unknown workload %q (want one of %s)", name, strings.Join(workload.Names, ", "))
		}
		names = append(names, name)
	}
	return names
}

// runJepsen runs workload name with the faults of spec on a new cluster,
// and fails t unless the run was valid.
func runJepsen(t *testing.T, name string, spec nemesis.FaultSpec) workload.Report {
	if _, err := spec.Schedule(*jepsenDuration); err != nil {
		t.Fatalf("-jepsen.nemesis=%q: %v", spec.Nemesis, err)
	}
	withFaults := spec.Nemesis != "" && spec.Nemesis != "none"
	opts := harness.Options{Binary: galenaBin}
	var c *harness.Cluster
	var faults workload.Faults // none unless withFaults
	if withFaults {
		var nw *nemesis.Net
		c, nw = nemesis.NewCluster(t, opts, 0)
		faults = jepsenFaults{n: nemesis.New(c, nw, spec.Seed), spec: spec}
	} else {
		c = harness.NewCluster(t, opts)
	}
	cfg := workload.RunConfig{Workload: name, Duration: *jepsenDuration, Clients: *jepsenClients, Faults: faults, Seed: spec.Seed,
		HistoryDir: historyDir(t, name)}
	rep := workload.Run(t.Context(), c, cfg)
	checkRun(t, "jepsen", rep)
	if withFaults && len(rep.FaultKinds()) == 0 {
		t.Errorf("-jepsen.nemesis=%q: no fault was injected, took effect and was healed", spec.Nemesis)
	}
	return rep
}

// checkRun fails t unless rep is a valid run in which operations
// succeeded: no error of the run, a check that decided and found no
// anomaly, members with the same contents. label starts its log lines.
func checkRun(t *testing.T, label string, rep workload.Report) {
	t.Helper()
	t.Logf("%s %s", label, rep.Summary())
	if !rep.Valid() || testing.Verbose() {
		t.Logf("%s report:\n%s", label, rep)
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
}

// jepsenFaults injects the faults of a FaultSpec while a workload runs: the
// nemesis's Schedule for the run's length, its events as the Report shows
// them.
type jepsenFaults struct {
	n    *nemesis.Nemesis
	spec nemesis.FaultSpec
}

func (f jepsenFaults) Run(ctx context.Context, d time.Duration) ([]workload.FaultEvent, error) {
	s, err := f.spec.Schedule(d)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	events, err := s.Run(ctx, f.n)
	out := make([]workload.FaultEvent, len(events))
	for i, e := range events {
		out[i] = workload.FaultEvent{Time: e.Time.Sub(start), Kind: string(e.Kind), Detail: e.Detail, Effect: e.Effect, Err: e.Err}
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
