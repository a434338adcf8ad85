package apply

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/galenadb/galena/api/writesetpb"
	"github.com/galenadb/galena/certification"
	"github.com/galenadb/galena/groupcomm"
	"github.com/galenadb/galena/storage"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testConfig is the certification part of DefaultConfig with a window and
// an index size small enough for tests to reach their edges.
func testConfig(window uint64, indexSize int) certification.Config {
	c := DefaultConfig().Certification
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

func mustEncode(tb testing.TB, w *writesetpb.WriteSet) []byte {
	tb.Helper()
	b, err := certification.EncodeEntry(w)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// randomLog makes n encoded write-sets over a few hot keys, with snapshots
// that lag the seqno by a random amount, some repeated ids, some deletes,
// gaps in the log where Raft's own entries would be, and group commit's
// entries: several write-sets at one index, with seqnos as
// groupcomm.Position gives them.
func randomLog(t *testing.T, r *rand.Rand, n int) []groupcomm.Entry {
	t.Helper()
	var log []groupcomm.Entry
	var at groupcomm.Position // the last entry's
	for i := 0; i < n; {
		gap := 1 + uint64(r.IntN(2))
		at.Index, at.Seqno = at.Index+gap, at.Seqno+gap
		batch := 1
		if r.IntN(4) == 0 {
			batch = 2 + r.IntN(4)
		}
		for k := 0; k < batch && i < n; k, i = k+1, i+1 {
			seqno := at.Seqno + uint64(k)
			w := &writesetpb.WriteSet{Id: []byte(fmt.Sprintf("id-%d", i)), Snapshot: seqno - 1 - uint64(r.IntN(int(min(seqno, 8))))}
			if i > 0 && r.IntN(10) == 0 {
				w.Id = []byte(fmt.Sprintf("id-%d", r.IntN(i))) // a resend
			}
			for k := 0; k < 1+r.IntN(3); k++ {
				wr := &writesetpb.Write{Key: []byte(fmt.Sprintf("k%d", r.IntN(12))), Value: []byte(fmt.Sprintf("v%d", i))}
				wr.Delete = r.IntN(8) == 0
				w.Writes = append(w.Writes, wr)
			}
			if r.IntN(3) == 0 { // serializable: a read set
				for k := 0; k < r.IntN(3); k++ {
					w.Reads = append(w.Reads, []byte(fmt.Sprintf("k%d", r.IntN(12))))
				}
				for range r.IntN(2) * (1 + r.IntN(6)) { // sometimes more ranges than are walked
					a, b := r.IntN(12), r.IntN(12)
					kr := &writesetpb.KeyRange{Start: []byte(fmt.Sprintf("k%d", min(a, b)))}
					if a != b {
						kr.End = []byte(fmt.Sprintf("k%d", max(a, b)))
					}
					if string(kr.End) != "" && string(kr.Start) >= string(kr.End) {
						kr.Start, kr.End = kr.End, kr.Start
					}
					w.Scans = append(w.Scans, kr)
				}
			}
			log = append(log, groupcomm.Entry{Index: at.Index, Seqno: seqno, Data: mustEncode(t, w)})
		}
		at.Seqno = log[len(log)-1].Seqno
	}
	return log
}

// boundary is the first i at or after n where a Raft entry starts in log:
// groupcomm never splits one entry's write-sets between two Deliver calls.
func boundary(log []groupcomm.Entry, n int) int {
	for n > 0 && n < len(log) && log[n].Index == log[n-1].Index {
		n++
	}
	return n
}

// positionOf is the position after entry e.
func positionOf(e groupcomm.Entry) groupcomm.Position {
	return groupcomm.Position{Index: e.Index, Seqno: e.Seqno}
}

// pos is the position at index i of a log without group commit's entries.
func pos(i uint64) groupcomm.Position { return groupcomm.Position{Index: i, Seqno: i} }

type recorder struct {
	outcomes []string
	conflict map[string][]byte // id → the key of its conflict
}

func (r *recorder) on(id []byte, o certification.Outcome) {
	r.outcomes = append(r.outcomes, fmt.Sprintf("%s@%d:%v/%q@%d dup=%v", id, o.Seqno, o.Verdict, o.Key, o.KeySeqno, o.Duplicate))
	if o.Verdict == certification.Conflict && !o.Duplicate {
		if r.conflict == nil {
			r.conflict = make(map[string][]byte)
		}
		r.conflict[string(id)] = o.Key
	}
}

// readConflicts counts the write-sets of log that lost on a key they read
// or scanned rather than on one they wrote.
func readConflicts(t *testing.T, log []groupcomm.Entry, rec *recorder) int {
	t.Helper()
	n := 0
	for _, e := range log {
		var w writesetpb.WriteSet
		if err := certification.DecodeEntry(e.Data, &w); err != nil {
			t.Fatal(err)
		}
		key, ok := rec.conflict[string(w.Id)]
		if ok && !slices.ContainsFunc(w.Writes, func(wr *writesetpb.Write) bool { return bytes.Equal(wr.Key, key) }) {
			n++
		}
	}
	return n
}

func openApplier(t *testing.T, dir string, rec *recorder, indexSize int) (*Applier, *storage.Store) {
	t.Helper()
	sc := storage.DefaultConfig()
	sc.Dir = dir
	return openApplierOn(t, sc, rec, indexSize)
}

// openApplierOn is openApplier on a store configured by sc; certification's
// window is 64.
func openApplierOn(t *testing.T, sc storage.Config, rec *recorder, indexSize int) (*Applier, *storage.Store) {
	t.Helper()
	st, err := storage.Open(sc)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Certification: testConfig(64, indexSize), OnOutcome: rec.on, CheckpointInterval: 16}, st)
	if err != nil {
		t.Fatal(err)
	}
	return a, st
}

// deliverInBatches feeds log to a in random batch sizes, as raft would.
func deliverInBatches(t *testing.T, a *Applier, r *rand.Rand, log []groupcomm.Entry) {
	t.Helper()
	for i := 0; i < len(log); {
		j := boundary(log, min(len(log), i+1+r.IntN(7)))
		last := positionOf(log[j-1])
		if j == len(log) || log[j].Index > last.Index+1 {
			extra := uint64(r.IntN(2)) // a trailing raft entry
			last.Index, last.Seqno = last.Index+extra, last.Seqno+extra
		}
		if err := a.Deliver(log[i:j], last); err != nil {
			t.Fatal(err)
		}
		i = j
	}
}

func dump(t *testing.T, st *storage.Store) string {
	t.Helper()
	kvs, err := st.Scan(nil, nil, 0, st.Applied().Seqno)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, kv := range kvs {
		fmt.Fprintf(&b, "%s=%s;", kv.Key, kv.Value)
	}
	return b.String()
}

// Determinism: two members fed the same log, in different batchings and with
// different index sizes, reach the same verdicts, digest and contents.
func TestDeterminism(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			log := randomLog(t, rand.New(rand.NewPCG(seed, 0)), 400)
			var recs [2]recorder
			var digests [2][32]byte
			var contents [2]string
			for m := 0; m < 2; m++ {
				a, st := openApplier(t, t.TempDir(), &recs[m], []int{1, 4096}[m])
				deliverInBatches(t, a, rand.New(rand.NewPCG(seed, uint64(m)+10)), log)
				_, digests[m] = a.Digest()
				contents[m] = dump(t, st)
				st.Close()
			}
			if fmt.Sprint(recs[0].outcomes) != fmt.Sprint(recs[1].outcomes) {
				t.Fatalf("verdicts differ:\n%v\n%v", recs[0].outcomes, recs[1].outcomes)
			}
			if digests[0] != digests[1] || contents[0] != contents[1] {
				t.Fatalf("state differs:\n%x %s\n%x %s", digests[0], contents[0], digests[1], contents[1])
			}
			if s := a0Commits(recs[0].outcomes); s == 0 || s == len(log) {
				t.Fatalf("degenerate log: %d of %d committed", s, len(log))
			}
			if readConflicts(t, log, &recs[0]) == 0 {
				t.Fatal("no write-set lost on its read set: the log does not exercise it")
			}
		})
	}
}

// Forgetting does not change a verdict: a member whose store forgets
// deletes and ids as soon as they leave the window (a sync after every
// batch) reaches the verdicts of one that keeps them all, and the first
// really did forget.
func TestDeterminismWhateverForgotten(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			log := randomLog(t, rand.New(rand.NewPCG(seed, 0)), 600)
			var recs [2]recorder
			var contents [2]string
			var forgot [2]bool
			for m := 0; m < 2; m++ {
				sc := storage.Config{Dir: t.TempDir(), Window: []uint64{64, 0}[m]}
				a, st := openApplierOn(t, sc, &recs[m], 1)
				r := rand.New(rand.NewPCG(seed, 10))
				for i := 0; i < len(log); {
					j := boundary(log, min(len(log), i+1+r.IntN(7)))
					if err := a.Deliver(log[i:j], positionOf(log[j-1])); err != nil {
						t.Fatal(err)
					}
					if err := st.Sync(); err != nil {
						t.Fatal(err)
					}
					i = j
				}
				_, _, found, err := st.LookupID([]byte("id-0"), st.Applied().Seqno+1)
				if err != nil {
					t.Fatal(err)
				}
				forgot[m] = !found
				contents[m] = dump(t, st)
				st.Close()
			}
			if fmt.Sprint(recs[0].outcomes) != fmt.Sprint(recs[1].outcomes) {
				t.Fatalf("verdicts differ:\n%v\n%v", recs[0].outcomes, recs[1].outcomes)
			}
			if contents[0] != contents[1] {
				t.Fatalf("contents differ:\n%s\n%s", contents[0], contents[1])
			}
			if !forgot[0] || forgot[1] {
				t.Fatalf("id-0 forgotten: %v with a window, %v without; want true, false", forgot[0], forgot[1])
			}
		})
	}
}

func a0Commits(outcomes []string) int {
	n := 0
	for _, o := range outcomes {
		if bytes.Contains([]byte(o), []byte(":commit/")) && !bytes.Contains([]byte(o), []byte("dup=true")) {
			n++
		}
	}
	return n
}

// A member that restarts mid-log and is handed entries it already applied
// (raft replays from its last snapshot) skips them and ends in the same state
// as one that never stopped.
func TestRestartReplaysNothingTwice(t *testing.T) {
	log := randomLog(t, rand.New(rand.NewPCG(42, 0)), 300)
	var ref, got recorder
	a, st := openApplier(t, t.TempDir(), &ref, 64)
	deliverInBatches(t, a, rand.New(rand.NewPCG(1, 1)), log)
	_, want := a.Digest()
	wantContents := dump(t, st)
	st.Close()

	dir := t.TempDir()
	a, st = openApplier(t, dir, &got, 64)
	stop := boundary(log, 170)
	deliverInBatches(t, a, rand.New(rand.NewPCG(2, 2)), log[:stop])
	at, _ := a.Digest() // the last batch may end with a Raft entry of its own
	st.Close()
	a, st = openApplier(t, dir, &got, 64)
	defer st.Close()
	if a.Applied() != at {
		t.Fatalf("applied after restart = %+v, want %+v", a.Applied(), at)
	}
	deliverInBatches(t, a, rand.New(rand.NewPCG(3, 3)), log[boundary(log, 100):]) // overlap: replayed entries
	if _, d := a.Digest(); d != want || dump(t, st) != wantContents {
		t.Fatal("state after restart and replay differs from an uninterrupted member")
	}
	if fmt.Sprint(got.outcomes) != fmt.Sprint(ref.outcomes) {
		t.Fatal("outcomes reported after restart differ (something was applied twice or skipped)")
	}
}

func TestSnapshotRestore(t *testing.T) {
	log := randomLog(t, rand.New(rand.NewPCG(7, 0)), 200)
	var r1, r2 recorder
	a, st := openApplier(t, t.TempDir(), &r1, 64)
	defer st.Close()
	cut := boundary(log, 120)
	deliverInBatches(t, a, rand.New(rand.NewPCG(1, 1)), log[:cut])
	at, _ := a.Digest() // the last batch may end with a Raft entry of its own
	sn, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	sn.Release()
	deliverInBatches(t, a, rand.New(rand.NewPCG(1, 1)), log[cut:])

	b, st2 := openApplier(t, t.TempDir(), &r2, 64)
	defer st2.Close()
	if err := b.Restore(&buf, sn.Index()); err != nil {
		t.Fatal(err)
	}
	if b.Applied() != at {
		t.Fatalf("restored applied = %+v, want %+v", b.Applied(), at)
	}
	deliverInBatches(t, b, rand.New(rand.NewPCG(9, 9)), log[cut:])
	_, da := a.Digest()
	_, db := b.Digest()
	if da != db || dump(t, st) != dump(t, st2) {
		t.Fatal("member restored from a snapshot diverged")
	}
	// Its checkpoints, all after the snapshot, agree with the other's.
	want := map[uint64][32]byte{}
	for _, cp := range a.Checkpoints() {
		want[cp.Seqno] = cp.Digest
	}
	got := b.Checkpoints()
	if len(got) == 0 {
		t.Fatal("the restored member recorded no checkpoint")
	}
	for _, cp := range got {
		if d, ok := want[cp.Seqno]; !ok || d != cp.Digest || cp.Seqno <= log[cut-1].Seqno {
			t.Fatalf("restored member's checkpoint at %d (snapshot at seqno %d) is not the other's (%v)", cp.Seqno, log[cut-1].Seqno, ok)
		}
	}
}

// A snapshot is complete only once storage is durable up to its seqno:
// Raft compacts its log after that, and a restart resumes from the durable
// state.
func TestSnapshotSyncsStorage(t *testing.T) {
	log := randomLog(t, rand.New(rand.NewPCG(8, 0)), 100)
	var r recorder
	a, st := openApplier(t, t.TempDir(), &r, 64)
	defer st.Close()
	cut := boundary(log, 60)
	deliverInBatches(t, a, rand.New(rand.NewPCG(1, 1)), log[:cut])
	sn, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	deliverInBatches(t, a, rand.New(rand.NewPCG(2, 2)), log[cut:])
	if a.Applied().Index >= sn.Index() {
		t.Fatalf("durable index %d before the snapshot is written: the test needs it below %d", a.Applied().Index, sn.Index())
	}
	if _, err := sn.WriteTo(io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := position(st.Durable()); got.Index < sn.Index() || a.Applied() != got {
		t.Fatalf("after the snapshot at %d: durable %+v, Applied %+v", sn.Index(), got, a.Applied())
	}
}

// TimeCertify brackets the certification of each batch and is told how many
// write-sets it certified; it changes no outcome.
func TestTimeCertifyIsToldEachBatch(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	log := randomLog(t, r, 40)
	var plain, timed recorder
	a, st := openApplier(t, t.TempDir(), &plain, 1024)
	defer st.Close()
	deliverInBatches(t, a, rand.New(rand.NewPCG(1, 1)), log)

	b, st2 := openApplier(t, t.TempDir(), &timed, 1024)
	defer st2.Close()
	var started, certified int
	b.cfg.TimeCertify = func() func(int) {
		started++
		return func(n int) { certified += n }
	}
	deliverInBatches(t, b, rand.New(rand.NewPCG(1, 1)), log)
	if started == 0 || certified != len(log) {
		t.Fatalf("TimeCertify: %d batches, %d write-sets; want some batches and %d write-sets", started, certified, len(log))
	}
	if fmt.Sprint(plain.outcomes) != fmt.Sprint(timed.outcomes) {
		t.Fatal("timing certification changed its outcomes")
	}
}
