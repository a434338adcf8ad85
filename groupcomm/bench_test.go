package groupcomm

import (
	"context"
	"testing"
	"time"
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
				b.Fatalf("seqno %d not delivered on the leader (%v) or the follower (%v)", idx, ok1, ok2)
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
