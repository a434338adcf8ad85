package integration

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/galenadb/galena/client"
)

// galenaBin is the binary TestMain built; empty under -short.
var galenaBin string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		return m.Run() // every test skips: build nothing
	}
	bin, remove, err := Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer remove()
	galenaBin = bin
	return m.Run()
}

// startCluster starts a ready cluster of n members, or skips under -short.
func startCluster(t *testing.T, n int) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("integration: starts real galena processes")
	}
	return NewCluster(t, Options{Binary: galenaBin, Members: n})
}

// testCtx is a context that ends with the test or after d.
func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// newClient is c.Client, failing the test on error.
func newClient(t *testing.T, c *Cluster, endpoints ...string) *client.Client {
	t.Helper()
	cl, err := c.Client(endpoints...)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// converge waits until every running member has applied the same seqno.
func converge(t *testing.T, c *Cluster) uint64 {
	t.Helper()
	seqno, err := c.WaitConverged(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return seqno
}

// contents is c.Contents, failing the test on error.
func contents(t *testing.T, c *Cluster, i int) []client.KV {
	t.Helper()
	kvs, err := c.Contents(i)
	if err != nil {
		t.Fatal(err)
	}
	return kvs
}

// ensureSame waits for convergence, then checks that every running member
// that stores data (no arbitrator) holds exactly what the first of them
// holds, and that this reflects every write in want. It returns those
// contents.
func ensureSame(t *testing.T, c *Cluster, want map[string][]byte) []client.KV {
	t.Helper()
	seqno := converge(t, c)
	var ref []client.KV
	refIdx := -1
	for i := range c.Size() {
		if !c.Running(i) || c.Arbitrator(i) {
			continue
		}
		kvs := contents(t, c, i)
		if refIdx < 0 {
			ref, refIdx = kvs, i
			continue
		}
		if d := DiffContents(ref, kvs); d != "" {
			t.Errorf("at seqno %d, %s and %s differ: %s", seqno, c.ID(refIdx), c.ID(i), d)
		}
	}
	if m := MissingWrites(ref, want); m != "" {
		t.Errorf("%s at seqno %d: %s", c.ID(refIdx), seqno, m)
	}
	return ref
}
