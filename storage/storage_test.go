package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openMem opens an in-memory store closed at the end of the test.
func openMem(t testing.TB) *Store {
	t.Helper()
	return openCfg(t, Config{InMemory: true})
}

// openDir opens an on-disk store in dir; the caller may Close it earlier.
func openDir(t testing.TB, dir string) *Store {
	t.Helper()
	return openCfg(t, Config{Dir: dir})
}

func openCfg(t testing.TB, cfg Config) *Store {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func put(k, v string) Write { return Write{Key: []byte(k), Value: []byte(v)} }
func del(k string) Write    { return Write{Key: []byte(k), Delete: true} }

func rec(seq uint64, id string, w ...Write) Record {
	r := Record{Seqno: seq, Writes: w, Outcome: []byte("ok")}
	if id != "" {
		r.ID = []byte(id)
	}
	return r
}

func mustApply(t testing.TB, s *Store, st uint64, recs ...Record) {
	t.Helper()
	if err := s.ApplyBatch(recs, AppliedState{Seqno: st, Meta: []byte(fmt.Sprintf("meta-%d", st))}); err != nil {
		t.Fatalf("ApplyBatch(st=%d): %v", st, err)
	}
}

// history applies a small history with overwrites, deletes, an abort and ids:
//
//	1: a=a1 b=b1        3: a=a3 -b c=c3      4: aborted (id w4)
//	5: -a b=b5          7: a=a7 d=d7 (applied state 8)
func history(t testing.TB, s *Store) {
	t.Helper()
	mustApply(t, s, 1, rec(1, "w1", put("a", "a1"), put("b", "b1")))
	mustApply(t, s, 4,
		rec(3, "w3", put("a", "a3"), del("b"), put("c", "c3")),
		Record{Seqno: 4, ID: []byte("w4"), Outcome: []byte("abort")})
	mustApply(t, s, 8,
		rec(5, "w5", del("a"), put("b", "b5")),
		rec(7, "", put("a", "a7"), put("d", "d7")))
}

func scanString(kvs []KV) string {
	var b strings.Builder
	for _, kv := range kvs {
		fmt.Fprintf(&b, "%s=%s ", kv.Key, kv.Value)
	}
	return strings.TrimSpace(b.String())
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"default needs a dir", DefaultConfig(), false},
		{"dir", Config{Dir: "/tmp/x"}, true},
		{"in memory", Config{InMemory: true}, true},
		{"both", Config{Dir: "/tmp/x", InMemory: true}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if _, err := Open(Config{}); err == nil {
		t.Fatal("Open with an invalid config succeeded")
	}
}

func TestGetAtSnapshots(t *testing.T) {
	s := openMem(t)
	history(t, s)
	tests := []struct {
		key  string
		snap uint64
		want string // "" = ErrNotFound
	}{
		{"a", 0, ""}, {"a", 1, "a1"}, {"a", 2, "a1"}, {"a", 3, "a3"}, {"a", 4, "a3"},
		{"a", 5, ""}, {"a", 6, ""}, {"a", 7, "a7"}, {"a", math.MaxUint64, "a7"},
		{"b", 1, "b1"}, {"b", 3, ""}, {"b", 5, "b5"},
		{"c", 2, ""}, {"c", 3, "c3"}, {"c", 8, "c3"},
		{"d", 6, ""}, {"d", 7, "d7"},
		{"zz", 8, ""}, {"", 8, ""},
		// Internal key spaces are never visible as user keys.
		{"applied", 8, ""}, {"w1", 8, ""},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s@%d", tc.key, tc.snap), func(t *testing.T) {
			v, err := s.Get([]byte(tc.key), tc.snap)
			if tc.want == "" {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("Get = %q, %v; want ErrNotFound", v, err)
				}
				return
			}
			if err != nil || string(v) != tc.want {
				t.Fatalf("Get = %q, %v; want %q", v, err, tc.want)
			}
		})
	}
}

func TestScanAtSnapshots(t *testing.T) {
	s := openMem(t)
	history(t, s)
	tests := []struct {
		name       string
		start, end string
		limit      int
		snap       uint64
		want       string
	}{
		{"nothing yet", "", "", 0, 0, ""},
		{"at 1", "", "", 0, 1, "a=a1 b=b1"},
		{"at 3 hides delete", "", "", 0, 3, "a=a3 c=c3"},
		{"at 4 (abort wrote nothing)", "", "", 0, 4, "a=a3 c=c3"},
		{"at 5", "", "", 0, 5, "b=b5 c=c3"},
		{"at 7", "", "", 0, 7, "a=a7 b=b5 c=c3 d=d7"},
		{"latest", "", "", 0, math.MaxUint64, "a=a7 b=b5 c=c3 d=d7"},
		{"limit", "", "", 2, 7, "a=a7 b=b5"},
		{"limit counts live keys only", "", "", 1, 5, "b=b5"},
		{"start", "b", "", 0, 7, "b=b5 c=c3 d=d7"},
		{"start between keys", "bb", "", 0, 7, "c=c3 d=d7"},
		{"end exclusive", "", "c", 0, 7, "a=a7 b=b5"},
		{"start and end", "b", "d", 0, 7, "b=b5 c=c3"},
		{"start and end and limit", "b", "d", 1, 7, "b=b5"},
		{"empty range", "c", "c", 0, 7, ""},
		{"inverted range", "d", "a", 0, 7, ""},
		{"past the end", "e", "", 0, 7, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var end []byte
			if tc.end != "" {
				end = []byte(tc.end)
			}
			kvs, err := s.Scan([]byte(tc.start), end, tc.limit, tc.snap)
			if err != nil {
				t.Fatal(err)
			}
			if got := scanString(kvs); got != tc.want {
				t.Fatalf("Scan = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLatestVersionAndLookupID(t *testing.T) {
	s := openMem(t)
	history(t, s)
	versions := []struct {
		key    string
		before uint64
		want   uint64 // 0 = none
	}{
		{"a", 0, 0}, {"a", 1, 0}, {"a", 2, 1}, {"a", 3, 1}, {"a", 4, 3},
		{"a", 6, 5}, // the delete at 5 is a version
		{"a", 8, 7}, {"a", math.MaxUint64, 7},
		{"b", 4, 3}, {"b", 5, 3}, {"b", 6, 5},
		{"never", 100, 0}, {"w1", 100, 0}, {"", 100, 0},
	}
	for _, tc := range versions {
		t.Run(fmt.Sprintf("version %s<%d", tc.key, tc.before), func(t *testing.T) {
			seq, ok, err := s.LatestVersion([]byte(tc.key), tc.before)
			if err != nil || ok != (tc.want != 0) || seq != tc.want {
				t.Fatalf("LatestVersion = %d, %v, %v; want %d", seq, ok, err, tc.want)
			}
		})
	}
	ids := []struct {
		id      string
		before  uint64
		want    string
		wantSeq uint64
	}{
		{"w1", 1, "", 0}, {"w1", 2, "ok", 1}, {"w3", 3, "", 0}, {"w3", 4, "ok", 3},
		{"w4", 5, "abort", 4}, {"w5", 100, "ok", 5}, {"a", 100, "", 0}, {"", 100, "", 0},
	}
	for _, tc := range ids {
		t.Run(fmt.Sprintf("id %s<%d", tc.id, tc.before), func(t *testing.T) {
			out, seq, ok, err := s.LookupID([]byte(tc.id), tc.before)
			if err != nil || ok != (tc.want != "") || string(out) != tc.want || seq != tc.wantSeq {
				t.Fatalf("LookupID = %q, %d, %v, %v; want %q, %d", out, seq, ok, err, tc.want, tc.wantSeq)
			}
		})
	}
}

func TestApplyBatchRejectsInvalid(t *testing.T) {
	big := Write{Key: []byte("k"), Value: make([]byte, 1<<20+1)} // above the in-memory limit
	tests := []struct {
		name string
		recs []Record
		st   uint64
	}{
		{"seqno equal to applied", []Record{rec(10, "x", put("k", "v"))}, 11},
		{"seqno below applied", []Record{rec(9, "x", put("k", "v"))}, 11},
		{"non-increasing", []Record{rec(11, "x", put("k", "v")), rec(11, "y", put("k", "v"))}, 12},
		{"decreasing", []Record{rec(12, "x", put("k", "v")), rec(11, "y", put("k", "v"))}, 12},
		{"state below last record", []Record{rec(11, "x", put("k", "v")), rec(13, "y")}, 12},
		{"state not above applied", nil, 10},
		{"empty key in a later record", []Record{rec(11, "x", put("k", "v")), rec(12, "y", put("", "v"))}, 12},
		{"key too long", []Record{rec(11, "x", Write{Key: make([]byte, MaxKeySize+1)})}, 11},
		{"id too long", []Record{{Seqno: 11, ID: make([]byte, MaxKeySize+1)}}, 11},
		{"value too large", []Record{rec(11, "x", put("k", "v"), big)}, 11},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openMem(t)
			mustApply(t, s, 10, rec(10, "w10", put("k", "old")))
			before := s.Applied()
			err := s.ApplyBatch(tc.recs, AppliedState{Seqno: tc.st, Meta: []byte("new")})
			if !errors.Is(err, ErrInvalidBatch) {
				t.Fatalf("ApplyBatch = %v, want ErrInvalidBatch", err)
			}
			if got := s.Applied(); got.Seqno != before.Seqno || !bytes.Equal(got.Meta, before.Meta) {
				t.Fatalf("Applied changed: %+v -> %+v", before, got)
			}
			kvs, err := s.Scan(nil, nil, 0, math.MaxUint64)
			if err != nil || scanString(kvs) != "k=old" {
				t.Fatalf("data changed: %q, %v", scanString(kvs), err)
			}
			for _, id := range []string{"x", "y"} {
				if _, _, ok, err := s.LookupID([]byte(id), math.MaxUint64); err != nil || ok {
					t.Fatalf("LookupID(%q) = stored %v, %v; want absent", id, ok, err)
				}
			}
		})
	}
}

func TestApplyBatchState(t *testing.T) {
	s := openMem(t)
	// Gaps (Raft's own entries), an empty batch, an aborted record with an id,
	// and a caller-supplied MinReadable that must be ignored.
	mustApply(t, s, 5, rec(2, "w2", put("k", "v2")))
	if err := s.ApplyBatch(nil, AppliedState{Seqno: 9, MinReadable: 7, Meta: []byte("m9")}); err != nil {
		t.Fatal(err)
	}
	if got := s.Applied(); got.Seqno != 9 || got.MinReadable != 0 || string(got.Meta) != "m9" {
		t.Fatalf("Applied = %+v", got)
	}
	if err := s.ApplyBatch([]Record{{Seqno: 10, ID: []byte("w10"), Outcome: []byte("conflict")}},
		AppliedState{Seqno: 10}); err != nil {
		t.Fatal(err)
	}
	if got := s.Applied(); got.Seqno != 10 || got.Meta != nil {
		t.Fatalf("Applied = %+v", got)
	}
	if out, seq, ok, err := s.LookupID([]byte("w10"), 11); err != nil || !ok || seq != 10 || string(out) != "conflict" {
		t.Fatalf("LookupID = %q, %d, %v, %v", out, seq, ok, err)
	}
	// A record writing one key twice: the last write wins.
	mustApply(t, s, 11, rec(11, "", put("k", "first"), put("k", "second"), put("j", "x"), del("j")))
	if v, err := s.Get([]byte("k"), 11); err != nil || string(v) != "second" {
		t.Fatalf("Get(k) = %q, %v", v, err)
	}
	if _, err := s.Get([]byte("j"), 11); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(j) = %v, want ErrNotFound", err)
	}
	// Applied returns a copy.
	st := s.Applied()
	st.Meta = append(st.Meta[:0], 'X')
	if string(s.Applied().Meta) == "X" {
		t.Fatal("Applied shares Meta with the store")
	}
}

func TestEmptyValuesAndDeletes(t *testing.T) {
	s := openMem(t)
	mustApply(t, s, 2,
		rec(1, "", put("empty", ""), del("never-written")),
		rec(2, "", Write{Key: []byte("nilval")}))
	for _, k := range []string{"empty", "nilval"} {
		if v, err := s.Get([]byte(k), 2); err != nil || len(v) != 0 {
			t.Fatalf("Get(%s) = %q, %v", k, v, err)
		}
	}
	if _, err := s.Get([]byte("never-written"), 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(never-written) = %v", err)
	}
	if seq, ok, err := s.LatestVersion([]byte("never-written"), 3); err != nil || !ok || seq != 1 {
		t.Fatalf("LatestVersion(never-written) = %d, %v, %v", seq, ok, err)
	}
	kvs, err := s.Scan(nil, nil, 0, 2)
	if err != nil || scanString(kvs) != "empty= nilval=" {
		t.Fatalf("Scan = %q, %v", scanString(kvs), err)
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir)
	history(t, s)
	want := s.Applied()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openDir(t, dir)
	if got := s.Applied(); got.Seqno != want.Seqno || !bytes.Equal(got.Meta, want.Meta) {
		t.Fatalf("Applied after reopen = %+v, want %+v", got, want)
	}
	kvs, err := s.Scan(nil, nil, 0, 3)
	if err != nil || scanString(kvs) != "a=a3 c=c3" {
		t.Fatalf("Scan@3 after reopen = %q, %v", scanString(kvs), err)
	}
	if seq, ok, _ := s.LatestVersion([]byte("a"), 6); !ok || seq != 5 {
		t.Fatalf("LatestVersion after reopen = %d, %v", seq, ok)
	}
}

// TestReopenAfterFlushes drives the applied record (rewritten at one
// version) and tombstones through memtable flushes and compactions, then
// checks that the newest applied record and the data win after a reopen.
func TestReopenAfterFlushes(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, memTableSize: 512 << 10}
	s := openCfg(t, cfg)
	val := strings.Repeat("v", 300)
	const batches = 1500
	for b := uint64(1); b <= batches; b++ {
		recs := make([]Record, 0, 8)
		for i := uint64(0); i < 8; i++ {
			seq := (b-1)*8 + i + 1
			w := put(fmt.Sprintf("k%03d", seq%100), val)
			if seq%7 == 0 {
				w = del(fmt.Sprintf("k%03d", seq%100))
			}
			recs = append(recs, rec(seq, fmt.Sprintf("id%d", seq), w))
		}
		mustApply(t, s, b*8, recs...)
	}
	if n := len(s.db.Tables()); n < 2 { // background compaction may have merged some
		t.Fatalf("only %d SSTables: not enough flushes exercised", n)
	}
	want := exportBytes(t, s)
	wantState := fmt.Sprintf("{Seqno:%d MinReadable:0 Meta:meta-%d}", batches*8, batches*8)
	checkReopen := func(step string) {
		t.Helper()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openCfg(t, cfg)
		if got := stateString(s.Applied()); got != wantState {
			t.Fatalf("%s: Applied = %s, want %s", step, got, wantState)
		}
		if got := exportBytes(t, s); !bytes.Equal(got, want) {
			t.Fatalf("%s: state differs", step)
		}
	}
	// Close flushes the memtable, so after the reopen every applied record
	// is in an SSTable; Flatten then merges them all into one level.
	checkReopen("reopen")
	if err := s.db.Flatten(2); err != nil {
		t.Fatal(err)
	}
	if n := len(s.db.Tables()); n > 2 {
		t.Fatalf("%d SSTables after Flatten", n)
	}
	checkReopen("reopen after Flatten")
}

// TestReapplyAfterPartialApply simulates a crash in the middle of a batch:
// some writes above the applied seqno are present, the applied record is not.
// Re-applying the batch must give exactly the state of a clean apply.
func TestReapplyAfterPartialApply(t *testing.T) {
	batch := []Record{
		rec(4, "w4", put("a", "a4"), del("b")),
		rec(5, "w5", put("c", "c5"), put("a", "a5")),
		{Seqno: 6, ID: []byte("w6"), Outcome: []byte("abort")},
	}
	clean := openMem(t)
	history(t, clean)
	mustApply(t, clean, 11, withSeqnos(batch, 9)...)

	dir := t.TempDir()
	s := openDir(t, dir)
	history(t, s)
	partial := withSeqnos(batch, 9)
	partial[1].Writes = partial[1].Writes[:1] // record 10 half written, record 11 missing
	if err := s.writeRecords(partial[:2]); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openDir(t, dir)
	if got := s.Applied().Seqno; got != 8 {
		t.Fatalf("Applied after crash = %d, want 8", got)
	}
	mustApply(t, s, 11, withSeqnos(batch, 9)...)
	if !bytes.Equal(exportBytes(t, s), exportBytes(t, clean)) {
		t.Fatal("re-applied state differs from a clean apply")
	}
}

// withSeqnos copies recs renumbered from first.
func withSeqnos(recs []Record, first uint64) []Record {
	out := append([]Record(nil), recs...)
	for i := range out {
		out[i].Seqno = first + uint64(i)
	}
	return out
}

func stateString(st AppliedState) string {
	return fmt.Sprintf("{Seqno:%d MinReadable:%d Meta:%s}", st.Seqno, st.MinReadable, st.Meta)
}

func exportBytes(t testing.TB, s *Store) []byte {
	t.Helper()
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	var buf bytes.Buffer
	n, err := sn.WriteTo(&buf)
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo returned %d, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

func TestCloseIsIdempotentAndFinal(t *testing.T) {
	s := openMem(t)
	history(t, s)
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	stream := exportBytes(t, s)
	for i := 0; i < 2; i++ {
		if err := s.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if got := s.Applied().Seqno; got != 8 {
		t.Fatalf("Applied after Close = %d", got)
	}
	calls := map[string]func() error{
		"Get":           func() error { _, err := s.Get([]byte("a"), 8); return err },
		"Scan":          func() error { _, err := s.Scan(nil, nil, 0, 8); return err },
		"LatestVersion": func() error { _, _, err := s.LatestVersion([]byte("a"), 8); return err },
		"LookupID":      func() error { _, _, _, err := s.LookupID([]byte("w1"), 8); return err },
		"ApplyBatch":    func() error { return s.ApplyBatch([]Record{rec(9, "")}, AppliedState{Seqno: 9}) },
		"Snapshot":      func() error { _, err := s.Snapshot(); return err },
		"WriteTo":       func() error { _, err := sn.WriteTo(&bytes.Buffer{}); return err },
		"Import":        func() error { _, err := s.Import(bytes.NewReader(stream)); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			if err := call(); !errors.Is(err, ErrClosed) {
				t.Fatalf("%s after Close = %v, want ErrClosed", name, err)
			}
		})
	}
}
