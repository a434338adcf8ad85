package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
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
	if _, err := newProbe(t, c.Endpoints()[i]).Get(ctxT(t), []byte("k")); !errors.Is(err, client.ErrUnavailable) {
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

// A member removed and replaced under the same id and address (removed,
// wiped, started again with --join), again and again while clients write.
// Every replacement receives the same snapshot, taken before the first
// removal, and then replays its previous selves' removals and additions;
// links to it are slow, so it holds a configuration without itself for
// several monitor rounds. It must judge its membership by the cluster's
// latest configuration, not stop itself.
func TestReplaceMemberUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	const (
		cycles    = 2
		threshold = 2500 // entries between snapshots: one, before the first removal
		between   = 600  // entries between a removal and the replacement's addition: more than two batches
		during    = 200  // entries written while the replacement catches up
	)
	c := nodetest.MakeClusterWith(t, 3, func(i int, cfg *node.Config) {
		cfg.Group.SnapshotThreshold, cfg.Group.TrailingLogs, cfg.Group.SnapshotInterval = threshold, 64, 50*time.Millisecond
		if i != 2 {
			cfg.PeerDial = slowTo(cfg.InitialCluster[2].Addr, 150*time.Millisecond)
		}
	})
	c.Leader()
	cl := newClient(t, c.Endpoints()[0], c.Endpoints()[1])
	putConcurrently(t, cl, "a", threshold+200)
	for cycle := range cycles {
		if _, err := clusterAdmin(t, c.Endpoints()[0]).MemberRemove(ctxT(t), &galenapb.MemberRemoveRequest{Id: "n3"}); err != nil {
			t.Fatalf("cycle %d: remove n3: %v", cycle, err)
		}
		select {
		case err := <-c.Nodes[2].Fatal():
			if !errors.Is(err, node.ErrRemoved) {
				t.Fatalf("cycle %d: removed n3 stopped with %v", cycle, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("cycle %d: n3 did not notice its removal", cycle)
		}
		putConcurrently(t, cl, fmt.Sprintf("b%d-", cycle), between)
		c.Replace(2, 0)
		adm := clusterAdmin(t, c.Endpoints()[0])
		stop := writeInBackground(t, cl, during)
		want := c.Nodes[0].Applied()
		c.WaitFor(60*time.Second, fmt.Sprintf("cycle %d: the replacement to catch up and be promoted", cycle), func() bool {
			select {
			case err := <-c.Nodes[2].Fatal():
				t.Fatalf("cycle %d: the replacement stopped: %v", cycle, err)
			default:
			}
			return c.Nodes[2].Applied() >= want && votes(adm, "n3")
		})
		stop()
	}
	c.EnsureSame()
}

// votes reports whether the member adm calls lists id as a voter.
func votes(adm galenapb.ClusterClient, id string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ml, err := adm.MemberList(ctx, &galenapb.MemberListRequest{})
	if err != nil {
		return false
	}
	for _, m := range ml.GetMembers() {
		if m.GetId() == id {
			return m.GetVoter()
		}
	}
	return false
}

// slowTo dials TCP, and delays every write on connections to addr by d.
func slowTo(addr string, d time.Duration) func(string, time.Duration) (net.Conn, error) {
	return func(a string, timeout time.Duration) (net.Conn, error) {
		conn, err := net.DialTimeout("tcp", a, timeout)
		if err != nil || a != addr {
			return conn, err
		}
		return slowConn{Conn: conn, d: d}, nil
	}
}

type slowConn struct {
	net.Conn
	d time.Duration
}

func (c slowConn) Write(p []byte) (int, error) {
	time.Sleep(c.d) // the link's latency
	return c.Conn.Write(p)
}

// putConcurrently puts n keys prefix0000... through cl from 16 goroutines;
// a put whose outcome is unknown (a change of leader) is not an error here.
func putConcurrently(t *testing.T, cl *client.Client, prefix string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				err := cl.Put(ctx, []byte(fmt.Sprintf("%s%05d", prefix, i)), []byte("v"))
				if err != nil && !errors.Is(err, client.ErrIndeterminate) {
					errs <- fmt.Errorf("put %s%05d: %w", prefix, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// writeInBackground puts up to n keys through cl until the returned
// function is called; it fails the test if a put fails for another reason
// than the member it went to leaving (the test removes members).
func writeInBackground(t *testing.T, cl *client.Client, n int) (stop func()) {
	t.Helper()
	done := make(chan struct{})
	errc := make(chan error, 1)
	ctx := ctxT(t)
	go func() {
		defer close(errc)
		for i := range n {
			select {
			case <-done:
				return
			default:
			}
			err := cl.Put(ctx, []byte(fmt.Sprintf("w%06d", i)), []byte("v"))
			if err != nil && !errors.Is(err, client.ErrIndeterminate) && !errors.Is(err, client.ErrUnavailable) {
				errc <- fmt.Errorf("put w%06d: %w", i, err)
				return
			}
		}
	}()
	return func() {
		close(done)
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}
