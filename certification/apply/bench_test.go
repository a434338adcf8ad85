package apply

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
		w := &writesetpb.WriteSet{Id: id, Snapshot: seq - 1, Writes: []*writesetpb.Write{
			{Key: keys[rng.IntN(len(keys))], Value: val}, {Key: keys[rng.IntN(len(keys))], Value: val},
		}}
		es[i] = groupcomm.Entry{Index: seq, Seqno: seq, Data: mustEncode(b, w)}
	}
	return es
}

// BenchmarkDeliver is the whole apply step of one member: decode, certify,
// digest and one on-disk storage batch per 64 write-sets.
func BenchmarkDeliver(b *testing.B) {
	st, err := storage.Open(storage.Config{Dir: b.TempDir(), Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	a, err := New(DefaultConfig(), st)
	if err != nil {
		b.Fatal(err)
	}
	keys := make([][]byte, 1<<16)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("user/%08d", i))
	}
	const batch = 64
	b.ReportAllocs()
	next := uint64(1)
	for b.Loop() {
		b.StopTimer()
		es := benchEntries(b, keys, next, batch)
		b.StartTimer()
		next += batch
		if err := a.Deliver(es, pos(next-1)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "write-sets/s")
}
