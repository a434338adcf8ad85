package integration

import (
	"slices"
	"testing"

	"github.com/galenadb/galena/integration/checker"
	"github.com/galenadb/galena/integration/nemesis"
)

// TestWatchUnderFaults runs the watch workload (writers and watchers on
// every member, see workload/watch.go) while members are killed, paused
// and cut off, and requires what TestJepsen requires: every watcher saw
// exactly the committed write-sets of its range, in seqno order, across
// its resumes. TestJepsen shares the fault kinds out among the workloads;
// this test gives the watch workload these three kinds of its own.
func TestWatchUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts real galena processes")
	}
	seed := jepsenSeedOf(t)
	kinds := []string{"kill", "pause", "split"}
	rep := runJepsen(t, checker.WorkloadWatch, nemesis.FaultSpec{Nemesis: "kill,pause,split", Seed: seed})
	for _, k := range kinds {
		if !slices.Contains(rep.FaultKinds(), k) {
			t.Errorf("fault kind %s was not injected, took no effect or was not healed (injected: %v)", k, rep.FaultKinds())
		}
	}
}
