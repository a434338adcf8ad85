package storage

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// crash closes s as a process that dies leaves it: without the final sync,
// so the durable state stays where the last sync left it.
func crash(t testing.TB, s *Store) {
	t.Helper()
	s.stopSyncLoop()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
}

// reboot makes the store in dir look last opened before the machine
// restarted.
func reboot(t testing.TB, dir string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, bootFileName), []byte("an earlier boot"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// afterHistory is applied on top of history (applied state 8).
var afterHistory = []Record{
	rec(9, "w9", put("a", "a9"), del("d")),
	rec(10, "w10", put("e", "e10")),
	{Seqno: 11, ID: []byte("w11"), Outcome: []byte("abort")},
}

// A store that stops after a Sync and more batches, and then the machine
// restarts, starts again from the durable state, takes the later batches
// again and ends exactly like a store that never stopped: whether the later
// batches' writes survived, or only the applied record did (a power loss
// wrote that page and not the data's).
func TestRestartFromDurableState(t *testing.T) {
	want := neverStopped(t)
	lose := map[string]func(t *testing.T, s *Store){
		"later batches survive": func(t *testing.T, s *Store) {
			mustApply(t, s, 10, afterHistory[:2]...)
			mustApply(t, s, 12, afterHistory[2:]...)
		},
		"only the applied record survives": func(t *testing.T, s *Store) {
			if err := s.writeApplied(&AppliedState{Seqno: 12, Meta: []byte("meta-12")}); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, after := range lose {
		t.Run(name, func(t *testing.T) {
			cfg := Config{Dir: t.TempDir(), SyncEvery: math.MaxUint64}
			s := syncedHistory(t, cfg)
			after(t, s)
			crash(t, s)
			reboot(t, cfg.Dir)

			for _, step := range []string{"the restart", "another crash, in the same boot"} {
				s = openCfg(t, cfg)
				if got, dur := stateString(s.Applied()), stateString(s.Durable()); got != "{Seqno:8 MinReadable:0 Meta:meta-8}" || dur != got {
					t.Fatalf("after %s: Applied %s, Durable %s; want the durable state at 8", step, got, dur)
				}
				crash(t, s) // the applied record must now say 8 too
			}
			s = openCfg(t, cfg)
			mustApply(t, s, 12, afterHistory...)
			if !bytes.Equal(exportBytes(t, s), want) {
				t.Fatal("state after the restart and re-apply differs from a store that never stopped")
			}
		})
	}
}

// A store whose process died, the machine still running, starts from its
// applied state: the page cache kept every write. Open makes it durable.
func TestRestartAfterProcessCrash(t *testing.T) {
	if bootID() == "" {
		t.Skip("no boot id on this system: every restart starts from the durable state")
	}
	cfg := Config{Dir: t.TempDir(), SyncEvery: math.MaxUint64}
	s := syncedHistory(t, cfg)
	mustApply(t, s, 12, afterHistory...)
	crash(t, s)
	s = openCfg(t, cfg)
	if got, dur := s.Applied().Seqno, s.Durable().Seqno; got != 12 || dur != 12 {
		t.Fatalf("after a process crash: Applied %d, Durable %d; want 12, 12", got, dur)
	}
	if !bytes.Equal(exportBytes(t, s), neverStopped(t)) {
		t.Fatal("state after a process crash differs from a store that never stopped")
	}
}

// syncedHistory opens a store with cfg, applies history and syncs it: its
// durable state is at 8.
func syncedHistory(t *testing.T, cfg Config) *Store {
	t.Helper()
	s := openCfg(t, cfg)
	history(t, s)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := s.Durable().Seqno; got != 8 {
		t.Fatalf("Durable after Sync = %d, want 8", got)
	}
	return s
}

// neverStopped is the export of a store that applied history and
// afterHistory without stopping.
func neverStopped(t *testing.T) []byte {
	t.Helper()
	s := openMem(t)
	history(t, s)
	mustApply(t, s, 12, afterHistory...)
	return exportBytes(t, s)
}

// A failed sync is final, and the next Open does not trust what the page
// cache held: the store starts from its durable state even in the same
// boot.
func TestFailedSync(t *testing.T) {
	cfg := Config{Dir: t.TempDir(), SyncEvery: math.MaxUint64}
	s := syncedHistory(t, cfg)
	mustApply(t, s, 12, afterHistory...)
	bad := filepath.Join(cfg.Dir, "99999"+memLogExt) // fsync fails on procfs
	if err := os.Symlink("/proc/self/status", bad); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Sync(); err == nil {
			t.Fatalf("Sync #%d succeeded", i+1)
		}
	}
	if err := os.Remove(bad); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err == nil {
		t.Fatal("Sync succeeded after a failed one")
	}
	crash(t, s)
	s = openCfg(t, cfg)
	if got := s.Applied().Seqno; got != 8 {
		t.Fatalf("Applied after a failed sync and a crash = %d, want the durable 8", got)
	}
}

// Close syncs: a store closed cleanly starts again where it stopped, and
// writes no durable state when nothing changed.
func TestCloseSyncs(t *testing.T) {
	cfg := Config{Dir: t.TempDir(), SyncEvery: math.MaxUint64}
	s := openCfg(t, cfg)
	history(t, s)
	if got := s.Durable().Seqno; got != 0 {
		t.Fatalf("Durable before Close = %d, want 0", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := s.Durable().Seqno; got != 8 {
		t.Fatalf("Durable after Close = %d, want 8", got)
	}
	if err := s.Sync(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sync after Close = %v, want ErrClosed", err)
	}
	s = openCfg(t, cfg)
	if got := s.Applied().Seqno; got != 8 {
		t.Fatalf("Applied after a clean restart = %d, want 8", got)
	}
}

// The store syncs by itself once SyncEvery seqnos were applied since the
// durable state, and not before.
func TestSyncEvery(t *testing.T) {
	s := openCfg(t, Config{Dir: t.TempDir(), SyncEvery: 5})
	mustApply(t, s, 4, rec(1, "", put("a", "1")))
	if got := s.Durable().Seqno; got != 0 {
		t.Fatalf("Durable = %d after 4 seqnos, want 0", got)
	}
	mustApply(t, s, 7, rec(7, "", put("b", "7")))
	deadline := time.Now().Add(10 * time.Second)
	for s.Durable().Seqno < 7 {
		if time.Now().After(deadline) {
			t.Fatalf("no background sync: Durable %d, Applied %d", s.Durable().Seqno, s.Applied().Seqno)
		}
		time.Sleep(5 * time.Millisecond)
	}
	mustApply(t, s, 11, rec(11, "", put("c", "11")))
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, 12, rec(12, "", put("d", "12")))
	crash(t, s) // waits for the loop, which had nothing to do

	if got := s.Durable().Seqno; got != 11 {
		t.Fatalf("Durable = %d, want 11 (synced at 11, not since)", got)
	}
}

// Sync finds badger's memtable logs: those of memtables waiting to be
// flushed are synced by nothing else.
func TestSyncFindsMemtableLogs(t *testing.T) {
	dir := t.TempDir()
	s := openCfg(t, Config{Dir: dir, memTableSize: 512 << 10})
	mustApply(t, s, 1, rec(1, "", put("a", strings.Repeat("v", 1000))))
	n, err := syncMemLogs(dir)
	if err != nil || n == 0 {
		t.Fatalf("syncMemLogs = %d, %v; want the active memtable's log at least (badger renamed them?)", n, err)
	}
}

// A store last opened before durable states were recorded starts from its
// applied state and records it; one whose durable state is ahead of its
// applied state is refused.
func TestOpenWithoutOrWithBadDurableState(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir)
	history(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, durableFileName)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	s = openDir(t, dir)
	if got := s.Applied().Seqno; got != 8 {
		t.Fatalf("Applied without a durable state = %d, want 8", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no durable state recorded: %v", err)
	}
	if st, err := decodeApplied(b); err != nil || st.Seqno != 8 {
		t.Fatalf("durable state recorded = %+v, %v", st, err)
	}
	if err := os.WriteFile(path, encodeApplied(&AppliedState{Seqno: 9}), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(Config{Dir: dir}); err == nil {
		s.Close()
		t.Fatal("Open accepted a durable state ahead of the applied state")
	}
}
