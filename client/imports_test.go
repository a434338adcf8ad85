package client

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The client depends only on the wire contract: within the module it may
// import api/ alone, and outside the standard library only gRPC, protobuf
// and zap.
func TestImports(t *testing.T) {
	allowed := []string{
		"github.com/galenadb/galena/api",
		"google.golang.org/grpc",
		"google.golang.org/protobuf",
		"google.golang.org/genproto/googleapis/rpc",
		"go.uber.org/zap",
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !isStd(path) && !hasAnyPrefix(path, allowed) {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}

func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

func hasAnyPrefix(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}
