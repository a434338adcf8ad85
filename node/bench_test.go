package node_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/internal/cputime"
	"github.com/galenadb/galena/node/nodetest"
)

// benchTarget is what a benchmark's client is bound to.
type benchTarget struct {
	name      string
	endpoints []string
}

// benchTargets are every member, only the leader, or only a follower
// (whose commits are forwarded to the leader).
func benchTargets(c *nodetest.Cluster) []benchTarget {
	l := c.Leader()
	eps := c.Endpoints()
	f := (l + 1) % len(eps)
	return []benchTarget{{"spread", eps}, {"leader", eps[l : l+1]}, {"follower", eps[f : f+1]}}
}

func benchClient(b *testing.B, endpoints []string) *client.Client {
	cl, err := client.New(client.Config{Endpoints: endpoints})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close() })
	return cl
}

// BenchmarkCommit is a blind single-key put through an in-process 3-member
// cluster, from 48 concurrent clients spread over the members, or all on
// the leader, or all on a follower: every layer of a commit (gRPC,
// forwarding, Raft, certification, storage) but the process boundary.
func BenchmarkCommit(b *testing.B) {
	c := nodetest.MakeCluster(b, 3)
	for _, to := range benchTargets(c) {
		b.Run(to.name, func(b *testing.B) {
			cl := benchClient(b, to.endpoints)
			val := make([]byte, 100)
			ctx := context.Background()
			b.SetParallelism(24) // 48 goroutines on 2 cores
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				rng := rand.New(rand.NewPCG(rand.Uint64(), 1))
				for pb.Next() {
					if err := cl.Put(ctx, []byte(fmt.Sprintf("user/%08d", rng.IntN(100_000))), val); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
		})
	}
}

// BenchmarkCommitLone is one client committing one blind put after
// another, bound to the leader or to a follower: a lone commit's latency,
// the follower's including the forward to the leader. It reports the
// median and the 99th percentile too (p50-µs, p99-µs).
func BenchmarkCommitLone(b *testing.B) {
	c := nodetest.MakeCluster(b, 3)
	for _, to := range benchTargets(c)[1:] {
		b.Run(to.name, func(b *testing.B) {
			cl := benchClient(b, to.endpoints)
			val := make([]byte, 100)
			ctx := context.Background()
			var took []time.Duration
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				if err := cl.Put(ctx, []byte(fmt.Sprintf("user/%08d", i%100_000)), val); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
			}
			slices.Sort(took)
			for _, q := range []struct {
				unit string
				at   float64
			}{{"p50-µs", 0.50}, {"p99-µs", 0.99}} {
				b.ReportMetric(float64(took[int(q.at*float64(len(took)-1))].Microseconds()), q.unit)
			}
		})
	}
}

// BenchmarkCommitWatched is BenchmarkCommit/spread with none or 1,000
// watches open on one member, each on its own slice of the keys, so that
// every commit reaches exactly one watch. It waits for every event before
// it stops, and reports the CPU the whole process (members, writers and
// watchers) used per commit (cpu-µs/op): the difference between the two
// is what delivering one event costs, both ends included.
func BenchmarkCommitWatched(b *testing.B) {
	const keys = 100_000
	c := nodetest.MakeCluster(b, 3)
	c.Leader()
	for _, watchers := range []int{0, 1000} {
		b.Run(fmt.Sprintf("watchers=%d", watchers), func(b *testing.B) {
			cl := benchClient(b, c.Endpoints())
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var events atomic.Int64
			all := make(chan struct{}) // closed when the events reach b.N
			var wg sync.WaitGroup
			defer wg.Wait()
			defer cancel()
			wcl := benchClient(b, c.Endpoints()[:1])
			for i := range watchers {
				lo, hi := i*keys/watchers, (i+1)*keys/watchers
				w, err := wcl.Watch(ctx, fmt.Appendf(nil, "user/%08d", lo), fmt.Appendf(nil, "user/%08d", hi), 0)
				if err != nil {
					b.Fatal(err)
				}
				wg.Go(func() {
					defer w.Close()
					for {
						if _, err := w.Next(); err != nil {
							return
						}
						if events.Add(1) == int64(b.N) {
							close(all)
						}
					}
				})
			}
			val := make([]byte, 100)
			b.SetParallelism(24)
			b.ReportAllocs()
			start := cputime.Used(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				rng := rand.New(rand.NewPCG(rand.Uint64(), 1))
				for pb.Next() {
					if err := cl.Put(ctx, fmt.Appendf(nil, "user/%08d", rng.IntN(keys)), val); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if watchers > 0 {
				select {
				case <-all:
				case <-time.After(time.Minute):
					b.Fatalf("%d commits, %d events within a minute", b.N, events.Load())
				}
			}
			b.StopTimer()
			cputime.ReportPerOp(b, start)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
		})
	}
}
