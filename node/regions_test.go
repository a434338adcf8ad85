package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/galenadb/galena/node"
	"github.com/galenadb/galena/node/nodetest"
)

// Leadership follows the writes: with every commit made through one
// follower, the leader learns so from the members' answers over their
// Cluster service and hands leadership to that follower.
func TestLeaderFollowsWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	c := nodetest.MakeClusterWith(t, 3, func(_ int, cfg *node.Config) {
		cfg.Group.LeaderFollowsWrites, cfg.Group.LeaderFollowWindow = true, 3*time.Second
	})
	ld := c.Leader()
	w := (ld + 1) % 3
	cl := newClient(t, c.Endpoints()[w])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n := 0
	c.WaitFor(time.Minute, "the member taking every commit to lead", func() bool {
		for range 20 {
			if err := cl.Put(ctx, fmt.Appendf(nil, "k%d", n%100), []byte("v")); err != nil {
				t.Fatalf("put %d: %v", n, err)
			}
			n++
		}
		return c.Nodes[w].Status().RaftState == "Leader"
	})
	t.Logf("%s leads after %d commits through it", c.Nodes[w].ID(), n)
}
