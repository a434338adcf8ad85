package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// entriesIn counts every badger entry whose key starts with space, every
// version, delete markers included: what the files still hold.
func entriesIn(t *testing.T, s *Store, space byte) int {
	t.Helper()
	txn := s.db.NewTransactionAt(math.MaxUint64, false)
	defer txn.Discard()
	opts := badger.DefaultIteratorOptions
	opts.AllVersions, opts.PrefetchValues, opts.Prefix = true, false, []byte{space}
	it := txn.NewIterator(opts)
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		n++
	}
	return n
}

// withIDs applies seqnos from..to, each a write-set with id "w<seqno>"
// putting key "p".
func withIDs(t *testing.T, s *Store, from, to uint64) {
	t.Helper()
	for n := from; n <= to; n++ {
		mustApply(t, s, n, rec(n, fmt.Sprint("w", n), put("p", "v")))
	}
}

func mustSync(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
}

// A delete and an id record stay known for Window seqnos, exactly as
// certification asks for them; then a sync forgets them (a delete still
// reads as absent), while a put of the same age stays.
func TestForgetAfterTheWindow(t *testing.T) {
	s := openCfg(t, Config{Dir: t.TempDir(), Window: 100, Retain: 10})
	mustApply(t, s, 1, rec(1, "a", put("k", "k1"), put("j", "j1")))
	mustApply(t, s, 2, rec(2, "b", del("k")))
	withIDs(t, s, 3, 101)
	mustSync(t, s) // durable 101: seqno 2 is inside the window
	if v, ok, err := s.LatestVersion([]byte("k"), 102); err != nil || !ok || v != 2 {
		t.Fatalf("LatestVersion(k) inside the window = %d, %v, %v; want the delete at 2", v, ok, err)
	}
	if _, at, ok, err := s.LookupID([]byte("b"), 102); err != nil || !ok || at != 2 {
		t.Fatalf("LookupID(b) inside the window = %d, %v, %v; want 2", at, ok, err)
	}

	withIDs(t, s, 102, 103)
	mustSync(t, s) // durable 103: seqnos 1..3 are older than the window
	if v, ok, err := s.LatestVersion([]byte("k"), 104); err != nil || ok {
		t.Fatalf("LatestVersion(k) past the window = %d, %v, %v; want none", v, ok, err)
	}
	for _, id := range []string{"a", "b", "w3"} {
		if _, at, ok, err := s.LookupID([]byte(id), 104); err != nil || ok {
			t.Fatalf("LookupID(%s) past the window = %d, %v, %v; want none", id, at, ok, err)
		}
	}
	if _, at, ok, err := s.LookupID([]byte("w4"), 104); err != nil || !ok || at != 4 {
		t.Fatalf("LookupID(w4) at the window's edge = %d, %v, %v; want 4", at, ok, err)
	}
	if _, err := s.Get([]byte("k"), 103); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(k) after its delete was forgotten: %v, want ErrNotFound", err)
	}
	if v, err := s.Get([]byte("j"), 103); err != nil || string(v) != "j1" {
		t.Fatalf("Get(j) = %q, %v; want j1, a put of the same age", v, err)
	}
}

// Forgetting gives the space back: after 3,000 write-sets, compactions
// leave about a window's worth of id records, where a store without a
// window keeps them all.
func TestForgetReclaimsSpace(t *testing.T) {
	s := openCfg(t, Config{Dir: t.TempDir(), Window: 100, Retain: 10, memTableSize: 64 << 10})
	withIDs(t, s, 1, 3000)
	compactUntil(t, s, "id records and markers", func() int { return entriesIn(t, s, spaceID) }, 500)
	compactUntil(t, s, "reap records and markers", func() int { return entriesIn(t, s, spaceReap) }, 500)

	all := openCfg(t, Config{Dir: t.TempDir(), Retain: 10, memTableSize: 64 << 10})
	withIDs(t, all, 1, 3000)
	compactRounds(t, all, 3)
	if n := entriesIn(t, all, spaceID); n != 3000 {
		t.Fatalf("without a window: %d id records, want 3000", n)
	}
	if n := entriesIn(t, all, spaceReap); n != 0 {
		t.Fatalf("without a window: %d reap records, want none", n)
	}
}

// A snapshot leaves out the deletes and ids older than the window, whether
// or not a sync forgot them yet; the importer forgets the ones it got once
// they age out in turn (within a sixteenth of the window).
func TestSnapshotLeavesOutForgotten(t *testing.T) {
	s := openCfg(t, Config{Dir: t.TempDir(), Window: 100})
	mustApply(t, s, 1, rec(1, "a", put("k", "k1"), del("gone")))
	withIDs(t, s, 2, 150)
	other := openCfg(t, Config{Dir: t.TempDir(), Window: 100})
	if _, err := other.Import(bytes.NewReader(exportBytes(t, s))); err != nil {
		t.Fatal(err)
	}
	// 'd'k, 'd'p and ids w51..w150: not "a" (seqno 1), not the delete of
	// "gone", not w2..w50.
	if n := entriesIn(t, other, spaceID); n != 100 {
		t.Fatalf("imported %d id records, want the window's 100", n)
	}
	if v, ok, err := other.LatestVersion([]byte("gone"), 151); err != nil || ok {
		t.Fatalf("imported LatestVersion(gone) = %d, %v, %v; want none", v, ok, err)
	}
	if _, at, ok, err := other.LookupID([]byte("w51"), 151); err != nil || !ok || at != 51 {
		t.Fatalf("imported LookupID(w51) = %d, %v, %v; want 51", at, ok, err)
	}
	withIDs(t, other, 151, 200)
	mustSync(t, other)
	if _, at, ok, err := other.LookupID([]byte("w51"), 201); err != nil || ok {
		t.Fatalf("LookupID(w51) of the import, past the window = %d, %v, %v; want none", at, ok, err)
	}
	if _, at, ok, err := other.LookupID([]byte("w101"), 201); err != nil || !ok || at != 101 {
		t.Fatalf("LookupID(w101) = %d, %v, %v; want 101", at, ok, err)
	}
}
