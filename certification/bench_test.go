package certification

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/galenadb/galena/api/writesetpb"
	"github.com/galenadb/galena/groupcomm"
	"github.com/galenadb/galena/storage"
	"go.uber.org/zap"
)

// benchKeys is the key space of the benchmarks: 64k keys.
func benchKeys() [][]byte {
	keys := make([][]byte, 1<<16)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("user/%08d", i))
	}
	return keys
}

// benchEntries encodes n write-sets of two 100-byte writes each over keys,
// read at the previous seqno (so they rarely conflict), from seqno first on.
func benchEntries(b *testing.B, keys [][]byte, first uint64, n int) []groupcomm.Entry {
	b.Helper()
	rng := rand.New(rand.NewPCG(first, 7))
	val := make([]byte, 100)
	es := make([]groupcomm.Entry, n)
	for i := range es {
		seq := first + uint64(i)
		id := make([]byte, 16)
		binary.BigEndian.PutUint64(id, rng.Uint64())
		binary.BigEndian.PutUint64(id[8:], seq)
		ws := &writesetpb.WriteSet{Id: id, Snapshot: seq - 1, Writes: []*writesetpb.Write{
			{Key: keys[rng.IntN(len(keys))], Value: val}, {Key: keys[rng.IntN(len(keys))], Value: val},
		}}
		data, err := EncodeEntry(ws)
		if err != nil {
			b.Fatal(err)
		}
		es[i] = groupcomm.Entry{Index: seq, Data: data}
	}
	return es
}

// BenchmarkEncodeEntry encodes a write-set of two 100-byte writes.
func BenchmarkEncodeEntry(b *testing.B) {
	ws := &writesetpb.WriteSet{Id: make([]byte, 16), Snapshot: 1 << 20, Writes: []*writesetpb.Write{
		{Key: []byte("user/00000001"), Value: make([]byte, 100)}, {Key: []byte("user/00000002"), Value: make([]byte, 100)},
	}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeEntry(ws); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeEntry decodes the same write-set into a reused message, as
// the Applier does.
func BenchmarkDecodeEntry(b *testing.B) {
	es := benchEntries(b, benchKeys(), 2, 1)
	var ws writesetpb.WriteSet
	b.SetBytes(int64(len(es[0].Data)))
	b.ReportAllocs()
	for b.Loop() {
		ws.Reset()
		if err := DecodeEntry(es[0].Data, &ws); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCertify is the certification rule alone over the index of recent
// writes and the id filter, for new write-sets (the store is empty, so
// misses are cheap).
func BenchmarkCertify(b *testing.B) {
	st, err := storage.Open(storage.Config{InMemory: true, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	c, err := NewCertifier(DefaultConfig(), st)
	if err != nil {
		b.Fatal(err)
	}
	keys := benchKeys()
	const n = 1 << 14
	es := benchEntries(b, keys, 2, n)
	wss := make([]*writesetpb.WriteSet, n)
	for i, e := range es {
		wss[i] = &writesetpb.WriteSet{}
		if err := DecodeEntry(e.Data, wss[i]); err != nil {
			b.Fatal(err)
		}
	}
	c.Resume(1)
	b.ReportAllocs()
	seq := uint64(1)
	for i := 0; b.Loop(); i++ {
		ws := wss[i%n]
		seq++
		ws.Snapshot = seq - 1
		ws.Id = binary.BigEndian.AppendUint64(ws.Id[:0], seq) // a new write-set, as nearly all are
		if _, err := c.Certify(ws, seq); err != nil {
			b.Fatal(err)
		}
		if seq%64 == 0 {
			c.Persisted(seq) // as the apply loop does after each batch
		}
	}
}

// BenchmarkDeliver is the whole apply step of one member: decode, certify,
// digest and one on-disk storage batch per 64 write-sets.
func BenchmarkDeliver(b *testing.B) {
	st, err := storage.Open(storage.Config{Dir: b.TempDir(), Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	a, err := NewApplier(ApplierConfig{Certification: DefaultConfig(), CheckpointInterval: 4096}, st)
	if err != nil {
		b.Fatal(err)
	}
	keys := benchKeys()
	const batch = 64
	b.ReportAllocs()
	next := uint64(1)
	for b.Loop() {
		b.StopTimer()
		es := benchEntries(b, keys, next, batch)
		b.StartTimer()
		next += batch
		if err := a.Deliver(es, next-1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "write-sets/s")
}
