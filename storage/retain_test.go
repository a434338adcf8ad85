package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// overwrite applies seqnos from..to, each rewriting key "k" with a 1 KiB
// value that names its seqno.
func overwrite(t *testing.T, s *Store, from, to uint64) {
	t.Helper()
	rewrite(t, s, "k", from, to, value)
}

// rewrite applies seqnos from..to, each rewriting key with value(seqno).
func rewrite(t *testing.T, s *Store, key string, from, to uint64, value func(uint64) string) {
	t.Helper()
	for n := from; n <= to; n++ {
		mustApply(t, s, n, rec(n, "", put(key, value(n))))
	}
}

func value(n uint64) string {
	return fmt.Sprintf("v%d-%s", n, bytes.Repeat([]byte{'x'}, 1000))
}

// versionsOf counts the versions of user key k badger still holds.
func versionsOf(t *testing.T, s *Store, k string) int {
	t.Helper()
	txn := s.db.NewTransactionAt(math.MaxUint64, false)
	defer txn.Discard()
	opts := badger.DefaultIteratorOptions
	opts.AllVersions = true
	it := txn.NewKeyIterator(internalKey(spaceData, []byte(k)), opts)
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		n++
	}
	return n
}

// compact syncs (which moves the discard timestamp) and compacts every
// level, so that what may be discarded is.
func compact(t *testing.T, s *Store) {
	t.Helper()
	mustSync(t, s)
	if err := s.db.Flatten(1); err != nil {
		t.Fatal(err)
	}
}

// compactUntil compacts until count() is at most atMost, or fails the test
// after a generous deadline. Flatten compacts only when the tables lie on
// two levels or more, which the background compactions may just have
// undone; so each round after the first rewrites key "k" enough to flush a
// memtable into level 0.
func compactUntil(t *testing.T, s *Store, what string, count func() int, atMost int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		compact(t, s)
		n := count()
		if n <= atMost {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s at seqno %d after a minute of compactions, want at most %d",
				n, what, s.Applied().Seqno, atMost)
		}
		next := s.Applied().Seqno + 1
		overwrite(t, s, next, next+99)
	}
}

// compactDown compacts until key "k" keeps at most atMost versions.
func compactDown(t *testing.T, s *Store, atMost int) {
	t.Helper()
	compactUntil(t, s, "versions of k", func() int { return versionsOf(t, s, "k") }, atMost)
}

// compactRounds compacts rounds times, rewriting k enough between rounds to
// flush a memtable (see compactDown): what may be discarded is, whatever
// the background compactions did meanwhile.
func compactRounds(t *testing.T, s *Store, rounds int) {
	t.Helper()
	for range rounds {
		compact(t, s)
		next := s.Applied().Seqno + 1
		overwrite(t, s, next, next+99)
	}
	compact(t, s)
}

// The last Retain seqnos stay readable, exactly: a read just inside the
// window sees its version, one just outside is refused, and a key last
// written below the window keeps that version.
func TestRetentionEdge(t *testing.T) {
	s := openCfg(t, Config{Dir: t.TempDir(), Retain: 10, memTableSize: 64 << 10})
	mustApply(t, s, 1, rec(1, "", put("old", "o1")))
	overwrite(t, s, 2, 50)
	if got := s.Applied().MinReadable; got != 40 {
		t.Fatalf("MinReadable %d at seqno 50 with Retain 10, want 40", got)
	}
	compact(t, s)
	for n := uint64(40); n <= 50; n++ {
		if v, err := s.Get([]byte("k"), n); err != nil || string(v) != value(n) {
			t.Fatalf("Get(k, %d) = %.8q, %v; want %.8q", n, v, err, value(n))
		}
	}
	if _, err := s.Get([]byte("k"), 39); !errors.Is(err, ErrSnapshotTooOld) {
		t.Fatalf("Get(k, 39) just outside the window: %v, want ErrSnapshotTooOld", err)
	}
	if v, err := s.Get([]byte("old"), 50); err != nil || string(v) != "o1" {
		t.Fatalf("Get(old, 50) = %q, %v; want o1 (its latest version, below the window)", v, err)
	}
}

// Versions below the window are discarded: a key rewritten 2,000 times
// keeps the window's and what the memtables not yet flushed hold, not all
// of them; every read in the window still sees the right version. Without
// a window, every version stays.
func TestRetentionDiscards(t *testing.T) {
	s := openCfg(t, Config{Dir: t.TempDir(), Retain: 10, memTableSize: 64 << 10})
	overwrite(t, s, 1, 2000)
	compactDown(t, s, 500)
	for at := s.Applied().MinReadable; at <= s.Applied().Seqno; at++ {
		if v, err := s.Get([]byte("k"), at); err != nil || string(v) != value(at) {
			t.Fatalf("Get(k, %d) = %.8q, %v; want %.8q", at, v, err, value(at))
		}
	}

	all := openCfg(t, Config{Dir: t.TempDir(), Retain: math.MaxUint64, memTableSize: 64 << 10})
	overwrite(t, all, 1, 2000)
	compactRounds(t, all, 3)
	if n, want := versionsOf(t, all, "k"), int(all.Applied().Seqno); n != want {
		t.Fatalf("Retain MaxUint64: %d versions of k after %d writes and compactions, want all", n, want)
	}
}

// A pinned Snapshot keeps what it sees until Release, however far the
// window moves meanwhile.
func TestRetentionKeepsPinnedSnapshot(t *testing.T) {
	s := openCfg(t, Config{Dir: t.TempDir(), Retain: 10, memTableSize: 64 << 10})
	overwrite(t, s, 1, 100)
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	overwrite(t, s, 101, 2000)
	compactRounds(t, s, 3)
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	sn.Release()
	other := openCfg(t, Config{InMemory: true})
	if _, err := other.Import(&buf); err != nil {
		t.Fatal(err)
	}
	if v, err := other.Get([]byte("k"), 100); err != nil || string(v) != value(100) {
		t.Fatalf("the snapshot at 100, imported: Get(k) = %.8q, %v; want %.8q", v, err, value(100))
	}
	// Released, it no longer holds the discard back: the next compaction
	// of those tables drops what it kept.
	compactDown(t, s, 500)
}

// RetainAge keeps what was current less than RetainAge ago readable,
// beyond Retain: MinReadable stays at the seqno applied RetainAge ago.
func TestRetentionByAge(t *testing.T) {
	s := openCfg(t, Config{Dir: t.TempDir(), Retain: 10, RetainAge: time.Minute})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	step := func(from, to uint64, d time.Duration) { // applies from..to, d apart
		t.Helper()
		for n := from; n <= to; n++ {
			now = now.Add(d)
			mustApply(t, s, n, rec(n, "", put("k", value(n))))
		}
	}
	step(1, 100, time.Second/10) // 10 s
	if got := s.Applied().MinReadable; got != 0 {
		t.Fatalf("MinReadable %d after 10 s of a minute's age bound, want 0", got)
	}
	step(101, 700, time.Second/10) // 70 s in all: the seqno of 10 s, about 100
	if got := s.Applied().MinReadable; got < 80 || got > 100 {
		t.Fatalf("MinReadable %d at 70 s, want the seqno applied a minute before, about 100", got)
	}
	if n := len(s.aged.samples); n > ageSamples+2 {
		t.Fatalf("%d samples of the applied seqno kept, want about %d", n, ageSamples)
	}
	compact(t, s)
	if v, err := s.Get([]byte("k"), 100); err != nil || string(v) != value(100) {
		t.Fatalf("Get(k, 100), a minute old = %.8q, %v; want %.8q", v, err, value(100))
	}
	step(701, 710, 10*time.Minute) // then idle: Retain bounds it again
	if got := s.Applied().MinReadable; got != 700 {
		t.Fatalf("MinReadable %d after a long pause, want 700 (Retain 10 of 710)", got)
	}
}
