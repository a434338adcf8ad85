package node_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/galenadb/galena/node"
	"github.com/galenadb/galena/node/nodetest"
	"github.com/galenadb/galena/storage"
	"go.uber.org/zap/zaptest"
)

// Where storage records its durable state, and the boot it was last opened
// under (storage/doc.go).
const durableFile, bootFile = "galena-durable", "galena-boot"

// A member restarts, after the machine did, from a durable state behind the
// seqno it had applied: first with the later batches still in storage (they
// reached the disk), then with only the applied-state record surviving
// them (a power loss wrote that page, not the data's). Each time it applies
// the later entries again from its Raft log, and ends with the others'
// digest and data.
func TestRestartFromDurableStateReplays(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	dirs := make([]string, 3) // each member's storage directory
	c := nodetest.MakeClusterWith(t, 3, func(i int, cfg *node.Config) {
		dirs[i] = filepath.Join(cfg.DataDir, "data")
	})
	c.Leader()
	cl := newClient(t, c.Endpoints()...)
	putN(t, cl, "a", 10)
	c.EnsureSame()
	c.Stop(2)
	synced := filepath.Join(t.TempDir(), "data") // n3's storage, durable at its applied seqno
	if err := os.CopyFS(synced, os.DirFS(dirs[2])); err != nil {
		t.Fatal(err)
	}
	c.Start(2)

	putN(t, cl, "b", 10)
	c.EnsureSame()
	c.Stop(2)
	copyFile(t, filepath.Join(synced, durableFile), filepath.Join(dirs[2], durableFile))
	reboot(t, dirs[2])
	c.Start(2)
	c.EnsureSame()
	if got := c.Nodes[2].Status().Commits; got < 10 {
		t.Fatalf("n3 applied %d commits after its restart, want the 10 after its durable state again", got)
	}
	requireKeys(t, c, 2, 20)

	putN(t, cl, "c", 10)
	c.EnsureSame()
	c.Stop(2)
	loseUnsynced(t, dirs[2], synced)
	c.Start(2)
	c.EnsureSame()
	requireKeys(t, c, 2, 30)
}

// loseUnsynced leaves the stopped member's storage in dir as a power loss
// can: the contents of synced, an earlier copy of dir, with the later
// applied-state record of dir on top, opened before the machine restarted.
func loseUnsynced(t *testing.T, dir, synced string) {
	t.Helper()
	cfg := storage.Config{Dir: dir, Logger: zaptest.NewLogger(t)}
	s, err := storage.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	last := s.Applied()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(dir, os.DirFS(synced)); err != nil {
		t.Fatal(err)
	}
	if s, err = storage.Open(cfg); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyBatch(nil, last); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // records its state as durable: undone below
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(synced, durableFile), filepath.Join(dir, durableFile))
	reboot(t, dir)
}

// reboot makes the storage in dir look last opened before the machine
// restarted.
func reboot(t *testing.T, dir string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, bootFile), []byte("an earlier boot"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err == nil {
		err = os.WriteFile(to, b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// requireKeys checks that member i serves n keys.
func requireKeys(t *testing.T, c *nodetest.Cluster, i, n int) {
	t.Helper()
	if kvs := scanAll(t, newClient(t, c.Endpoints()[i])); len(kvs) != n {
		t.Fatalf("%s serves %d keys, want %d", c.Nodes[i].ID(), len(kvs), n)
	}
}
