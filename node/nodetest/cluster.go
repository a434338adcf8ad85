package nodetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/galenadb/galena/node"
	"github.com/galenadb/galena/node/local"
	"go.uber.org/zap/zaptest"
)

// Cluster is a local cluster of a test: a member that fails to start fails
// the test, and the members stop when it ends.
type Cluster struct {
	*local.Cluster
	t testing.TB
}

// Config returns the member configuration tests use. Its Raft timeouts are
// the defaults (1s): with shorter ones a busy machine deposes leaders in the
// middle of tests that rely on one staying.
func Config(t testing.TB, id, dir string) node.Config {
	cfg := node.DefaultConfig()
	cfg.ID, cfg.DataDir = id, dir
	testSettings(t, &cfg)
	return cfg
}

// testSettings sets what tests change of a member's configuration: a test
// logger named after the member, and shorter waits.
func testSettings(t testing.TB, cfg *node.Config) {
	cfg.Logger = zaptest.NewLogger(t).Named(cfg.ID)
	cfg.Group.NotPrimaryTimeout = 2 * time.Second
	cfg.ShutdownTimeout = time.Second
	cfg.Txn.CausalWait = time.Second
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
	lc, err := local.Start(local.Config{Members: n, Dir: t.TempDir(), Member: func(i int, cfg *node.Config) {
		testSettings(t, cfg)
		if edit != nil {
			edit(i, cfg)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Cluster: lc, t: t}
	t.Cleanup(c.Close)
	return c
}

// Start (re)starts member i on its address and data directory.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	if err := c.Restart(i); err != nil {
		c.t.Fatal(err)
	}
}

// Join starts a new member with an empty data directory that joins the
// cluster through member via. edit, if set, adjusts its configuration. It
// returns the new member's index.
func (c *Cluster) Join(via int, edit func(cfg *node.Config)) int {
	c.t.Helper()
	i, err := c.Cluster.Join(via, func(cfg *node.Config) {
		testSettings(c.t, cfg)
		if edit != nil {
			edit(cfg)
		}
	})
	if err != nil {
		c.t.Fatal(err)
	}
	return i
}

// Replace stops member i, deletes its data directory and starts it again
// with the same id and address, empty, joining through member via: what an
// operator does to replace a member once it was removed from the cluster.
func (c *Cluster) Replace(i, via int) {
	c.t.Helper()
	if err := c.Cluster.Replace(i, via); err != nil {
		c.t.Fatal(err)
	}
}

// Stop stops member i, keeping its data directory.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	if err := c.Cluster.Stop(i); err != nil {
		c.t.Log(err)
	}
}

// Close stops every member.
func (c *Cluster) Close() {
	if err := c.Cluster.Close(); err != nil {
		c.t.Log(err)
	}
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

// EnsureSame waits until every running member has applied the log through
// what any of them knows committed, and the members that keep data the
// same seqno, and checks that their digests of everything applied are
// equal (see local.Cluster.WaitSame).
func (c *Cluster) EnsureSame() {
	c.t.Helper()
	var top uint64
	for _, nd := range c.Nodes {
		if nd != nil {
			st := nd.Status()
			top = max(top, st.CommitIndex, st.AppliedIndex)
		}
	}
	c.WaitFor(20*time.Second, fmt.Sprintf("every member to apply the log through index %d", top), func() bool {
		for _, nd := range c.Nodes {
			if nd != nil && nd.Status().AppliedIndex < top {
				return false
			}
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.WaitSame(ctx); err != nil {
		c.t.Fatal(err)
	}
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
