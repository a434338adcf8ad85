package certification

import (
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/galenadb/galena/api/writesetpb"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memStore is a Store over maps, for testing the rule alone.
type memStore struct {
	versions map[string][]uint64 // ascending
	ids      map[string]Outcome
}

func newMemStore() *memStore {
	return &memStore{versions: map[string][]uint64{}, ids: map[string]Outcome{}}
}

func (m *memStore) LatestVersion(key []byte, before uint64) (uint64, bool, error) {
	vs := m.versions[string(key)]
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i] < before {
			return vs[i], true, nil
		}
	}
	return 0, false, nil
}

func (m *memStore) WrittenIn(start, end []byte, after, before uint64) ([]byte, uint64, bool, error) {
	keys := slices.Sorted(maps.Keys(m.versions))
	for _, k := range keys {
		if k < string(start) || (len(end) > 0 && k >= string(end)) {
			continue
		}
		if v, ok, _ := m.LatestVersion([]byte(k), before); ok && v > after {
			return []byte(k), v, true, nil
		}
	}
	return nil, 0, false, nil
}

func (m *memStore) LookupID(id []byte, before uint64) ([]byte, uint64, bool, error) {
	o, ok := m.ids[string(id)]
	if !ok || o.Seqno >= before {
		return nil, 0, false, nil
	}
	return EncodeOutcome(o), o.Seqno, true, nil
}

// testConfig is DefaultConfig with a window and an index size small
// enough for tests to reach their edges.
func testConfig(window uint64, indexSize int) Config {
	c := DefaultConfig()
	c.Window, c.IndexSize = window, indexSize
	return c
}

func ws(id string, snap uint64, keys ...string) *writesetpb.WriteSet {
	w := &writesetpb.WriteSet{Id: []byte(id), Snapshot: snap}
	for _, k := range keys {
		w.Writes = append(w.Writes, &writesetpb.Write{Key: []byte(k), Value: []byte("v")})
	}
	return w
}

func withOrigin(w *writesetpb.WriteSet, origin uint64) *writesetpb.WriteSet {
	w.Origin = origin
	return w
}

// certifyAndStore certifies w at seqno and stores what apply's Applier would:
// a commit's writes, and the outcome under the id of a first delivery that
// is not invalid. Then it tells the Certifier the store holds seqno.
func certifyAndStore(t *testing.T, c *Certifier, st *memStore, w *writesetpb.WriteSet, seqno uint64) Outcome {
	t.Helper()
	o, err := c.Certify(w, seqno)
	if err != nil {
		t.Fatal(err)
	}
	if o.Verdict == Commit && !o.Duplicate {
		for _, wr := range w.Writes {
			st.versions[string(wr.Key)] = append(st.versions[string(wr.Key)], seqno)
		}
	}
	if !o.Duplicate && o.Verdict != InvalidWriteSet {
		st.ids[string(w.Id)] = o
	}
	c.Persisted(seqno)
	return o
}

type step struct {
	ws    *writesetpb.WriteSet
	seqno uint64
	want  Verdict
	key   string // conflicting key, when want == Conflict
	at    uint64 // seqno of the conflicting write
	dup   bool
}

func TestCertifyRule(t *testing.T) {
	cases := []struct {
		name  string
		steps []step
	}{
		{"disjoint keys from one snapshot both commit", []step{
			{ws: ws("a", 0, "x"), seqno: 1, want: Commit},
			{ws: ws("b", 0, "y"), seqno: 2, want: Commit},
		}},
		{"same key from one snapshot: first committer wins", []step{
			{ws: ws("a", 0, "x"), seqno: 1, want: Commit},
			{ws: ws("b", 0, "x"), seqno: 2, want: Conflict, key: "x", at: 1},
		}},
		{"same key after seeing the first write commits", []step{
			{ws: ws("a", 0, "x"), seqno: 1, want: Commit},
			{ws: ws("b", 1, "x"), seqno: 2, want: Commit},
		}},
		{"aborted write-sets leave no trace", []step{
			{ws: ws("a", 0, "x"), seqno: 1, want: Commit},
			{ws: ws("b", 0, "x", "y"), seqno: 2, want: Conflict, key: "x", at: 1},
			{ws: ws("c", 1, "y"), seqno: 3, want: Commit},
		}},
		{"first conflicting key in write order is reported", []step{
			{ws: ws("a", 0, "p"), seqno: 1, want: Commit},
			{ws: ws("b", 1, "q"), seqno: 2, want: Commit},
			{ws: ws("c", 0, "z", "q", "p"), seqno: 3, want: Conflict, key: "q", at: 2},
		}},
		{"gaps in seqnos (raft's own entries)", []step{
			{ws: ws("a", 0, "x"), seqno: 5, want: Commit},
			{ws: ws("b", 3, "x"), seqno: 9, want: Conflict, key: "x", at: 5},
			{ws: ws("c", 7, "x"), seqno: 12, want: Commit},
		}},
		{"a key storage cannot hold makes the write-set invalid", []step{
			{ws: ws("a", 0, "x", ""), seqno: 1, want: InvalidWriteSet},
			{ws: ws("b", 0, "x", string(make([]byte, 65000))), seqno: 2, want: InvalidWriteSet},
			{ws: ws("c", 0, "x"), seqno: 3, want: Commit},
		}},
		{"snapshot at or after own seqno is invalid", []step{
			{ws: ws("a", 4, "x"), seqno: 4, want: InvalidSnapshot},
			{ws: ws("b", 9, "x"), seqno: 5, want: InvalidSnapshot},
		}},
		{"snapshot below the window is too old", []step{
			{ws: ws("a", 0, "x"), seqno: 100, want: Commit},
			{ws: ws("b", 10, "y"), seqno: 200, want: TooOld},
			{ws: ws("c", 100, "y"), seqno: 201, want: TooOld},
			{ws: ws("d", 101, "y"), seqno: 201, want: Commit},
		}},
		{"repeated id reports the first outcome", []step{
			{ws: ws("a", 0, "x"), seqno: 1, want: Commit},
			{ws: ws("a", 0, "x"), seqno: 2, want: Commit, dup: true},
			{ws: ws("b", 0, "x"), seqno: 3, want: Conflict, key: "x", at: 1},
			{ws: ws("b", 0, "x"), seqno: 4, want: Conflict, key: "x", at: 1, dup: true},
		}},
		{"repeated id beyond the window is certified afresh", []step{
			{ws: ws("a", 0, "x"), seqno: 1, want: Commit},
			{ws: ws("a", 150, "x"), seqno: 200, want: Commit},
		}},
		// A write-set that read nothing gets its snapshot from the member
		// that takes it, so a late resend carries a fresh one; its origin,
		// set by the client once, refuses the resend once the id is
		// forgotten.
		{"a late resend is refused by its origin, whatever snapshot it was given", []step{
			{ws: withOrigin(ws("a", 50, "x"), 40), seqno: 60, want: Commit},
			{ws: withOrigin(ws("a", 150, "x"), 40), seqno: 141, want: Commit, dup: true},
			{ws: withOrigin(ws("a", 150, "x"), 40), seqno: 200, want: TooOld},
		}},
		{"origin within the window commits, below it is too old", []step{
			{ws: withOrigin(ws("a", 150, "x"), 100), seqno: 200, want: Commit},
			{ws: withOrigin(ws("b", 150, "y"), 99), seqno: 200, want: TooOld},
		}},
		{"origin at or after own seqno is invalid", []step{
			{ws: withOrigin(ws("a", 3, "x"), 5), seqno: 5, want: InvalidSnapshot},
			{ws: withOrigin(ws("b", 3, "x"), 9), seqno: 6, want: InvalidSnapshot},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewCertifier(testConfig(100, 16), newMemStore())
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tc.steps {
				o, err := c.Certify(s.ws, s.seqno)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if o.Verdict != s.want || o.Duplicate != s.dup {
					t.Fatalf("step %d: got %v dup=%v, want %v dup=%v", i, o.Verdict, o.Duplicate, s.want, s.dup)
				}
				if s.want == Conflict && (string(o.Key) != s.key || o.KeySeqno != s.at) {
					t.Fatalf("step %d: conflict on %q@%d, want %q@%d", i, o.Key, o.KeySeqno, s.key, s.at)
				}
			}
		})
	}
}

// reading is ws with the read set of a serializable transaction: keys read
// and ranges scanned, each range given as start and end.
func reading(w *writesetpb.WriteSet, reads []string, ranges ...string) *writesetpb.WriteSet {
	for _, k := range reads {
		w.Reads = append(w.Reads, []byte(k))
	}
	for i := 0; i+1 < len(ranges); i += 2 {
		w.Scans = append(w.Scans, &writesetpb.KeyRange{Start: []byte(ranges[i]), End: []byte(ranges[i+1])})
	}
	return w
}

// A serializable write-set also conflicts with writes after its snapshot to
// the keys it read and into the ranges it scanned (phantoms), with the same
// verdict whether the index or the store answers.
func TestCertifyReadSet(t *testing.T) {
	prelude := []step{
		{ws: ws("p1", 0, "b"), seqno: 1, want: Commit},
		{ws: ws("p2", 1, "a2", "d"), seqno: 2, want: Commit}, // walking back, the index meets d first
		{ws: ws("p3", 2, "f"), seqno: 3, want: Commit},
	}
	cases := []struct {
		name string
		step step
	}{
		{"a read of a key written after the snapshot", step{ws: reading(ws("r", 1, "z"), []string{"x", "d"}), want: Conflict, key: "d", at: 2}},
		{"a read of a key written before the snapshot", step{ws: reading(ws("r", 2, "z"), []string{"b", "d"}), want: Commit}},
		{"writes are checked before reads", step{ws: reading(ws("r", 1, "f"), []string{"d"}), want: Conflict, key: "f", at: 3}},
		{"a range with writes after the snapshot: its first such key", step{ws: reading(ws("r", 1, "z"), nil, "a", "e"), want: Conflict, key: "a2", at: 2}},
		{"a range with writes only before the snapshot", step{ws: reading(ws("r", 2, "z"), nil, "a", "e"), want: Commit}},
		{"an open-ended range", step{ws: reading(ws("r", 2, "z"), nil, "e", ""), want: Conflict, key: "f", at: 3}},
		{"a range beside the writes", step{ws: reading(ws("r", 0, "z"), nil, "g", "k", "c", "d"), want: Commit}},
		{"a range ends before its end key", step{ws: reading(ws("r", 1, "z"), nil, "e", "f"), want: Commit}},
		{"many ranges: the first that holds a write", step{ws: reading(ws("r", 1, "z"), nil, "g", "k", "c", "d", "x", "y", "p", "q", "a", "e", "e", ""), want: Conflict, key: "a2", at: 2}},
		{"many ranges beside the writes", step{ws: reading(ws("r", 1, "z"), nil, "g", "k", "c", "d", "x", "y", "p", "q", "e", "f"), want: Commit}},
		{"reads are checked before ranges", step{ws: reading(ws("r", 1, "z"), []string{"f"}, "a", "e"), want: Conflict, key: "f", at: 3}},
		{"an empty read key is invalid", step{ws: reading(ws("r", 1, "z"), []string{""}), want: InvalidWriteSet}},
		{"a reversed range is invalid", step{ws: reading(ws("r", 1, "z"), nil, "e", "a"), want: InvalidWriteSet}},
	}
	for _, tc := range cases {
		for _, from := range []string{"index", "store"} {
			t.Run(tc.name+" from the "+from, func(t *testing.T) {
				st := newMemStore()
				size := 1 << 10 // and Resume(0): the index covers every write
				if from == "store" {
					size = 1 // the index keeps next to nothing
				}
				c, err := NewCertifier(testConfig(100, size), st)
				if err != nil {
					t.Fatal(err)
				}
				if from == "index" {
					c.Resume(0)
				}
				tc.step.seqno = 4
				for _, s := range append(prelude, tc.step) {
					o := certifyAndStore(t, c, st, s.ws, s.seqno)
					if o.Verdict != s.want || (s.want == Conflict && (string(o.Key) != s.key || o.KeySeqno != s.at)) {
						t.Fatalf("%s@%d: got %v on %q@%d, want %v on %q@%d", s.ws.Id, s.seqno, o.Verdict, o.Key, o.KeySeqno, s.want, s.key, s.at)
					}
				}
			})
		}
	}
}

// The index is a cache: with it nearly empty, answers come from the store and
// must be the same.
func TestIndexFallsBackToStore(t *testing.T) {
	st := newMemStore()
	c, err := NewCertifier(testConfig(1000, 1), st)
	if err != nil {
		t.Fatal(err)
	}
	apply := func(w *writesetpb.WriteSet, seqno uint64) Outcome {
		t.Helper()
		return certifyAndStore(t, c, st, w, seqno)
	}
	apply(ws("a", 0, "x"), 1)
	for i := uint64(2); i < 50; i++ {
		apply(ws(string(rune('A'+i)), i-1, "filler"), i)
	}
	if len(c.idx.keys) > 2 {
		t.Fatalf("index holds %d keys, want it trimmed", len(c.idx.keys))
	}
	if o := apply(ws("late", 0, "x"), 60); o.Verdict != Conflict || o.KeySeqno != 1 {
		t.Fatalf("got %+v, want conflict with seqno 1 from the store", o)
	}
	if o := apply(ws("a", 0, "x"), 61); !o.Duplicate || o.Seqno != 1 {
		t.Fatalf("got %+v, want the first outcome of id a from the store", o)
	}
}

// The limits of a well-formed write-set are the Config's: a key or id over
// MaxKeySize, a value over MaxValueSize or an empty key make it invalid.
func TestLimitsComeFromConfig(t *testing.T) {
	cfg := testConfig(100, 16)
	cfg.MaxKeySize, cfg.MaxValueSize = 4, 8
	withValue := func(w *writesetpb.WriteSet, n int) *writesetpb.WriteSet {
		w.Writes[0].Value = make([]byte, n)
		return w
	}
	for _, tc := range []struct {
		name string
		ws   *writesetpb.WriteSet
		want Verdict
	}{
		{"within every limit", withValue(ws("id", 0, "kkkk"), 8), Commit},
		{"key over MaxKeySize", ws("id", 0, "kkkkk"), InvalidWriteSet},
		{"id over MaxKeySize", ws("id-xx", 0, "k"), InvalidWriteSet},
		{"value over MaxValueSize", withValue(ws("id", 0, "k"), 9), InvalidWriteSet},
		{"empty key", ws("id", 0, ""), InvalidWriteSet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewCertifier(cfg, newMemStore())
			if err != nil {
				t.Fatal(err)
			}
			if o, err := c.Certify(tc.ws, 1); err != nil || o.Verdict != tc.want {
				t.Fatalf("Certify = %+v, %v; want %v", o, err, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, mod := range []func(*Config){
		func(c *Config) { c.Window = 0 },
		func(c *Config) { c.IndexSize = 0 },
		func(c *Config) { c.MaxKeySize = 0 },
		func(c *Config) { c.MaxValueSize = -1 },
	} {
		c := DefaultConfig()
		mod(&c)
		if _, err := NewCertifier(c, newMemStore()); err == nil {
			t.Errorf("NewCertifier accepted %+v", c)
		}
	}
}

func TestOutcomeErr(t *testing.T) {
	err := Outcome{Verdict: Conflict, Key: []byte("k"), KeySeqno: 7}.Err()
	var ce *ConflictError
	if !errors.Is(err, ErrConflict) || !errors.As(err, &ce) || string(ce.Key) != "k" || ce.Seqno != 7 {
		t.Fatalf("conflict error %v does not carry its key and seqno", err)
	}
	if !errors.Is(Outcome{Verdict: TooOld}.Err(), ErrSnapshotTooOld) {
		t.Fatal("too-old outcome does not match ErrSnapshotTooOld")
	}
	if (Outcome{Verdict: Commit}).Err() != nil {
		t.Fatal("commit has an error")
	}
}

func TestOutcomeEncoding(t *testing.T) {
	for _, o := range []Outcome{
		{Seqno: 1, Verdict: Commit},
		{Seqno: 1 << 40, Verdict: Conflict, Key: []byte("key\x00"), KeySeqno: 1<<40 - 1},
		{Seqno: 3, Verdict: TooOld},
	} {
		got, err := DecodeOutcome(EncodeOutcome(o))
		if err != nil || got.Seqno != o.Seqno || got.Verdict != o.Verdict || string(got.Key) != string(o.Key) || got.KeySeqno != o.KeySeqno {
			t.Fatalf("round trip of %+v gave %+v, %v", o, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {9}, {outcomeFormat, 99, 1, 0}, {outcomeFormat, 1}} {
		if _, err := DecodeOutcome(bad); err == nil {
			t.Fatalf("DecodeOutcome(%v) accepted garbage", bad)
		}
	}
}

func TestEntryEncoding(t *testing.T) {
	b, err := EncodeEntry(ws("id", 3, "k"))
	if err != nil {
		t.Fatal(err)
	}
	var got writesetpb.WriteSet
	if err := DecodeEntry(b, &got); err != nil || string(got.Id) != "id" || got.Snapshot != 3 {
		t.Fatalf("round trip: %v %v", &got, err)
	}
	for _, bad := range [][]byte{nil, {0}, {entryWriteSet, 0xff, 0xff}} {
		if err := DecodeEntry(bad, &got); !errors.Is(err, ErrMalformedEntry) {
			t.Fatalf("DecodeEntry(%v) = %v, want ErrMalformedEntry", bad, err)
		}
	}
}

// An entry written by an earlier version of the code decodes to the same
// write-set, and that write-set encodes to the same bytes: Raft logs and
// snapshots outlive the code that wrote them, and the digest covers the
// bytes of each entry.
func TestEntryEncodingIsStable(t *testing.T) {
	// A write-set with an id, a snapshot, a put, a delete and an origin.
	const old = "010a0469642d3110071a060a016b1201761a050a016418012003"
	want := withOrigin(&writesetpb.WriteSet{Id: []byte("id-1"), Snapshot: 7, Writes: []*writesetpb.Write{
		{Key: []byte("k"), Value: []byte("v")}, {Key: []byte("d"), Delete: true},
	}}, 3)
	b, err := hex.DecodeString(old)
	if err != nil {
		t.Fatal(err)
	}
	var got writesetpb.WriteSet
	if err := DecodeEntry(b, &got); err != nil || !proto.Equal(&got, want) {
		t.Fatalf("the old entry decodes to %v, %v; want %v", &got, err, want)
	}
	if again, err := EncodeEntry(want); err != nil || hex.EncodeToString(again) != old {
		t.Fatalf("the write-set encodes to %x, %v; want %s", again, err, old)
	}
}

// countingStore counts key lookups that reach storage.
type countingStore struct {
	*memStore
	keyReads int
	idReads  int
}

func (c *countingStore) LookupID(id []byte, before uint64) ([]byte, uint64, bool, error) {
	c.idReads++
	return c.memStore.LookupID(id, before)
}

func (c *countingStore) LatestVersion(key []byte, before uint64) (uint64, bool, error) {
	c.keyReads++
	return c.memStore.LatestVersion(key, before)
}

// Once resumed, a Certifier reads storage for a key only when the
// write-set's snapshot is older than what its index covers, and the
// verdicts are the same either way.
func TestIndexFloorSparesStorageReads(t *testing.T) {
	st := &countingStore{memStore: newMemStore()}
	st.versions["old"] = []uint64{3} // written before the restart
	c, err := NewCertifier(testConfig(1000, 2), st)
	if err != nil {
		t.Fatal(err)
	}
	c.Resume(10)
	certify := func(w *writesetpb.WriteSet, seqno uint64) Outcome {
		t.Helper()
		return certifyAndStore(t, c, st.memStore, w, seqno)
	}
	if o := certify(ws("a", 10, "new"), 11); o.Verdict != Commit || st.keyReads != 0 {
		t.Fatalf("snapshot at the floor: %+v after %d storage reads, want a commit with none", o, st.keyReads)
	}
	if o := certify(ws("b", 2, "old"), 12); o.Verdict != Conflict || o.KeySeqno != 3 || st.keyReads != 1 {
		t.Fatalf("snapshot below the floor: %+v after %d storage reads, want the conflict at 3 from storage", o, st.keyReads)
	}
	for i := uint64(13); i < 20; i++ { // evicts "new" (11) from the index: the floor rises to 11
		certify(ws(fmt.Sprint("f", i), i-1, fmt.Sprint("k", i)), i)
	}
	reads := st.keyReads
	if o := certify(ws("c", 10, "new"), 20); o.Verdict != Conflict || o.KeySeqno != 11 || st.keyReads != reads+1 {
		t.Fatalf("key evicted from the index: %+v after %d storage reads, want the conflict at 11 from storage", o, st.keyReads-reads)
	}
}

// An invalid write-set does not claim its id: a later write-set with the id
// is decided on its own, whether the invalid one is still in the index (in
// the same batch) or only in storage, which does not hold it. Otherwise the
// verdict would depend on where batches end, which differs between members.
func TestInvalidWriteSetDoesNotClaimItsID(t *testing.T) {
	for _, persisted := range []bool{false, true} {
		c, err := NewCertifier(DefaultConfig(), newMemStore())
		if err != nil {
			t.Fatal(err)
		}
		c.Resume(0)
		if o, err := c.Certify(ws("x", 0, ""), 1); err != nil || o.Verdict != InvalidWriteSet {
			t.Fatalf("empty key: %+v, %v; want invalid-write-set", o, err)
		}
		if persisted {
			c.Persisted(1)
		}
		if o, err := c.Certify(ws("x", 1, "k"), 2); err != nil || o.Verdict != Commit || o.Duplicate {
			t.Fatalf("persisted %v: the id's next write-set got %+v, %v; want a commit of its own", persisted, o, err)
		}
	}
}

// A write-set that writes a key twice leaves one entry in the index: it
// counts once towards the index's size, and recent lists it once.
func TestIndexKeyWrittenTwiceInOneWriteSet(t *testing.T) {
	x := newIndex(10)
	x.putKey([]byte("a"), 5)
	x.putKey([]byte("b"), 5)
	x.putKey([]byte("a"), 5)
	x.putKey([]byte("a"), 6)
	if n := len(x.order) - x.head; n != 3 {
		t.Errorf("%d entries, want 3: a@5, b@5, a@6", n)
	}
	got := x.recent(4)
	if len(got) != 2 || got[0] != (entry{key: "a", seqno: 6}) || got[1] != (entry{key: "b", seqno: 5}) {
		t.Errorf("recent(4) = %v, want a@6 and b@5", got)
	}
}
