package integration

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// partsOf is the import path of the parts below this package.
const partsOf = "github.com/galenadb/galena/integration/"

// mustNotDependOn lists, per part, what it must not depend on, directly or
// not: the workload reaches a cluster only through its Cluster interface
// and a client, so that a command can run it; the harness knows nothing of
// faults or workloads; the nemesis nothing of workloads; the checker only
// histories.
var mustNotDependOn = map[string][]string{
	"workload": {"testing", partsOf + "harness", partsOf + "nemesis"},
	"harness":  {partsOf + "nemesis", partsOf + "workload", partsOf + "checker"},
	"nemesis":  {partsOf + "workload", partsOf + "checker"},
	"checker":  {partsOf + "harness", partsOf + "nemesis", partsOf + "workload"},
}

// The parts of the fault tests depend on each other one way only.
func TestPartsDependOneWay(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	args := []string{"list", "-f", "{{.ImportPath}} {{join .Deps \" \"}}"}
	for part := range mustNotDependOn {
		args = append(args, partsOf+part)
	}
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := 0
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		part, deps := strings.TrimPrefix(f[0], partsOf), f[1:]
		seen++
		for _, bad := range mustNotDependOn[part] {
			if slices.Contains(deps, bad) {
				t.Errorf("%s depends on %s", part, bad)
			}
		}
	}
	if seen != len(mustNotDependOn) {
		t.Errorf("go list described %d parts, want %d:\n%s", seen, len(mustNotDependOn), out)
	}
}
