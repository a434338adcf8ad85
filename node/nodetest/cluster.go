// Package nodetest runs in-process Galena clusters for tests, built with the
// same node.New the galena binary uses.
package nodetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/galenadb/galena/node"
	"go.uber.org/zap/zaptest"
)

// Cluster is a set of in-process members on loopback.
type Cluster struct {
	t     testing.TB
	cfgs  []node.Config
	Nodes []*node.Node // nil while a member is stopped
}

// Config returns the member configuration tests use. Its Raft timeouts are
// the defaults (1s): with shorter ones a busy machine deposes leaders in the
// middle of tests that rely on one staying.
func Config(t testing.TB, id, dir string) node.Config {
	cfg := node.DefaultConfig()
	cfg.ID, cfg.DataDir = id, dir
	cfg.Logger = zaptest.NewLogger(t).Named(id)
	cfg.Group.NotPrimaryTimeout = 2 * time.Second
	cfg.ShutdownTimeout = time.Second
	cfg.Txn.CausalWait = time.Second
	return cfg
}

// MakeCluster starts n members that bootstrap one cluster, and stops them at
// the end of the test.
func MakeCluster(t testing.TB, n int) *Cluster {
	return MakeClusterWith(t, n, nil)
}

// MakeClusterWith is MakeCluster with edit applied to each member's
// configuration (member i is n<i+1>) before it starts.
func MakeClusterWith(t testing.TB, n int, edit func(i int, cfg *node.Config)) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Nodes: make([]*node.Node, n)}
	lns := make([]net.Listener, n)
	var peers []node.Peer
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		peers = append(peers, node.Peer{ID: fmt.Sprintf("n%d", i+1), Addr: ln.Addr().String()})
	}
	for i := range lns {
		cfg := Config(t, peers[i].ID, filepath.Join(t.TempDir(), peers[i].ID))
		cfg.Addr, cfg.InitialCluster, cfg.Listener = peers[i].Addr, peers, lns[i]
		if edit != nil {
			edit(i, &cfg)
		}
		c.cfgs = append(c.cfgs, cfg)
	}
	t.Cleanup(c.Close)
	for i := range c.cfgs {
		c.Start(i)
	}
	return c
}

// Start (re)starts member i on its address and data directory.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	cfg := c.cfgs[i]
	if cfg.Listener == nil {
		ln, err := listenRetry(cfg.Addr)
		if err != nil {
			c.t.Fatal(err)
		}
		cfg.Listener = ln
	}
	c.cfgs[i].Listener = nil // a listener serves one start
	nd, err := node.New(cfg)
	if err != nil {
		c.t.Fatalf("start %s: %v", cfg.ID, err)
	}
	c.Nodes[i] = nd
}

// Join starts a new member with an empty data directory that joins the
// cluster through member via. edit, if set, adjusts its configuration. It
// returns the new member's index.
func (c *Cluster) Join(via int, edit func(cfg *node.Config)) int {
	c.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	id := fmt.Sprintf("n%d", len(c.cfgs)+1)
	cfg := Config(c.t, id, filepath.Join(c.t.TempDir(), id))
	cfg.Addr, cfg.Listener, cfg.Join = ln.Addr().String(), ln, c.cfgs[via].Addr
	if edit != nil {
		edit(&cfg)
	}
	c.cfgs = append(c.cfgs, cfg)
	c.Nodes = append(c.Nodes, nil)
	c.Start(len(c.cfgs) - 1)
	return len(c.cfgs) - 1
}

// Replace stops member i, deletes its data directory and starts it again
// with the same id and address, empty, joining through member via: what an
// operator does to replace a member once it was removed from the cluster.
func (c *Cluster) Replace(i, via int) {
	c.t.Helper()
	c.Stop(i)
	if err := os.RemoveAll(c.cfgs[i].DataDir); err != nil {
		c.t.Fatal(err)
	}
	c.cfgs[i].InitialCluster, c.cfgs[i].Join = nil, c.cfgs[via].Addr
	c.Start(i)
}

// listenRetry re-binds a just-released port.
func listenRetry(addr string) (net.Listener, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			return ln, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops member i, keeping its data directory.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	if c.Nodes[i] != nil {
		if err := c.Nodes[i].Close(); err != nil {
			c.t.Logf("stop %s: %v", c.cfgs[i].ID, err)
		}
		c.Nodes[i] = nil
	}
}

// Close stops every member.
func (c *Cluster) Close() {
	for i := range c.Nodes {
		c.Stop(i)
	}
}

// Endpoints are the client addresses of all members, running or not.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.cfgs))
	for i, cfg := range c.cfgs {
		eps[i] = cfg.Addr
	}
	return eps
}

// Leader waits for a running member to lead and returns its index.
func (c *Cluster) Leader() int {
	c.t.Helper()
	i := -1
	c.WaitFor(10*time.Second, "a leader", func() bool {
		for j, nd := range c.Nodes {
			if nd != nil && nd.Status().RaftState == "Leader" {
				i = j
				return true
			}
		}
		return false
	})
	return i
}

// WaitApplied waits until every running member has applied seqno.
func (c *Cluster) WaitApplied(seqno uint64) {
	c.t.Helper()
	for _, nd := range c.Nodes {
		if nd == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := waitApplied(ctx, nd, seqno)
		cancel()
		if err != nil {
			c.t.Fatalf("%s did not apply seqno %d (at %d): %v", nd.ID(), seqno, nd.Applied(), err)
		}
	}
}

func waitApplied(ctx context.Context, nd *node.Node, seqno uint64) error {
	for nd.Applied() < seqno {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// EnsureSame waits until every running member has applied the same seqno and
// checks that their digests of everything applied are equal.
func (c *Cluster) EnsureSame() {
	c.t.Helper()
	var top uint64
	for _, nd := range c.Nodes {
		if nd != nil {
			top = max(top, nd.Status().CommitIndex, nd.Applied())
		}
	}
	c.WaitApplied(top)
	var ref *node.Node
	var refSeq uint64
	var refDigest [32]byte
	c.WaitFor(20*time.Second, "equal applied seqnos", func() bool {
		ref = nil
		for _, nd := range c.Nodes {
			if nd == nil || nd.Status().Arbitrator {
				continue // an arbitrator has no digest
			}
			s, d := nd.Digest()
			if ref == nil {
				ref, refSeq, refDigest = nd, s, d
				continue
			}
			if s != refSeq {
				return false
			}
			if d != refDigest {
				c.t.Fatalf("%s and %s diverged at seqno %d: digests %x and %x", ref.ID(), nd.ID(), s, refDigest, d)
			}
		}
		return true
	})
}

// WaitFor polls cond until it holds or the timeout passes.
func (c *Cluster) WaitFor(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
