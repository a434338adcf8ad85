package lint

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/galenadb/galena/"

// Import path prefixes the rules name often.
const (
	grpc   = "google.golang.org/grpc"
	raft   = "github.com/hashicorp/raft"
	badger = "github.com/dgraph-io/badger"
	cmux   = "github.com/soheilhy/cmux"
)

// inner are the packages of a member's inside: what only node assembles.
var inner = []string{module + "storage", module + "certification", module + "groupcomm", module + "txn"}

// A rule says what one package of the module may use. Its lists hold
// import path prefixes; a package of the module named in leaves satisfies
// every rule.
type rule struct {
	notImport []string // must not import directly
	notDepend []string // must not depend on, directly or through others
	// onlyImport, when not empty: the only prefixes outside the standard
	// library it may import directly.
	onlyImport []string
}

// rules is the one table of what every package may use, so that imports
// point one way (see docs/design.md). Every package of the module has a
// row: a new package must say where it stands.
var rules = map[string]rule{
	// The wire contract: messages and reasons, nothing of a member.
	"api":            {notImport: []string{module}},
	"api/galenapb":   {onlyImport: []string{module + "api/writesetpb", grpc, "google.golang.org/protobuf"}},
	"api/writesetpb": {notImport: []string{module}, notDepend: []string{grpc}}, // the log's entries link no gRPC

	// The certification rule knows no networking and no storage engine, no
	// clock and no randomness: every member must reach the same verdict.
	"certification": {
		notImport: []string{"time", "math/rand"},
		notDepend: append([]string{grpc, raft, badger, cmux, module + "api/galenapb", module + "txn", module + "node", module + "client"}, inner[0], inner[2]),
	},
	"certification/apply": {
		notImport: []string{module + "txn", module + "node", module + "client", raft, grpc, "time", "math/rand"},
		notDepend: []string{grpc, module + "api/galenapb"},
	},
	"storage":   {notImport: []string{module}, notDepend: []string{raft, grpc, cmux}},
	"groupcomm": {notImport: []string{module}, notDepend: []string{badger, grpc}},
	// The transaction service knows no wire: node/rpc is its gRPC face.
	"txn": {
		notImport: []string{module + "node", module + "client", raft, badger},
		notDepend: []string{grpc, module + "api/galenapb"},
	},
	"security": {notImport: []string{module}, notDepend: []string{raft, badger, grpc, cmux}},

	// The client speaks the wire contract only.
	"client": {
		onlyImport: []string{module + "api", grpc, "google.golang.org/protobuf", "google.golang.org/genproto/googleapis/rpc", "go.uber.org/zap"},
		notDepend:  []string{raft, badger, cmux},
	},

	// node assembles one member; nothing of the module imports it but the
	// command and the starter of in-process clusters, which the tests use
	// through nodetest.
	"node":          {notImport: []string{module + "client", module + "integration", module + "cmd"}},
	"node/local":    {notImport: append([]string{module + "client", module + "integration"}, inner...)},
	"node/nodetest": {notImport: append([]string{module + "client", module + "integration"}, inner...)},

	// A member's gRPC face reads state only through txn and rpc.Member; its
	// tests may use the client to prove the errors' round trip.
	"node/rpc": {notImport: []string{module + "client", module + "storage", module + "certification/apply", module + "integration", module + "cmd", raft, badger}},

	// The command stays thin: it starts members through node and does what
	// a client does through client; of the fault tests' parts it runs the
	// bank workload alone.
	"cmd/galena": {notImport: append([]string{module + "api", module + "node/rpc", module + "node/nodetest",
		module + "integration/harness", module + "integration/nemesis", module + "integration/checker"}, inner...)},

	// The fault tests' parts depend on each other one way: the workload
	// reaches a cluster only through its Cluster interface and a client, so
	// that a command can run it; the harness knows nothing of faults or
	// workloads; the nemesis nothing of workloads; the checker only
	// histories. None of them reaches inside a member.
	"integration":          {notImport: []string{module}},
	"integration/workload": {notImport: inner, notDepend: []string{"testing", module + "integration/harness", module + "integration/nemesis", module + "node"}},
	"integration/harness":  {notImport: inner, notDepend: []string{module + "integration/nemesis", module + "integration/workload", module + "integration/checker", module + "node"}},
	"integration/nemesis":  {notImport: inner, notDepend: []string{module + "integration/workload", module + "integration/checker", module + "node"}},
	"integration/checker":  {notImport: []string{module}},
	// The bank workload reaches a cluster through the client alone, so that
	// the command and the fault tests can both run it.
	"integration/workload/bank": {onlyImport: []string{module + "client"},
		notDepend: append([]string{"testing", module + "node", raft, badger, cmux}, inner...)},

	"internal/atomicfile": {notImport: []string{module}},
	"internal/cputime":    {notImport: []string{module}},
	"internal/netem":      {notImport: []string{module}},
	"internal/lint":       {notImport: []string{module}},
}

// leaves are packages of the module that import none of it but other
// leaves, so that any package may use them whatever its rules above.
var leaves = map[string]bool{module + "internal/atomicfile": true, module + "internal/cputime": true, module + "internal/netem": true,
	module + "security": true}

// pkg is what the tests read of `go list -json`.
type pkg struct {
	ImportPath string
	Imports    []string // direct, of the package's own files (not its tests)
	Deps       []string // direct and indirect
}

// listModule returns the module's packages, keyed by path relative to the
// module.
func listModule(t *testing.T) map[string]pkg {
	t.Helper()
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-json", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs[strings.TrimPrefix(p.ImportPath, module)] = p
	}
	return pkgs
}

// matches reports whether import path imp is prefix or lies under it; a
// prefix ending in "/" matches only what lies under it.
func matches(imp, prefix string) bool {
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(imp, prefix)
	}
	return imp == prefix || strings.HasPrefix(imp, prefix+"/")
}

// isStd reports whether imp is in the standard library.
func isStd(imp string) bool {
	first, _, _ := strings.Cut(imp, "/")
	return !strings.Contains(first, ".")
}

// violations returns what breaks the rules in pkgs, one line each, and the
// packages that have no rule.
func violations(pkgs map[string]pkg, rules map[string]rule) []string {
	var out []string
	for rel, p := range pkgs {
		r, ok := rules[rel]
		if !ok {
			out = append(out, rel+" has no rule: add one")
			continue
		}
		out = append(out, broken(rel, p.Imports, r.notImport, "imports")...)
		out = append(out, broken(rel, p.Deps, r.notDepend, "depends on")...)
		for _, imp := range p.Imports {
			if len(r.onlyImport) > 0 && !isStd(imp) && !leaves[imp] && !slices.ContainsFunc(r.onlyImport, func(ok string) bool { return matches(imp, ok) }) {
				out = append(out, rel+" imports "+imp+", which is not among what it may import")
			}
		}
	}
	for rel := range rules {
		if _, ok := pkgs[rel]; !ok {
			out = append(out, "package "+rel+" not found: update the rules")
		}
	}
	slices.Sort(out)
	return out
}

// broken returns, for each prefix of bad, the first of paths it matches.
func broken(rel string, paths, bad []string, how string) []string {
	var out []string
	for _, b := range bad {
		i := slices.IndexFunc(paths, func(imp string) bool { return !leaves[imp] && imp != module+rel && matches(imp, b) })
		if i >= 0 {
			out = append(out, rel+" "+how+" "+paths[i]+", which it must not")
		}
	}
	return out
}

// Every package of the module keeps to its rule.
func TestPackagesKeepToTheirRules(t *testing.T) {
	for _, v := range violations(listModule(t), rules) {
		t.Error(v)
	}
}

// The rules catch each kind of breach: a forbidden import, a forbidden
// dependency, an import outside an allow-list, a package without a rule and
// a rule without a package.
func TestRulesCatchBreaches(t *testing.T) {
	pkgs := map[string]pkg{
		"certification": {Imports: []string{"time", module + "api/writesetpb"}, Deps: []string{grpc + "/codes", "time"}},
		"client":        {Imports: []string{"context", module + "api/galenapb", module + "storage", "github.com/other/lib"}},
		"node":          {Imports: []string{module + "internal/atomicfile"}}, // a leaf: allowed everywhere
		"tools/new":     {},
	}
	rules := map[string]rule{
		"certification": rules["certification"],
		"client":        rules["client"],
		"node":          {notImport: []string{module}},
		"gone":          {},
	}
	want := []string{
		"certification depends on google.golang.org/grpc/codes, which it must not",
		"certification imports time, which it must not",
		"client imports github.com/galenadb/galena/storage, which is not among what it may import",
		"client imports github.com/other/lib, which is not among what it may import",
		"package gone not found: update the rules",
		"tools/new has no rule: add one",
	}
	if got := violations(pkgs, rules); !slices.Equal(got, want) {
		t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
