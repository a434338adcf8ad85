package lint

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/galenadb/galena/"

// forbidden lists, per package, import path prefixes it must not import
// directly: imports point one way (see DESIGN.md).
var forbidden = map[string][]string{
	"storage":             {module, "github.com/hashicorp/raft", "google.golang.org/grpc", "github.com/soheilhy/cmux"},
	"certification":       {module + "txn", module + "node", module + "client", "github.com/hashicorp/raft", "google.golang.org/grpc", "time", "math/rand"},
	"certification/apply": {module + "txn", module + "node", module + "client", "github.com/hashicorp/raft", "google.golang.org/grpc", "time", "math/rand"},
	"groupcomm":           {module, "github.com/dgraph-io/badger", "google.golang.org/grpc"},
	"txn":                 {module + "node", module + "client", "github.com/hashicorp/raft", "github.com/dgraph-io/badger"},
	"client":              {module + "storage", module + "certification", module + "groupcomm", module + "txn", module + "node", module + "security", "github.com/hashicorp/raft", "github.com/dgraph-io/badger"},
	"security": {module + "storage", module + "certification", module + "groupcomm", module + "txn", module + "node", module + "client", module + "api",
		"github.com/hashicorp/raft", "github.com/dgraph-io/badger", "google.golang.org/grpc", "github.com/soheilhy/cmux"},
	"internal/atomicfile": {module}, // a leaf any package may use (see leaves)
	"api":                 {module + "storage", module + "certification", module + "groupcomm", module + "txn", module + "node", module + "client"},
	"api/galenapb":        {module + "storage", module + "certification", module + "groupcomm", module + "txn", module + "node", module + "client"},
	"api/writesetpb":      {module, "google.golang.org/grpc"}, // messages only: the log's entries link no gRPC
	// main stays thin: it configures and starts members through node.
	"cmd/galena": {module + "groupcomm", module + "storage", module + "certification", module + "txn"},
}

// leaves are packages of the module that import none of it, so that any
// package may use them whatever its rules above.
var leaves = map[string]bool{module + "internal/atomicfile": true}

// forbiddenDeps lists, per package, import path prefixes that must not be
// among its dependencies at all, direct or indirect: what it must not link.
// The certification rule knows no networking and no storage engine, so a
// binary or test that uses it alone stays small.
var forbiddenDeps = map[string][]string{
	"certification": {"google.golang.org/grpc", "github.com/hashicorp/raft", "github.com/dgraph-io/badger", "github.com/soheilhy/cmux",
		module + "storage", module + "groupcomm", module + "api/galenapb", module + "txn", module + "node", module + "client"},
	"api/writesetpb": {"google.golang.org/grpc", module + "api/galenapb"},
}

// pkg is what the tests read of `go list -json`.
type pkg struct {
	ImportPath string
	Imports    []string // direct
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

// matches reports whether import path imp is bad or lies under it.
func matches(imp, bad string) bool {
	return imp == bad || strings.HasPrefix(imp, strings.TrimSuffix(bad, "/")+"/") || (strings.HasSuffix(bad, "/") && strings.HasPrefix(imp, bad))
}

// check reports, for every package rel with rules and each of its rules,
// the first of paths(rel) the rule matches; what says how rel reaches it.
func check(t *testing.T, pkgs map[string]pkg, rules map[string][]string, paths func(pkg) []string, what string) {
	t.Helper()
	for rel, bad := range rules {
		p, ok := pkgs[rel]
		if !ok {
			t.Errorf("package %s not found: update the rules", rel)
			continue
		}
		for _, b := range bad {
			i := slices.IndexFunc(paths(p), func(imp string) bool { return !leaves[imp] && matches(imp, b) })
			if i >= 0 {
				t.Errorf("%s %s %s, which it must not", rel, what, paths(p)[i])
			}
		}
	}
}

func TestImportsPointInward(t *testing.T) {
	pkgs := listModule(t)
	check(t, pkgs, forbidden, func(p pkg) []string { return p.Imports }, "imports")
}

func TestDependenciesStayOut(t *testing.T) {
	pkgs := listModule(t)
	check(t, pkgs, forbiddenDeps, func(p pkg) []string { return p.Deps }, "depends on")
}
