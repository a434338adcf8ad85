package storage

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"go.uber.org/zap"
)

func openBench(b *testing.B) *Store {
	b.Helper()
	s, err := Open(Config{Dir: b.TempDir(), Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkApplyBatch applies batches of 64 records, each writing 2 keys
// with 100-byte values, to an on-disk store.
func BenchmarkApplyBatch(b *testing.B) {
	const recsPerBatch, writesPerRec, valueSize, keySpace = 64, 2, 100, 1 << 16
	s := openBench(b)
	keys := make([][]byte, keySpace)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("user/%08d", i))
	}
	val := make([]byte, valueSize)
	rng := rand.New(rand.NewPCG(1, 2))
	recs := make([]Record, recsPerBatch)
	writes := make([]Write, recsPerBatch*writesPerRec)
	ids := make([][]byte, recsPerBatch)
	for i := range ids {
		ids[i] = make([]byte, 16)
	}
	b.SetBytes(recsPerBatch * writesPerRec * valueSize)
	b.ReportAllocs()
	seq := uint64(0)
	for b.Loop() {
		for i := range recs {
			seq++
			w := writes[i*writesPerRec : (i+1)*writesPerRec]
			for j := range w {
				w[j] = Write{Key: keys[rng.IntN(keySpace)], Value: val}
			}
			binary.BigEndian.PutUint64(ids[i], rng.Uint64())
			binary.BigEndian.PutUint64(ids[i][8:], seq)
			recs[i] = Record{Seqno: seq, ID: ids[i], Outcome: []byte{1}, Writes: w}
		}
		if err := s.ApplyBatch(recs, AppliedState{Seqno: seq, Meta: ids[0]}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*recsPerBatch)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkGet reads random keys of a 100k-key on-disk store at the latest
// snapshot.
func BenchmarkGet(b *testing.B) {
	const n, batch = 100_000, 1000
	s := openBench(b)
	val := make([]byte, 100)
	for start := 0; start < n; start += batch {
		recs := make([]Record, 0, batch)
		for i := start; i < start+batch; i++ {
			recs = append(recs, Record{Seqno: uint64(i + 1),
				Writes: []Write{{Key: []byte(fmt.Sprintf("user/%08d", i)), Value: val}}})
		}
		if err := s.ApplyBatch(recs, AppliedState{Seqno: uint64(start + batch)}); err != nil {
			b.Fatal(err)
		}
	}
	snap := s.Applied().Seqno
	keys := make([][]byte, 4096)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("user/%08d", rng.IntN(n)))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Get(keys[i%len(keys)], snap); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkWrittenIn checks a range of 100 keys among 100,000 written at
// seqno 1, asked about the writes after seqno 1: nothing in the range was
// written since, and a key past it was.
func BenchmarkWrittenIn(b *testing.B) {
	s := openMem(b)
	const n = 100_000
	var ws []Write
	for i := range n {
		ws = append(ws, put(fmt.Sprintf("k%06d", i), "v"))
	}
	mustApply(b, s, 1, rec(1, "", ws...))
	mustApply(b, s, 2, rec(2, "", put("zz", "late")))
	for _, at := range []int{0, n - 200} {
		start, end := []byte(fmt.Sprintf("k%06d", at)), []byte(fmt.Sprintf("k%06d", at+100))
		b.Run(fmt.Sprintf("at%d", at), func(b *testing.B) {
			for b.Loop() {
				if _, _, ok, err := s.WrittenIn(start, end, 1, 3); ok || err != nil {
					b.Fatalf("WrittenIn = %v, %v; want nothing", ok, err)
				}
			}
		})
	}
}
