package node_test

import (
	"bufio"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/node"
	"github.com/galenadb/galena/node/nodetest"
)

// scrape reads addr's /metrics into a map from series (name and labels, as
// printed) to value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// sum adds up the series named name whose labels contain every one of
// labels (each `key="value"`); found says whether there was any.
func sum(m map[string]float64, name string, labels ...string) (total float64, found bool) {
	for series, v := range m {
		n, rest, _ := strings.Cut(series, "{")
		if n != name || !containsAll(rest, labels...) {
			continue
		}
		total, found = total+v, true
	}
	return total, found
}

// conflict commits two transactions that read and write the same key from
// the same snapshot: the second fails certification.
func conflict(t *testing.T, cl *client.Client) {
	t.Helper()
	ctx := ctxT(t)
	a, _ := cl.Begin(ctx)
	b, _ := cl.Begin(ctx)
	for _, tx := range []*client.Txn{a, b} {
		if _, err := tx.Get(ctx, []byte("contended")); err != nil && !errors.Is(err, client.ErrNotFound) {
			t.Fatal(err)
		}
		tx.Put([]byte("contended"), []byte("x"))
	}
	if _, err := a.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("second commit: %v, want ErrConflict", err)
	}
}

// A member's /metrics carries its own series, the gRPC server's and Raft's,
// and they move with commits.
func TestMetricsMoveWithCommits(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	c := nodetest.MakeClusterWith(t, 1, func(_ int, cfg *node.Config) { cfg.RaftMetrics = true })
	c.Leader()
	ep := c.Endpoints()[0]
	cl := newClient(t, ep)
	putN(t, cl, "warm", 1)
	before := scrape(t, ep)
	putN(t, cl, "m", 5)
	conflict(t, cl)
	after := scrape(t, ep)

	for _, name := range []string{"galena_local_state", "galena_local_recv_queue", "galena_apply_lag", "galena_inflight_commits", "galena_inflight_commit_bytes",
		"galena_commits_overloaded_total", "galena_certification_duration_seconds_count", "galena_last_contact_seconds",
		"galena_min_readable_seqno", "galena_flow_control_paused_seconds_total", "galena_flow_control_active",
		"galena_flow_control_lagging_members"} {
		if _, ok := sum(after, name); !ok {
			t.Errorf("no series %s", name)
		}
	}
	// At rest nothing waits to be applied; raft's own entries (the
	// leader's first) do not count.
	for _, name := range []string{"galena_apply_lag", "galena_local_recv_queue"} {
		if v, _ := sum(after, name); v != 0 {
			t.Errorf("%s = %v at rest, want 0", name, v)
		}
	}
	grew := []struct {
		name   string
		labels []string
		by     float64 // at least
	}{
		{"galena_commit_duration_seconds_count", []string{`outcome="committed"`}, 6},
		{"galena_commit_duration_seconds_count", []string{`outcome="conflict"`}, 1},
		{"galena_certification_duration_seconds_count", nil, 1},
		{"galena_local_commits_total", nil, 6},
		{"galena_local_cert_failures_total", nil, 1},
		{"galena_group_commit_entries_total", nil, 1},
		{"galena_group_commit_commands_total", nil, 7},
		{"grpc_server_handled_total", []string{`grpc_method="Commit"`, `grpc_code="OK"`}, 7},
		{"grpc_server_handling_seconds_count", []string{`grpc_method="Commit"`}, 7},
		{"galena_raft_apply", nil, 7},
	}
	for _, g := range grew {
		was, _ := sum(before, g.name, g.labels...)
		now, ok := sum(after, g.name, g.labels...)
		if !ok || now-was < g.by {
			t.Errorf("%s%v went from %v to %v (found %v), want a rise of at least %v", g.name, g.labels, was, now, ok, g.by)
		}
	}
	var raft []string
	for series := range after {
		if strings.HasPrefix(series, "galena_raft_") {
			raft = append(raft, series)
		}
		for _, p := range []string{"galena_raft_net_", "galena_raft_rpc_appendEntries", "galena_raft_replication_appendEntries", "galena_raft_fsm_enqueue"} {
			if strings.HasPrefix(series, p) {
				t.Errorf("series %s is reported, though per-message raft timers are blocked", series)
			}
		}
	}
	t.Logf("%d raft series, e.g. %v", len(raft), raft[:min(len(raft), 8)])
}

// /healthz answers while the process runs; /readyz only while the member
// is SYNCED, so a load balancer stops sending it clients once it is cut off.
func TestHealthAndReadiness(t *testing.T) {
	c := cluster(t, 3)
	get := func(ep, path string) int {
		resp, err := http.Get("http://" + ep + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	ep := c.Endpoints()[0]
	waitState(c, 0, node.StateSynced)
	if code := get(ep, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d", code)
	}
	if code := get(ep, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz of a synced member = %d", code)
	}
	c.Stop(1)
	c.Stop(2)
	c.WaitFor(20*time.Second, "the member alone to be NON_PRIMARY", func() bool {
		return c.Nodes[0].Status().State == node.StateNonPrimary
	})
	if code := get(ep, "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz of a NON_PRIMARY member = %d, want 503", code)
	}
	if m := scrape(t, ep); m["galena_local_state"] != 5 || m["galena_leader"] != 0 {
		t.Fatalf("galena_local_state %v, galena_leader %v of a NON_PRIMARY member; want 5 and 0", m["galena_local_state"], m["galena_leader"])
	}
	if code := get(ep, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz of a NON_PRIMARY member = %d", code)
	}
}
