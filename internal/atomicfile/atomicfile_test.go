package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := Write(path, []byte("one"), 0o600, false); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("two"), 0o600, false); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second write without replace: %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "one" {
		t.Fatalf("after a refused write the file holds %q, want %q", b, "one")
	}
	if err := Write(path, []byte("three"), 0o644, true); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "three" || st.Mode().Perm() != 0o644 {
		t.Fatalf("after replace: %q mode %v, want %q mode 0644", b, st.Mode().Perm(), "three")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".f.*")); len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
}
