package certification

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/galenadb/galena/api/writesetpb"
)

// benchKeys is the key space of the benchmarks: 64k keys.
func benchKeys() [][]byte {
	keys := make([][]byte, 1<<16)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("user/%08d", i))
	}
	return keys
}

// benchWriteSets makes n write-sets of two 100-byte writes each over keys,
// read at the previous seqno (so they rarely conflict), for seqno first on.
func benchWriteSets(keys [][]byte, first uint64, n int) []*writesetpb.WriteSet {
	rng := rand.New(rand.NewPCG(first, 7))
	val := make([]byte, 100)
	wss := make([]*writesetpb.WriteSet, n)
	for i := range wss {
		seq := first + uint64(i)
		id := make([]byte, 16)
		binary.BigEndian.PutUint64(id, rng.Uint64())
		binary.BigEndian.PutUint64(id[8:], seq)
		wss[i] = &writesetpb.WriteSet{Id: id, Snapshot: seq - 1, Writes: []*writesetpb.Write{
			{Key: keys[rng.IntN(len(keys))], Value: val}, {Key: keys[rng.IntN(len(keys))], Value: val},
		}}
	}
	return wss
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
// apply's Applier does.
func BenchmarkDecodeEntry(b *testing.B) {
	data, err := EncodeEntry(benchWriteSets(benchKeys(), 2, 1)[0])
	if err != nil {
		b.Fatal(err)
	}
	var ws writesetpb.WriteSet
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		ws.Reset()
		if err := DecodeEntry(data, &ws); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCertify is the certification rule alone over the index of recent
// writes and the id filter, for new write-sets (the store is empty, so
// misses are cheap).
func BenchmarkCertify(b *testing.B) {
	c, err := NewCertifier(DefaultConfig(), newMemStore())
	if err != nil {
		b.Fatal(err)
	}
	const n = 1 << 14
	wss := benchWriteSets(benchKeys(), 2, n)
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

// BenchmarkCertifyReadSet is BenchmarkCertify for serializable write-sets:
// two writes and a read set of keys read (checked like writes) and of
// scanned ranges (each a walk over the index's writes after the snapshot,
// which lags the seqno by lag; past 4 ranges, one sort of those writes).
func BenchmarkCertifyReadSet(b *testing.B) {
	keys := benchKeys()
	for _, bc := range []struct {
		name  string
		reads int
		scans int
		lag   uint64
	}{
		{"none", 0, 0, 1},
		{"reads=2", 2, 0, 1},
		{"reads=8", 8, 0, 1},
		{"scans=1/lag=16", 0, 1, 16},
		{"scans=1/lag=256", 0, 1, 256},
		{"scans=16/lag=256", 0, 16, 256}, // sorted once, not walked 16 times
		{"reads=8,scans=1/lag=256", 8, 1, 256},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := NewCertifier(DefaultConfig(), newMemStore())
			if err != nil {
				b.Fatal(err)
			}
			const n = 1 << 14
			wss := benchWriteSets(keys, 2, n)
			rng := rand.New(rand.NewPCG(3, 3))
			for _, ws := range wss {
				for range bc.reads {
					ws.Reads = append(ws.Reads, keys[rng.IntN(len(keys))])
				}
				for range bc.scans {
					i := rng.IntN(len(keys) - 100)
					ws.Scans = append(ws.Scans, &writesetpb.KeyRange{Start: keys[i], End: keys[i+100]})
				}
			}
			c.Resume(1)
			b.ReportAllocs()
			seq := uint64(bc.lag)
			for i := 0; b.Loop(); i++ {
				ws := wss[i%n]
				seq++
				ws.Snapshot = seq - bc.lag
				ws.Id = binary.BigEndian.AppendUint64(ws.Id[:0], seq)
				if _, err := c.Certify(ws, seq); err != nil {
					b.Fatal(err)
				}
				if seq%64 == 0 {
					c.Persisted(seq)
				}
			}
		})
	}
}
