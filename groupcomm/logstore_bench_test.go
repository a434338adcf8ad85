//go:build unix

package groupcomm

// Benchmarks comparing the two durable Raft log stores Galena can use:
// hashicorp/raft-boltdb/v2 (BoltStore) and hashicorp/raft-wal (WAL), in the
// way hashicorp/raft drives them:
//
//   - StoreLogs with a batch of entries per call (raft's group commit: one
//     fsync'd write per batch), batches of 1, 16 and 64 entries, payloads of
//     200 B, 4 KiB and a mix uniformly drawn from 200 B..4 KiB;
//   - GetLog of recent entries (what replication to followers reads);
//   - DeleteRange of a log prefix (compaction after a snapshot).
//
// Both stores are opened with their default options, so fsync is on.
//
// Run, e.g.:
//
//	go test -run '^$' -bench 'BenchmarkLogStore' -benchtime 2s -count 3 ./groupcomm/
//
// Reported metrics besides ns/op: entries/s, ns/entry, MB/s (payload bytes)
// and disk-B/entry (allocated blocks in the store's directory per entry
// written, which includes raft-wal's 64 MiB segment preallocation).

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
)

// benchLogStore is what both candidate stores implement.
type benchLogStore interface {
	raft.LogStore
	Close() error
}

type benchStoreKind struct {
	name string
	open func(tb testing.TB, dir string) benchLogStore
}

var benchStoreKinds = []benchStoreKind{
	{
		name: "bolt",
		open: func(tb testing.TB, dir string) benchLogStore {
			s, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
			if err != nil {
				tb.Fatalf("raftboltdb.New: %v", err)
			}
			return s
		},
	},
	{
		name: "wal",
		open: func(tb testing.TB, dir string) benchLogStore {
			w, err := wal.Open(dir)
			if err != nil {
				tb.Fatalf("wal.Open: %v", err)
			}
			return w
		},
	},
}

// benchPayloadSize describes the size of entry payloads.
type benchPayloadSize struct {
	name     string
	min, max int // inclusive
}

var benchPayloadSizes = []benchPayloadSize{
	{"200B", 200, 200},
	{"4KiB", 4096, 4096},
	{"mixed", 200, 4096},
}

var benchBatchSizes = []int{1, 16, 64}

// benchPayloads returns n payloads of sizes drawn deterministically from ps.
// The content is random so that nothing along the way can compress it.
func benchPayloads(ps benchPayloadSize, n int) (payloads [][]byte, avg float64) {
	r := rand.New(rand.NewSource(42))
	total := 0
	payloads = make([][]byte, n)
	for i := range payloads {
		sz := ps.min
		if ps.max > ps.min {
			sz += r.Intn(ps.max - ps.min + 1)
		}
		p := make([]byte, sz)
		r.Read(p)
		payloads[i] = p
		total += sz
	}
	return payloads, float64(total) / float64(n)
}

// benchAppender appends consecutive entries the way raft does: increasing
// indexes without gaps, one StoreLogs call per batch.
type benchAppender struct {
	store    benchLogStore
	next     uint64 // index of the next entry to append
	payloads [][]byte
	batch    []*raft.Log
	backing  []raft.Log
}

func newBenchAppender(store benchLogStore, payloads [][]byte, batchSize int) *benchAppender {
	a := &benchAppender{
		store:    store,
		next:     1,
		payloads: payloads,
		batch:    make([]*raft.Log, batchSize),
		backing:  make([]raft.Log, batchSize),
	}
	for i := range a.batch {
		a.batch[i] = &a.backing[i]
	}
	return a
}

func (a *benchAppender) appendBatch(tb testing.TB) {
	now := time.Now()
	for _, l := range a.batch {
		*l = raft.Log{
			Index:      a.next,
			Term:       1,
			Type:       raft.LogCommand,
			Data:       a.payloads[a.next%uint64(len(a.payloads))],
			AppendedAt: now,
		}
		a.next++
	}
	if err := a.store.StoreLogs(a.batch); err != nil {
		tb.Fatalf("StoreLogs: %v", err)
	}
}

// diskBytes is the space allocated on disk for all files under dir.
func diskBytes(tb testing.TB, dir string) int64 {
	var total int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && !fi.IsDir() {
			total += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("walk %s: %v", dir, err)
	}
	return total
}

// BenchmarkLogStoreStoreLogs measures one op = one StoreLogs call of `batch`
// entries, i.e. one group commit including its fsync(s).
func BenchmarkLogStoreStoreLogs(b *testing.B) {
	for _, kind := range benchStoreKinds {
		for _, ps := range benchPayloadSizes {
			payloads, avg := benchPayloads(ps, 1024)
			for _, batch := range benchBatchSizes {
				name := fmt.Sprintf("store=%s/size=%s/batch=%d", kind.name, ps.name, batch)
				b.Run(name, func(b *testing.B) {
					dir := b.TempDir()
					s := kind.open(b, dir)
					defer s.Close()
					a := newBenchAppender(s, payloads, batch)
					b.SetBytes(int64(avg * float64(batch)))
					b.ReportAllocs()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						a.appendBatch(b)
					}
					b.StopTimer()
					entries := float64(b.N * batch)
					b.ReportMetric(entries/b.Elapsed().Seconds(), "entries/s")
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/entries, "ns/entry")
					b.ReportMetric(float64(diskBytes(b, dir))/entries, "disk-B/entry")
				})
			}
		}
	}
}

// BenchmarkLogStoreGetLog measures GetLog of a random entry among the most
// recent 1024 of a 16384-entry log (mixed sizes), as replication does when a
// follower is slightly behind. Note that raft normally puts a raft.LogCache
// in front of the store, which absorbs most of these reads.
func BenchmarkLogStoreGetLog(b *testing.B) {
	const (
		logLen = 16384
		recent = 1024
	)
	payloads, avg := benchPayloads(benchPayloadSizes[2], 1024)
	for _, kind := range benchStoreKinds {
		b.Run("store="+kind.name, func(b *testing.B) {
			s := kind.open(b, b.TempDir())
			defer s.Close()
			a := newBenchAppender(s, payloads, 64)
			for a.next <= logLen {
				a.appendBatch(b)
			}
			last := a.next - 1
			r := rand.New(rand.NewSource(1))
			var l raft.Log
			b.SetBytes(int64(avg))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				idx := last - uint64(r.Intn(recent))
				if err := s.GetLog(idx, &l); err != nil {
					b.Fatalf("GetLog(%d): %v", idx, err)
				}
				if l.Index != idx {
					b.Fatalf("GetLog(%d) returned index %d", idx, l.Index)
				}
			}
		})
	}
}

// BenchmarkLogStoreDeleteRange measures log compaction in steady state: the
// log holds `keep` entries; each op first appends `n` entries (untimed, in
// batches of 64) and then deletes the oldest `n` (timed), the way raft
// truncates the log prefix after a snapshot (raft's defaults:
// SnapshotThreshold 8192, TrailingLogs 10240). Entries are 1 KiB.
// Use a fixed -benchtime Nx: the untimed appends dominate wall time.
func BenchmarkLogStoreDeleteRange(b *testing.B) {
	const keep = 10240
	payloads, _ := benchPayloads(benchPayloadSize{"1KiB", 1024, 1024}, 1024)
	for _, kind := range benchStoreKinds {
		for _, n := range []int{1024, 8192} {
			b.Run(fmt.Sprintf("store=%s/n=%d", kind.name, n), func(b *testing.B) {
				dir := b.TempDir()
				s := kind.open(b, dir)
				defer s.Close()
				a := newBenchAppender(s, payloads, 64)
				for a.next <= keep {
					a.appendBatch(b)
				}
				first := uint64(1)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					for target := a.next + uint64(n); a.next < target; {
						a.appendBatch(b)
					}
					b.StartTimer()
					if err := s.DeleteRange(first, first+uint64(n)-1); err != nil {
						b.Fatalf("DeleteRange: %v", err)
					}
					first += uint64(n)
				}
				b.StopTimer()
				if fi, err := s.FirstIndex(); err != nil || fi != first {
					b.Fatalf("FirstIndex = %d, %v; want %d", fi, err, first)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
				b.ReportMetric(float64(diskBytes(b, dir))/(1<<20), "disk-MiB")
			})
		}
	}
}
