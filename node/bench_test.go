package node_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/node/nodetest"
)

// BenchmarkCommit is a blind single-key put through an in-process 3-member
// cluster, from 48 concurrent clients spread over the members: every layer
// of a commit (gRPC, forwarding, Raft, certification, storage) but the
// process boundary.
func BenchmarkCommit(b *testing.B) {
	c := nodetest.MakeCluster(b, 3)
	c.Leader()
	cl, err := client.New(client.Config{Endpoints: c.Endpoints()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close() })
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
}
