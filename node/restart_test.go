package node_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/galenadb/galena/node"
	"github.com/galenadb/galena/node/nodetest"
)

// Two data members and an arbitrator. While n2 is down, n1 and the
// arbitrator commit enough for both to snapshot and compact their logs; then
// n1 goes down and n2 comes back. The arbitrator, which kept its log back to
// n2's applied seqno, brings n2 up to date from it (it has no data to send
// as a snapshot, and n2 would refuse one); n2 then restarts cleanly, and once
// n1 is back the three agree.
func TestArbitratorBringsBackADataMember(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	c := nodetest.MakeClusterWith(t, 3, func(i int, cfg *node.Config) {
		smallLog(i, cfg)
		cfg.Arbitrator = i == 2
	})
	c.WaitFor(20*time.Second, "a data member to lead", func() bool { return c.Leader() != 2 })
	putN(t, newClient(t, c.Endpoints()[0], c.Endpoints()[1]), "a", 20)
	c.EnsureSame()
	// Let the arbitrator learn what n2 holds before n2 goes down.
	waitRetained(c)
	c.Stop(1)
	putN(t, newClient(t, c.Endpoints()[0]), "b", 300)
	want := c.Nodes[0].Applied()
	c.Stop(0)

	c.Start(1)
	c.WaitFor(30*time.Second, fmt.Sprintf("n2 to catch up to seqno %d from the arbitrator", want), func() bool {
		return c.Nodes[1].Applied() >= want
	})
	cl := newClient(t, c.Endpoints()[1])
	c.WaitFor(20*time.Second, "n2 to serve what it caught up with", func() bool {
		v, err := cl.Get(ctxT(t), []byte("b0299"))
		return err == nil && string(v) == "b"
	})
	putN(t, newClient(t, c.Endpoints()[1]), "c", 10)

	c.Stop(1)
	c.Start(1) // fails if n2 stored a snapshot it cannot restore
	c.Start(0)
	putN(t, newClient(t, c.Endpoints()[0], c.Endpoints()[1]), "d", 10)
	c.EnsureSame()
	waitState(c, 1, node.StateSynced)
}

// waitRetained waits until the arbitrator (member 2) has heard every data
// member's applied seqno; until then it keeps its whole log, and the test
// would not show that it keeps what the data members need.
func waitRetained(c *nodetest.Cluster) {
	c.WaitFor(20*time.Second, "the arbitrator to learn the data members' applied seqnos", func() bool {
		return c.Nodes[2].Status().RetainedFrom > 0
	})
}
