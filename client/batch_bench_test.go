package client

import (
	"fmt"
	"testing"

	"github.com/galenadb/galena/internal/cputime"
)

// BenchmarkCall measures a Get against an in-process fake member (client
// and member in one process), on the Batch stream and as unary calls, with
// callers that each have their own client (one call in flight per
// connection) or share one. cpu-µs/op is the process's CPU per call.
func BenchmarkCall(b *testing.B) {
	for _, shared := range []bool{false, true} {
		for _, unary := range []bool{false, true} {
			b.Run(fmt.Sprintf("shared=%v/unary=%v", shared, unary), func(b *testing.B) {
				n := newFakeCluster(b, 1)[0]
				n.noBatch = unary
				mk := func() *Client {
					c, err := New(Config{Endpoints: []string{n.addr}})
					if err != nil {
						b.Fatal(err)
					}
					return c
				}
				one := mk()
				defer one.Close()
				ctx := b.Context()
				if err := one.Put(ctx, []byte("k"), []byte("v")); err != nil {
					b.Fatal(err)
				}
				cpu := cputime.Used(b)
				b.SetParallelism(4)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					c := one
					if !shared {
						c = mk()
						defer c.Close()
					}
					for pb.Next() {
						if _, err := c.Get(ctx, []byte("k")); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				cputime.ReportPerOp(b, cpu)
			})
		}
	}
}
