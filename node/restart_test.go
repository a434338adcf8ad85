package node_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/node"
	"github.com/galenadb/galena/node/nodetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
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

// requireStaysOut checks that member i, restarted after it stopped for good
// (reason: "diverged" or "removed"), serves only its status: FAILED, with
// the reason and how to reset it; not ready; refusing reads; and taking no
// part in the cluster.
func requireStaysOut(t *testing.T, c *nodetest.Cluster, i int, reason string) {
	t.Helper()
	nd := c.Nodes[i]
	st := nd.Status()
	if st.State != node.StateFailed || !containsAll(st.Error, reason, "--join", "member remove "+nd.ID()) {
		t.Fatalf("%s after a restart: state %s, error %q; want FAILED, %s, and how to reset it", nd.ID(), st.State, st.Error, reason)
	}
	if nd.Applied() != 0 || st.RaftState != "Shutdown" {
		t.Fatalf("%s takes part in the cluster after a restart: applied %d, raft %s", nd.ID(), nd.Applied(), st.RaftState)
	}
	resp, err := http.Get("http://" + c.Endpoints()[i] + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), node.StateFailed) {
		t.Fatalf("/readyz of %s after a restart: %d %q, %v", nd.ID(), resp.StatusCode, body, err)
	}
	if _, err := newClient(t, c.Endpoints()[i]).Get(ctxT(t), []byte("k")); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("read on %s after a restart: %v, want ErrUnavailable", nd.ID(), err)
	}
	rs, err := statusOf(t, c.Endpoints()[i])
	if err != nil || rs.GetState() != node.StateFailed || !strings.Contains(rs.GetError(), reason) {
		t.Fatalf("Status RPC of %s after a restart: %v, %v", nd.ID(), rs, err)
	}
}

// statusOf calls the Status RPC of the member at addr.
func statusOf(t *testing.T, addr string) (*galenapb.StatusResponse, error) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return galenapb.NewKVClient(conn).Status(ctxT(t), &galenapb.StatusRequest{})
}

// A member removed from the cluster stays out after a restart on its data
// directory.
func TestRemovedMemberStaysOut(t *testing.T) {
	c := cluster(t, 3)
	putN(t, newClient(t, c.Endpoints()...), "a", 5)
	if _, err := clusterAdmin(t, c.Endpoints()[0]).MemberRemove(ctxT(t), &galenapb.MemberRemoveRequest{Id: "n3"}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.Nodes[2].Fatal():
		if !errors.Is(err, node.ErrRemoved) {
			t.Fatalf("n3 stopped with %v, want ErrRemoved", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("n3 did not notice its removal")
	}
	c.Stop(2)
	c.Start(2)
	requireStaysOut(t, c, 2, "removed")
	putN(t, newClient(t, c.Endpoints()[0], c.Endpoints()[1]), "b", 5)
}
