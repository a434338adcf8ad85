package harness

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// buildTags are the build tags of the binary Build compiles: the fault
// build, whose `galena start` takes --peer-route (see Options.Network).
const buildTags = "faults"

// Build compiles ./cmd/galena of the module holding the working directory,
// with buildTags, into a new temporary directory and returns the binary's
// path and a function that removes the directory. Call it once per test
// binary, from TestMain.
func Build() (bin string, remove func(), err error) {
	root, err := moduleRoot()
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "galena-bin-")
	if err != nil {
		return "", nil, fmt.Errorf("harness: build: %w", err)
	}
	remove = func() { os.RemoveAll(dir) }
	bin = filepath.Join(dir, "galena")
	cmd := exec.Command(goTool(), "build", "-tags", buildTags, "-o", bin, "./cmd/galena")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		remove()
		return "", nil, fmt.Errorf("harness: go build -tags %s ./cmd/galena in %s: %w\n%s", buildTags, root, err, out)
	}
	return bin, remove, nil
}

// goTool is the go command: `go test` puts its own GOROOT/bin first in PATH.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

// moduleRoot is the directory of the main module's go.mod: `go env GOMOD`
// in the working directory, else the nearest go.mod above it.
func moduleRoot() (string, error) {
	out, err := exec.Command(goTool(), "env", "GOMOD").Output()
	if gomod := string(bytes.TrimSpace(out)); err == nil && gomod != "" && gomod != os.DevNull {
		return filepath.Dir(gomod), nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("harness: module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("harness: module root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// sanitize turns a test name into something safe in a file name.
func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, name)
}
