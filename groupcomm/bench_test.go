package groupcomm

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/galenadb/galena/internal/cputime"
)

// BenchmarkBroadcast measures one Broadcast at a time, as one client
// committing after another does, through the leader and through a
// follower, and splits a follower's into its stages, reported per op:
//
//	to-leader-µs    forward, leader append, quorum and the leader's apply
//	to-applied-µs   then, until the follower has applied the entry: the
//	                leader's answer and the commit notice (or raft's own
//	                next append)
//	to-return-µs    then, until Broadcast returns
func BenchmarkBroadcast(b *testing.B) {
	ms := startGroupWith(b, 3, nil)
	l := leader(b, ms)
	ctx := context.Background()
	b.Run("leader", func(b *testing.B) {
		for b.Loop() {
			if _, err := ms[l].g.Broadcast(ctx, []byte("x")); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("follower", func(b *testing.B) {
		f := ms[(l+1)%3]
		var toLeader, toApplied, toReturn time.Duration
		for b.Loop() {
			start := time.Now()
			idx, err := f.g.Broadcast(ctx, []byte("x"))
			end := time.Now()
			if err != nil {
				b.Fatal(err)
			}
			atLeader, ok1 := ms[l].d.deliveredAt(idx)
			atFollower, ok2 := f.d.deliveredAt(idx)
			if !ok1 || !ok2 {
				b.Fatalf("index %d not delivered on the leader (%v) or the follower (%v)", idx, ok1, ok2)
			}
			toLeader += atLeader.Sub(start)
			toApplied += atFollower.Sub(atLeader)
			toReturn += end.Sub(atFollower)
		}
		n := float64(b.N) * float64(time.Microsecond)
		b.ReportMetric(float64(toLeader)/n, "to-leader-µs")
		b.ReportMetric(float64(toApplied)/n, "to-applied-µs")
		b.ReportMetric(float64(toReturn)/n, "to-return-µs")
	})
}

// BenchmarkBroadcastConcurrent measures many Broadcasts at once, spread
// over the three members, with group commit (the default MaxBatch) and
// without it (batch=1), and reports per op:
//
//	entries/op   Raft log entries appended per command
//	cpu-µs/op    the process's CPU time (all three members) per command
func BenchmarkBroadcastConcurrent(b *testing.B) {
	for _, batch := range []int{1, DefaultConfig().MaxBatch} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			ms := startGroupWith(b, 3, func(_ int, cfg *Config) { cfg.MaxBatch = batch })
			l := leader(b, ms)
			ctx := context.Background()
			data := make([]byte, 100)
			var next atomic.Uint64
			first, cpu := ms[l].g.raft.LastIndex(), cputime.Used(b)
			b.SetParallelism(12) // 24 callers on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				m := ms[next.Add(1)%3]
				for pb.Next() {
					if _, err := m.g.Broadcast(ctx, data); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(ms[l].g.raft.LastIndex()-first)/float64(b.N), "entries/op")
			cputime.ReportPerOp(b, cpu)
		})
	}
}

// BenchmarkBatchEntry encodes and decodes the data of a batched entry of
// 256 write-set-sized commands (200 bytes), the most an entry holds by
// default; per entry.
func BenchmarkBatchEntry(b *testing.B) {
	cmds := make([]*appendCall, DefaultConfig().MaxBatch)
	for i := range cmds {
		cmds[i] = &appendCall{data: make([]byte, 200)}
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			encodeBatch(cmds)
		}
	})
	b.Run("decode", func(b *testing.B) {
		data := encodeBatch(cmds)
		b.ReportAllocs()
		for b.Loop() {
			n := 0
			if err := decodeBatch(data, func([]byte) { n++ }); err != nil || n != len(cmds) {
				b.Fatalf("decoded %d commands (%v), want %d", n, err, len(cmds))
			}
		}
	})
}
