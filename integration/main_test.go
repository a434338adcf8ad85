package integration

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/harness"
	"github.com/galenadb/galena/integration/workload"
)

// galenaBin is the binary TestMain built; empty under -short.
var galenaBin string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		return m.Run() // every test skips: build nothing
	}
	bin, remove, err := harness.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer remove()
	galenaBin = bin
	return m.Run()
}

// startCluster starts a ready cluster of n members, or skips under -short.
func startCluster(t *testing.T, n int) *harness.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("integration: starts real galena processes")
	}
	return harness.NewCluster(t, harness.Options{Binary: galenaBin, Members: n})
}

// testCtx is a context that ends with the test or after d.
func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// newClient is c.Client, failing the test on error.
func newClient(t testing.TB, c *harness.Cluster, endpoints ...string) *client.Client {
	t.Helper()
	cl, err := c.Client(endpoints...)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// converge waits until every running member has applied the same seqno.
func converge(t testing.TB, c *harness.Cluster) uint64 {
	t.Helper()
	seqno, err := c.WaitConverged(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return seqno
}

// ensureSame waits for convergence, then checks that every running member
// that stores data (no arbitrator) holds exactly what the first of them
// holds, and that this reflects every write in want. It returns those
// contents.
func ensureSame(t *testing.T, c *harness.Cluster, want map[string][]byte) []client.KV {
	t.Helper()
	return ensureSamePrefix(t, c, "", want)
}

// ensureSamePrefix is ensureSame for the keys under prefix, and the writes
// of want under it.
func ensureSamePrefix(t *testing.T, c *harness.Cluster, prefix string, want map[string][]byte) []client.KV {
	t.Helper()
	seqno := converge(t, c)
	var ref []client.KV
	refIdx := -1
	for i := range c.Size() {
		if !c.Running(i) || c.Member(i).Arbitrator() {
			continue
		}
		kvs, err := workload.Contents(t.Context(), c.Endpoint(i), prefix, c.Options().ClientTLS)
		if err != nil {
			t.Fatal(err)
		}
		if refIdx < 0 {
			ref, refIdx = kvs, i
			continue
		}
		if d := workload.DiffContents(ref, kvs); d != "" {
			t.Errorf("keys under %q at seqno %d: %s and %s differ: %s", prefix, seqno, c.ID(refIdx), c.ID(i), d)
		}
	}
	sub := make(map[string][]byte)
	for k, v := range want {
		if strings.HasPrefix(k, prefix) {
			sub[k] = v
		}
	}
	if m := workload.MissingWrites(ref, sub); m != "" {
		t.Errorf("%s at seqno %d: %s", c.ID(refIdx), seqno, m)
	}
	return ref
}
