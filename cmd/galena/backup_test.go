package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/galenadb/galena/node/nodetest"
)

// galena backup writes a checked copy and never overwrites a file; galena
// restore seeds an empty data directory from it, and refuses a corrupt
// file or a directory in use, changing nothing.
func TestBackupRestoreCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := nodetest.MakeCluster(t, 1)
	c.Leader()
	cli := cliOf(t, c.Endpoints()...)
	mustRunCLI(t, cli, "OK\n", "put", "k", "v")

	dir := t.TempDir()
	file := filepath.Join(dir, "backup")
	code, out, errs := cli("backup", "--out", file)
	if code != 0 || !strings.Contains(out, "at seqno") || !strings.Contains(out, "written to "+file) {
		t.Fatalf("backup: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if _, err := os.Stat(file + ".partial"); !os.IsNotExist(err) {
		t.Errorf("the partial file is left behind: %v", err)
	}
	if code, _, errs := cli("backup", "--out", file); code != 2 || !strings.Contains(errs, "exists") {
		t.Errorf("backup over an existing file: exit %d, stderr %q; want 2 and a refusal", code, errs)
	}

	restore := func(from, data string) (int, string, string) {
		return runCLI(t, "restore", "--from", from, "--id", "n1", "--data", data, "--initial-cluster", "n1=127.0.0.1:7999")
	}
	seeded := filepath.Join(dir, "n1")
	if code, out, errs := restore(file, seeded); code != 0 || !strings.Contains(out, "seeded with the state at seqno") {
		t.Fatalf("restore: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if code, _, errs := restore(file, seeded); code != 1 || !strings.Contains(errs, "is not empty") {
		t.Errorf("restore into a seeded directory: exit %d, stderr %q; want 1 and a refusal", code, errs)
	}

	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	corrupt := filepath.Join(dir, "corrupt")
	if err := os.WriteFile(corrupt, b, 0o600); err != nil {
		t.Fatal(err)
	}
	untouched := filepath.Join(dir, "n2")
	if code, _, errs := restore(corrupt, untouched); code != 1 || !strings.Contains(errs, "malformed snapshot") {
		t.Errorf("restore from a corrupt file: exit %d, stderr %q; want 1 and the checksum's complaint", code, errs)
	}
	if _, err := os.Stat(untouched); !os.IsNotExist(err) {
		t.Errorf("a refused restore created %s: %v", untouched, err)
	}
}
