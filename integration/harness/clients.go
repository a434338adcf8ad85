package harness

import (
	"fmt"
	"time"

	"github.com/galenadb/galena/client"
)

// clientDialTimeout is the DialTimeout of the harness's clients: a dead
// member costs a failover about this long.
const clientDialTimeout = 2 * time.Second

// Client returns a client of the given endpoints (every member's when none
// are given), closed when the test ends; closing it earlier is fine.
func (c *Cluster) Client(endpoints ...string) (*client.Client, error) {
	if len(endpoints) == 0 {
		endpoints = c.Endpoints()
	}
	cl, err := client.New(client.Config{Endpoints: endpoints, DialTimeout: clientDialTimeout, TLS: c.opts.ClientTLS})
	if err != nil {
		return nil, fmt.Errorf("harness: client of %v: %w", endpoints, err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl, nil
}

// Probe returns a client of the member alone that reports the member's own
// answers: when the member refuses for want of a leader, the call fails at
// once instead of waiting for one (client.Config.NoLeaderWait). It is
// closed when the test ends; on error it fails the test.
func (m *Member) Probe() *client.Client {
	t := m.c.t
	t.Helper()
	cl, err := client.New(client.Config{Endpoints: []string{m.addr}, DialTimeout: clientDialTimeout, NoLeaderWait: true, TLS: m.c.opts.ClientTLS})
	if err != nil {
		t.Fatalf("harness: probe of %s: %v", m.id, err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// CLI runs the galena binary with --endpoints listing every member and then
// args, e.g. c.CLI("put", "k", "v").
func (c *Cluster) CLI(args ...string) CLIResult {
	return RunCLI(c.opts.Binary, c.Endpoints(), args...)
}

// CLI runs the galena binary with --endpoints naming the member alone.
func (m *Member) CLI(args ...string) CLIResult {
	return RunCLI(m.c.opts.Binary, []string{m.addr}, args...)
}
