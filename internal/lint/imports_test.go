package lint

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/galenadb/galena/"

// forbidden lists, per package, import path prefixes it must not import
// directly: imports point one way (see DESIGN.md).
var forbidden = map[string][]string{
	"storage":       {module, "github.com/hashicorp/raft", "google.golang.org/grpc", "github.com/soheilhy/cmux"},
	"certification": {module + "txn", module + "node", module + "client", "github.com/hashicorp/raft", "google.golang.org/grpc", "time", "math/rand"},
	"groupcomm":     {module, "github.com/dgraph-io/badger", "google.golang.org/grpc"},
	"txn":           {module + "node", module + "client", "github.com/hashicorp/raft", "github.com/dgraph-io/badger"},
	"client":        {module + "storage", module + "certification", module + "groupcomm", module + "txn", module + "node", module + "security", "github.com/hashicorp/raft", "github.com/dgraph-io/badger"},
	"security": {module + "storage", module + "certification", module + "groupcomm", module + "txn", module + "node", module + "client", module + "api",
		"github.com/hashicorp/raft", "github.com/dgraph-io/badger", "google.golang.org/grpc", "github.com/soheilhy/cmux"},
	"internal/atomicfile": {module}, // a leaf any package may use (see leaves)
	"api":                 {module + "storage", module + "certification", module + "groupcomm", module + "txn", module + "node", module + "client"},
	"api/galenapb":        {module + "storage", module + "certification", module + "groupcomm", module + "txn", module + "node", module + "client"},
	"api/writesetpb":      {module, "google.golang.org/grpc"}, // messages only: the log's entries link no gRPC
}

// leaves are packages of the module that import none of it, so that any
// package may use them whatever its rules above.
var leaves = map[string]bool{module + "internal/atomicfile": true}

func TestImportsPointInward(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-json", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := map[string]bool{}
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(p.ImportPath, module)
		rules, ok := forbidden[rel]
		if !ok {
			continue
		}
		seen[rel] = true
		for _, imp := range p.Imports {
			if leaves[imp] {
				continue
			}
			for _, bad := range rules {
				if imp == bad || strings.HasPrefix(imp, strings.TrimSuffix(bad, "/")+"/") || (strings.HasSuffix(bad, "/") && strings.HasPrefix(imp, bad)) {
					t.Errorf("%s imports %s, which it must not", rel, imp)
				}
			}
		}
	}
	for rel := range forbidden {
		if !seen[rel] {
			t.Errorf("package %s not found: update the rules", rel)
		}
	}
}
