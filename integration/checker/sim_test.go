package checker

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// siSim generates list-append histories from an in-memory model of Galena:
// each transaction reads at a snapshot no older than what its process has
// seen, and commits unless (with fcw) a key it appended to was committed
// after its snapshot. With fcw the histories are snapshot isolated, so the
// checker must find no anomaly; without it, updates are lost.
type siSim struct {
	rng      *rand.Rand
	fcw      bool
	ser      bool // certify reads too, as client.Serializable does
	stale    bool // snapshots may lag behind the latest commit
	seq      int
	versions map[string][]simVersion
	seen     map[int]int // process -> highest seqno it has seen
	next     int         // next value to append
}

type simVersion struct {
	seq  int
	list []int
}

type simTxn struct {
	op     Op
	snap   int
	writes map[string][]int
	reads  map[string]bool // keys read from the snapshot
}

func (s *siSim) readAt(key string, snap int) []int {
	var list []int
	for _, v := range s.versions[key] {
		if v.seq <= snap {
			list = v.list
		}
	}
	return slices.Clone(list)
}

func (s *siSim) begin(p int, now int64) *simTxn {
	tx := &simTxn{snap: s.seq, writes: map[string][]int{}, reads: map[string]bool{}}
	if s.stale {
		tx.snap = s.seen[p] + s.rng.IntN(s.seq-s.seen[p]+1)
	}
	tx.op = Op{Process: p, Invoke: now, Type: TypeOK, Append: &TxnOp{}}
	for range 1 + s.rng.IntN(4) {
		key := fmt.Sprintf("k%d", s.rng.IntN(4))
		list, ok := tx.writes[key]
		if !ok {
			list = s.readAt(key, tx.snap)
			tx.reads[key] = true
		}
		if s.rng.IntN(2) == 0 {
			tx.op.Append.Mops = append(tx.op.Append.Mops, MicroOp{F: MopRead, Key: key, List: slices.Clone(list)})
			continue
		}
		s.next++
		tx.writes[key] = append(list, s.next)
		tx.op.Append.Mops = append(tx.op.Append.Mops, MicroOp{F: MopAppend, Key: key, Value: s.next})
	}
	return tx
}

func (s *siSim) commit(tx *simTxn, now int64) Op {
	tx.op.Complete = now
	p := tx.op.Process
	s.seen[p] = max(s.seen[p], tx.snap)
	for key := range tx.writes {
		if vs := s.versions[key]; s.fcw && len(vs) > 0 && vs[len(vs)-1].seq > tx.snap {
			tx.op.Type = TypeFail
			return s.lose(tx.op)
		}
	}
	for key := range tx.reads {
		if vs := s.versions[key]; s.ser && len(tx.writes) > 0 && len(vs) > 0 && vs[len(vs)-1].seq > tx.snap {
			tx.op.Type = TypeFail
			return s.lose(tx.op)
		}
	}
	if len(tx.writes) > 0 {
		s.seq++
		for key, list := range tx.writes {
			s.versions[key] = append(s.versions[key], simVersion{seq: s.seq, list: list})
		}
		if s.rng.IntN(10) == 0 { // committed, but the client never heard
			tx.op.Type, tx.op.Complete = TypeInfo, 0
			return s.lose(tx.op)
		}
		s.seen[p] = s.seq
	}
	return tx.op
}

// lose drops the reads of an op whose outcome the client did not see.
func (s *siSim) lose(o Op) Op {
	o.Append = &TxnOp{Mops: slices.DeleteFunc(slices.Clone(o.Append.Mops), func(m MicroOp) bool { return m.F == MopRead })}
	return o
}

func (s *siSim) run(n, procs int) []Op {
	open := map[int]*simTxn{}
	var h []Op
	for now := int64(1); len(h) < n; now++ {
		p := s.rng.IntN(procs)
		if tx := open[p]; tx != nil {
			h = append(h, s.commit(tx, now))
			delete(open, p)
		} else {
			open[p] = s.begin(p, now)
		}
	}
	return h
}

func simulate(seed uint64, fcw bool, n int) []Op {
	return simulateStale(seed, fcw, true, n)
}

func simulateStale(seed uint64, fcw, stale bool, n int) []Op {
	s := &siSim{rng: rand.New(rand.NewPCG(seed, 0)), fcw: fcw, stale: stale, versions: map[string][]simVersion{}, seen: map[int]int{}}
	return s.run(n, 5)
}

func TestListAppendSimulatedSI(t *testing.T) {
	allowed := 0
	for seed := range uint64(20) {
		h := simulate(seed, true, 300)
		res, err := CheckListAppend(h, AppendConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Valid {
			t.Fatalf("seed %d: snapshot-isolated history flagged:\n%s", seed, res)
		}
		allowed += len(res.Allowed)
	}
	t.Logf("%d G2 cycles allowed over 20 histories", allowed)
}

// Histories of serializable transactions (reads certified too; read-only
// ones at a snapshot, uncertified) pass the check in serializable mode, while
// the snapshot-isolated ones fail it with G2 cycles: the mode catches the
// write skew snapshot isolation allows.
func TestListAppendSimulatedSerializable(t *testing.T) {
	g2 := 0
	for seed := range uint64(20) {
		s := &siSim{rng: rand.New(rand.NewPCG(seed, 0)), fcw: true, ser: true, stale: true, versions: map[string][]simVersion{}, seen: map[int]int{}}
		res, err := CheckListAppend(s.run(300, 5), AppendConfig{Serializable: true})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Valid || len(res.Allowed) > 0 {
			t.Fatalf("seed %d: serializable history flagged:\n%s", seed, res)
		}
		res, err = CheckListAppend(simulate(seed, true, 300), AppendConfig{Serializable: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, an := range res.Anomalies {
			if an.Kind != KindG2 {
				t.Fatalf("seed %d: snapshot-isolated history has a %s anomaly in serializable mode:\n%s", seed, an.Kind, res)
			}
			g2++
		}
	}
	if g2 == 0 {
		t.Fatal("no G2 found in snapshot-isolated histories checked in serializable mode")
	}
	t.Logf("%d G2 cycles found over 20 snapshot-isolated histories", g2)
}

// With snapshots never stale, the histories pass the real-time check too.
func TestListAppendSimulatedRealTimeSI(t *testing.T) {
	for seed := range uint64(10) {
		res, err := CheckListAppend(simulateStale(seed, true, false, 300), AppendConfig{RealTime: true})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Valid {
			t.Fatalf("seed %d: linearizable-snapshot history flagged:\n%s", seed, res)
		}
		// Stale snapshots are fine for snapshot isolation, not in real time.
		res, err = CheckListAppend(simulateStale(seed, true, true, 300), AppendConfig{RealTime: true})
		if err != nil {
			t.Fatal(err)
		}
		wantKinds(t, res, KindLostAppend)
	}
}

func TestListAppendSimulatedLostUpdates(t *testing.T) {
	for seed := range uint64(5) {
		res, err := CheckListAppend(simulate(seed, false, 300), AppendConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Valid {
			t.Errorf("seed %d: history without first-committer-wins passed", seed)
		}
	}
}

// A large valid history is accepted. How long the check takes is measured by
// BenchmarkCheckListAppendLargeHistory.
func TestListAppendLargeHistoryValid(t *testing.T) {
	if testing.Short() {
		t.Skip("large history")
	}
	h := simulate(99, true, 5000)
	res, err := CheckListAppend(h, AppendConfig{})
	if err != nil || !res.Valid {
		t.Fatalf("err = %v\n%s", err, res)
	}
}

// BenchmarkCheckListAppendLargeHistory checks the history of
// TestListAppendLargeHistoryValid and reports operations checked per second.
func BenchmarkCheckListAppendLargeHistory(b *testing.B) {
	h := simulate(99, true, 5000)
	for b.Loop() {
		if res, err := CheckListAppend(h, AppendConfig{}); err != nil || !res.Valid {
			b.Fatalf("err = %v\n%s", err, res)
		}
	}
	b.ReportMetric(float64(len(h))*float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
