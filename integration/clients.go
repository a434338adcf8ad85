package integration

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/galenadb/galena/client"
)

const (
	// clientDialTimeout is the DialTimeout of the harness's clients: a dead
	// member costs a failover about this long.
	clientDialTimeout = 2 * time.Second
	// contentsTimeout bounds Contents.
	contentsTimeout = 30 * time.Second
)

// Client returns a client of the given endpoints (every member's when none
// are given), closed when the test ends; closing it earlier is fine.
func (c *Cluster) Client(endpoints ...string) (*client.Client, error) {
	if len(endpoints) == 0 {
		endpoints = c.Endpoints()
	}
	cl, err := client.New(client.Config{Endpoints: endpoints, DialTimeout: clientDialTimeout})
	if err != nil {
		return nil, fmt.Errorf("integration: client of %v: %w", endpoints, err)
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
	cl, err := client.New(client.Config{Endpoints: []string{m.addr}, DialTimeout: clientDialTimeout, NoLeaderWait: true})
	if err != nil {
		t.Fatalf("integration: probe of %s: %v", m.id, err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// Contents reads every key and value of member i, in key order, through a
// client bound to that member alone: a new session, so it reads whatever the
// member has applied.
func (c *Cluster) Contents(i int) ([]client.KV, error) { return c.ContentsRange(i, nil, nil) }

// ContentsRange is Contents for the keys in [start, end); a nil end means
// no upper bound.
func (c *Cluster) ContentsRange(i int, start, end []byte) ([]client.KV, error) {
	cl, err := client.New(client.Config{Endpoints: []string{c.Endpoint(i)}, DialTimeout: clientDialTimeout})
	if err != nil {
		return nil, fmt.Errorf("integration: contents of %s: %w", c.ID(i), err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), contentsTimeout)
	defer cancel()
	var kvs []client.KV
	err = cl.View(ctx, func(tx *client.Txn) (err error) {
		kvs, err = tx.Scan(ctx, start, end, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("integration: contents of %s: %w", c.ID(i), err)
	}
	return kvs, nil
}

// DiffContents describes how b differs from a (both in key order, as
// Contents returns them), or returns "" when they are equal. It lists at
// most a few differences.
func DiffContents(a, b []client.KV) string {
	const most = 10
	var diffs []string
	add := func(format string, args ...any) {
		if len(diffs) < most {
			diffs = append(diffs, fmt.Sprintf(format, args...))
		}
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		cmp := 0
		switch {
		case i == len(a):
			cmp = 1
		case j == len(b):
			cmp = -1
		default:
			cmp = bytes.Compare(a[i].Key, b[j].Key)
		}
		switch {
		case cmp < 0:
			add("- %q=%q", a[i].Key, a[i].Value)
			i++
		case cmp > 0:
			add("+ %q=%q", b[j].Key, b[j].Value)
			j++
		default:
			if !bytes.Equal(a[i].Value, b[j].Value) {
				add("~ %q: %q -> %q", a[i].Key, a[i].Value, b[j].Value)
			}
			i++
			j++
		}
	}
	if len(diffs) == 0 {
		return ""
	}
	return fmt.Sprintf("%d keys vs %d keys: %s", len(a), len(b), strings.Join(diffs, "; "))
}

// MissingWrites checks kvs (as Contents returns them) against want, a model
// of acknowledged writes: every key of want must hold its value, and a key
// mapped to nil must be absent. It returns what does not match, or "".
func MissingWrites(kvs []client.KV, want map[string][]byte) string {
	have := make(map[string][]byte, len(kvs))
	for _, kv := range kvs {
		have[string(kv.Key)] = kv.Value
	}
	var bad []string
	for k, v := range want {
		got, ok := have[k]
		switch {
		case v == nil && ok:
			bad = append(bad, fmt.Sprintf("%q deleted but holds %q", k, got))
		case v != nil && !ok:
			bad = append(bad, fmt.Sprintf("%q missing, want %q", k, v))
		case v != nil && !bytes.Equal(got, v):
			bad = append(bad, fmt.Sprintf("%q holds %q, want %q", k, got, v))
		}
	}
	if len(bad) == 0 {
		return ""
	}
	slices.Sort(bad)
	return fmt.Sprintf("%d acknowledged writes not reflected: %s", len(bad), strings.Join(bad[:min(len(bad), 10)], "; "))
}
