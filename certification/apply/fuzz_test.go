package apply

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/galenadb/galena/api/writesetpb"
	"github.com/galenadb/galena/certification"
	"github.com/galenadb/galena/groupcomm"
	"github.com/galenadb/galena/storage"
)

// A fuzz target for whole batches of log entries. Its seed corpus
// (testdata/fuzz/FuzzApplierDeliver/) runs with every `go test`; `go test
// -fuzz` explores further. See .ci/fuzz.

// fuzzWindow and fuzzInterval configure the Appliers of FuzzApplierDeliver:
// small, so that too-old snapshots and checkpoint judgements are reachable.
const (
	fuzzWindow   = 16
	fuzzInterval = 4
)

// fuzzRelative is the bound below which snapshots and checkpoint seqnos in
// FuzzApplierDeliver's inputs count from the start of the exec's log slice.
const fuzzRelative = 1 << 32

// deliverFixture is two members over in-memory stores, kept across execs.
type deliverFixture struct {
	stores [2]*storage.Store
}

func newDeliverFixture(tb testing.TB) *deliverFixture {
	tb.Helper()
	var fx deliverFixture
	for i := range fx.stores {
		st, err := storage.Open(storage.Config{InMemory: true})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { st.Close() })
		fx.stores[i] = st
	}
	return &fx
}

func (fx *deliverFixture) applier(tb testing.TB, i int, rec *recorder) *Applier {
	tb.Helper()
	a, err := New(Config{
		Certification: testConfig(fuzzWindow, 8), OnOutcome: rec.on,
		Member: "self", CheckpointInterval: fuzzInterval,
		IsMember: func(string) bool { return true }, // every announcement counts
	}, fx.stores[i])
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// fuzzLog turns a fuzz input into a log slice above base: gaps' nibbles
// space the entries (1 to 16 seqnos apart) and add trailing raft entries.
// An entry that decodes has its snapshot (or checkpoint seqno), when below
// fuzzRelative, moved up by base, so every exec is independent of the ones
// before it; others are delivered as they are. Empty entries are skipped.
func fuzzLog(base uint64, gaps uint16, data ...[]byte) ([]groupcomm.Entry, uint64) {
	var log []groupcomm.Entry
	idx := base
	for i, d := range data {
		idx += 1 + uint64(gaps>>(4*i)&0xf)
		if len(d) > 0 {
			log = append(log, groupcomm.Entry{Index: idx, Seqno: idx, Data: rebase(d, base)})
		}
	}
	return log, idx + uint64(gaps>>12)
}

func rebase(d []byte, base uint64) []byte {
	if member, cp, err := certification.DecodeCheckpoint(d); err == nil {
		if cp.Seqno < fuzzRelative {
			cp.Seqno += base
		}
		return certification.EncodeCheckpoint(member, cp)
	}
	var w writesetpb.WriteSet
	if certification.DecodeEntry(d, &w) != nil {
		return d
	}
	if w.Snapshot < fuzzRelative {
		w.Snapshot += base
	}
	b, err := certification.EncodeEntry(&w)
	if err != nil {
		return d
	}
	return b
}

// FuzzApplierDeliver delivers up to three arbitrary entries through an
// Applier on an in-memory store. Deliver either applies the batch or returns
// ErrMalformedEntry or ErrDiverged and leaves the store as it was; it never
// panics. A batch that applies gives the same outcomes, digest and contents
// when delivered one entry at a time on a second member, and exactly the
// committed write-sets' writes become visible at their seqnos. Any other
// error of Deliver is a finding (an id or value storage cannot hold gives
// storage.ErrInvalidBatch: see TestUnstorableWriteSetIsRefusedNotFatal).
func FuzzApplierDeliver(f *testing.F) {
	e := func(w *writesetpb.WriteSet) []byte { return mustEncode(f, w) }
	cp := func(member string, seqno uint64) []byte {
		return certification.EncodeCheckpoint(member, certification.Checkpoint{Seqno: seqno, Digest: [32]byte{0xd1}})
	}
	f.Add(uint16(0), e(ws("a", 0, "x")), e(ws("b", 0, "x")), e(ws("c", 1, "x")))       // commit, conflict, commit
	f.Add(uint16(0x0100), e(ws("a", 0, "x", "y")), e(ws("a", 0, "x")), []byte(nil))    // a resend
	f.Add(uint16(0x0f00), e(ws("a", 0, "x")), e(ws("b", 1, "y")), e(ws("c", 0, "z")))  // too old
	f.Add(uint16(0), e(ws("a", 5, "x")), e(ws("b", 0, "")), e(&writesetpb.WriteSet{})) // invalid snapshot, key; empty
	f.Add(uint16(0x3000), cp("x1", 0), cp("x2", 0), e(ws("a", 0, "k")))                // two strangers outvote this member
	f.Add(uint16(0), e(ws("a", 0, "x")), []byte{1, 0xff}, e(ws("c", 0, "y")))          // malformed write-set entry (tag 1)
	f.Add(uint16(0), []byte{2, 1}, []byte(nil), []byte(nil))                           // malformed checkpoint (tag 2)
	f.Add(uint16(0x1111), e(&writesetpb.WriteSet{Id: []byte("d"), Writes: []*writesetpb.Write{
		{Key: []byte("x"), Value: []byte("1")}, {Key: []byte("x"), Delete: true}, {Key: []byte("y")},
	}}), []byte(nil), []byte(nil))
	fx := newDeliverFixture(f)
	f.Fuzz(func(t *testing.T, gaps uint16, e1, e2, e3 []byte) {
		// Outside the window of everything delivered before, and at a checkpoint.
		base := (fx.stores[0].Applied().Seqno + fuzzWindow + fuzzInterval) / fuzzInterval * fuzzInterval
		log, last := fuzzLog(base, gaps, e1, e2, e3)
		var recs [2]recorder
		a := fx.applier(t, 0, &recs[0])
		before := fx.stores[0].Applied()
		if other := fx.stores[1].Applied().Seqno; other != before.Seqno {
			t.Fatalf("the members drifted apart: applied %d and %d", before.Seqno, other)
		}
		if err := a.Deliver(log, pos(last)); err != nil {
			if !errors.Is(err, certification.ErrMalformedEntry) && !errors.Is(err, ErrDiverged) {
				t.Fatalf("Deliver failed with %v; want ErrMalformedEntry or ErrDiverged", err)
			}
			if after := fx.stores[0].Applied(); after.Seqno != before.Seqno || !bytes.Equal(after.Meta, before.Meta) {
				t.Fatalf("a failed Deliver changed the applied state from %+v to %+v", before, after)
			}
			return
		}
		if got := fx.stores[0].Applied().Seqno; got != last {
			t.Fatalf("applied %d after delivering through %d", got, last)
		}
		checkVisible(t, fx.stores[0], log)
		b := fx.applier(t, 1, &recs[1])
		for i, en := range log {
			through := last
			if i+1 < len(log) {
				through = log[i+1].Index - 1
			}
			if err := b.Deliver([]groupcomm.Entry{en}, pos(through)); err != nil {
				t.Fatalf("entry-by-entry Deliver failed where one batch succeeded: %v", err)
			}
		}
		if len(log) == 0 {
			if err := b.Deliver(nil, pos(last)); err != nil {
				t.Fatal(err)
			}
		}
		_, da := a.Digest()
		_, db := b.Digest()
		if da != db || fmt.Sprint(recs[0].outcomes) != fmt.Sprint(recs[1].outcomes) {
			t.Fatalf("batching changed the result:\n%x %v\n%x %v", da, recs[0].outcomes, db, recs[1].outcomes)
		}
		for _, en := range log {
			var w writesetpb.WriteSet
			if certification.DecodeEntry(en.Data, &w) != nil {
				continue
			}
			for _, wr := range w.Writes {
				va, ea := fx.stores[0].Get(wr.Key, last)
				vb, eb := fx.stores[1].Get(wr.Key, last)
				if !bytes.Equal(va, vb) || (ea == nil) != (eb == nil) {
					t.Fatalf("members differ on %q: %q,%v vs %q,%v", wr.Key, va, ea, vb, eb)
				}
			}
		}
	})
}

// checkVisible checks that each write-set's writes are visible at its seqno
// if it committed (the last write of a key wins), and that nothing of it is
// visible otherwise; and that a well-formed write-set's outcome is stored
// under its id.
func checkVisible(t *testing.T, st *storage.Store, log []groupcomm.Entry) {
	t.Helper()
	for _, en := range log {
		var w writesetpb.WriteSet
		if certification.DecodeEntry(en.Data, &w) != nil {
			continue
		}
		raw, seqno, ok, err := st.LookupID(w.Id, en.Index+1)
		committed := false
		// An ill-formed write-set's outcome is not stored under its id
		// (storage may not hold the id); it commits nothing.
		if len(w.Id) > 0 && storable(&w) {
			if err != nil || !ok {
				t.Fatalf("no outcome stored for id %q: %v", w.Id, err)
			}
			o, err := certification.DecodeOutcome(raw)
			if err != nil {
				t.Fatal(err)
			}
			committed = o.Verdict == certification.Commit && seqno == en.Index // not a resend
		}
		final := map[string]*writesetpb.Write{}
		for _, wr := range w.Writes {
			final[string(wr.Key)] = wr
		}
		for k, wr := range final {
			if len(k) == 0 || len(k) > storage.MaxKeySize {
				continue
			}
			ver, ok, err := st.LatestVersion([]byte(k), en.Index+1)
			if err != nil {
				t.Fatal(err)
			}
			wrote := ok && ver == en.Index
			if len(w.Id) == 0 {
				continue // no stored outcome to tell whether it committed
			}
			if wrote != committed {
				t.Fatalf("key %q at seqno %d: written=%v, committed=%v", k, en.Index, wrote, committed)
			}
			if !committed {
				continue
			}
			v, err := st.Get([]byte(k), en.Index)
			switch {
			case wr.Delete && !errors.Is(err, storage.ErrNotFound):
				t.Fatalf("deleted key %q reads %q, %v", k, v, err)
			case !wr.Delete && (err != nil || !bytes.Equal(v, wr.Value)):
				t.Fatalf("key %q reads %q, %v; want %q", k, v, err, wr.Value)
			}
		}
	}
}

// storable reports whether storage can hold w's id, keys and values, and no
// key is empty: what the rule requires of a write-set at the Applier's
// limits, restated for the test.
func storable(w *writesetpb.WriteSet) bool {
	for _, wr := range w.Writes {
		if len(wr.Key) == 0 || len(wr.Key) > storage.MaxKeySize || len(wr.Value) > storage.MaxValueSize {
			return false
		}
	}
	return len(w.Id) <= storage.MaxKeySize
}
