package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/galenadb/galena/node"
	"github.com/galenadb/galena/node/nodetest"
)

// cliOf runs command lines against endpoints.
func cliOf(t *testing.T, eps ...string) func(args ...string) (int, string, string) {
	return func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, append([]string{"--endpoints", strings.Join(eps, ",")}, args...)...)
	}
}

// membersOf runs `member list --json`.
func membersOf(t *testing.T, cli func(...string) (int, string, string)) membershipJSON {
	t.Helper()
	code, out, errs := cli("member", "list", "--json")
	var m membershipJSON
	if err := json.Unmarshal([]byte(out), &m); code != 0 || err != nil {
		t.Fatalf("member list --json: exit %d, stdout %q, stderr %q: %v", code, out, errs, err)
	}
	return m
}

func findMember(m membershipJSON, id string) (memberJSON, bool) {
	for _, mb := range m.Members {
		if mb.ID == id {
			return mb, true
		}
	}
	return memberJSON{}, false
}

func TestMemberCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := nodetest.MakeCluster(t, 3)
	leader := c.Leader()
	eps := c.Endpoints()
	follower := eps[(leader+1)%3]
	cli := cliOf(t, follower) // changes go through a follower, which passes them on
	c.WaitFor(10*time.Second, "the follower to know the leader", func() bool { return membersOf(t, cli).LeaderID != "" })

	code, out, errs := cli("member", "list")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 4 || !regexp.MustCompile(`^ID +ADDRESS +VOTER +LEADER +REACHABLE$`).MatchString(lines[0]) {
		t.Fatalf("member list: exit %d, stdout:\n%s\nstderr: %s", code, out, errs)
	}
	for i, line := range lines[1:] {
		want := fmt.Sprintf(`^n%d +%s +yes +`, i+1, regexp.QuoteMeta(eps[i]))
		if i == leader {
			want += `\* +yes$`
		} else {
			want += `yes$`
		}
		if !regexp.MustCompile(want).MatchString(line) {
			t.Errorf("row %q does not match %s", line, want)
		}
	}

	m := membersOf(t, cli)
	if m.ClusterID == "" || m.LeaderID != fmt.Sprintf("n%d", leader+1) || len(m.Members) != 3 {
		t.Fatalf("member list --json: %+v", m)
	}

	spare := closedAddr(t)
	mustRunCLI(t, cli, "added n4 at "+spare+" as a non-voter\n", "member", "add", "n4", spare)
	// The follower learns of the change moments after the leader made it.
	c.WaitFor(10*time.Second, "n4 listed", func() bool { _, ok := findMember(membersOf(t, cli), "n4"); return ok })
	if mb, _ := findMember(membersOf(t, cli), "n4"); mb.Voter || mb.Address != spare {
		t.Fatalf("after member add: n4 %+v; want a non-voter at %s", mb, spare)
	}
	refusals := []struct {
		args []string
		want string
	}{
		{[]string{"member", "add", "n4", closedAddr(t)}, "galena: id n4 is in use by the member at " + spare + " (galena member list shows the members)\n"},
		{[]string{"member", "add", "n5", eps[0]}, "galena: address " + eps[0] + " belongs to member n1 (galena member list shows the members)\n"},
		{[]string{"member", "remove", "n9"}, "galena: no member n9 in the cluster (galena member list shows the members)\n"},
	}
	for _, r := range refusals {
		if code, out, errs := cli(r.args...); code != 1 || out != "" || errs != r.want {
			t.Errorf("galena %v: exit %d, stdout %q, stderr %q; want 1 and %q", r.args, code, out, errs, r.want)
		}
	}
	mustRunCLI(t, cli, "removed n4\n", "member", "remove", "n4")
	c.WaitFor(10*time.Second, "n4 gone", func() bool { return len(membersOf(t, cli).Members) == 3 })
}

func mustRunCLI(t *testing.T, cli func(...string) (int, string, string), want string, args ...string) {
	t.Helper()
	code, out, errs := cli(args...)
	if code != 0 || out != want {
		t.Fatalf("galena %v: exit %d, stdout %q, stderr %q; want 0 and %q", args, code, out, errs, want)
	}
}

// A member started with `galena start --join` catches up, is promoted, and
// exits with status 0 once `galena member remove` removes it.
func TestStartJoinThenRemoved(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := nodetest.MakeCluster(t, 3)
	c.Leader()
	cli := cliOf(t, c.Endpoints()...)
	mustRunCLI(t, cli, "OK\n", "put", "before", "join")

	addr := closedAddr(t)
	j := startJoiner(t, addr, c.Endpoints()[0])
	c.WaitFor(30*time.Second, "n4 to be promoted to voter", func() bool {
		mb, ok := findMember(membersOf(t, cli), "n4")
		return ok && mb.Voter
	})
	mustRunCLI(t, cliOf(t, addr), "join\n", "get", "before")
	mustRunCLI(t, cli, "removed n4\n", "member", "remove", "n4")
	if code := j.wait(t, 30*time.Second); code != 0 || !strings.Contains(j.logs.String(), "removed from the cluster") {
		t.Fatalf("start exited %d; want 0 and the log line; logs:\n%s", code, j.logs.String())
	}
	c.WaitFor(10*time.Second, "n4 gone", func() bool { _, ok := findMember(membersOf(t, cli), "n4"); return !ok })
}

// check agrees on a healthy cluster and skips an arbitrator and a stopped
// member; status shows the roles and the new columns.
func TestCheckAndStatusWithArbitrator(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := nodetest.MakeClusterWith(t, 4, func(i int, cfg *node.Config) {
		cfg.Arbitrator = i == 3
	})
	c.Leader()
	cli := cliOf(t, c.Endpoints()...)
	for i := range 5 {
		mustRunCLI(t, cli, "OK\n", "put", fmt.Sprintf("k%d", i), "v")
	}
	consistent := regexp.MustCompile(`consistent: 3 members agree at seqno [1-9][0-9]* \(digest [0-9a-f]{8}…\)\n$`)
	code, out, errs := cli("check")
	if code != 0 || !strings.HasPrefix(out, "n4: not checked: arbitrator, stores no data\n") || !consistent.MatchString(out) {
		t.Fatalf("check: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	code, out, errs = cli("status")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	header := regexp.MustCompile(`^ID +ADDRESS +ROLE +RAFT +TERM +INDEX +APPLIED +LAG +CONTACT +COMMITS +CERT_FAIL +DATA +STATE$`)
	if code != 0 || len(lines) != 5 || !header.MatchString(lines[0]) {
		t.Fatalf("status: exit %d, stdout:\n%s\nstderr: %s", code, out, errs)
	}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		role := map[bool]string{true: "arbitrator", false: "data"}[f[0] == "n4"]
		contactOK := f[8] != "-" || f[3] == "Leader"
		if f[3] != "Leader" {
			_, err := time.ParseDuration(f[8])
			contactOK = err == nil
		}
		if f[2] != role || !contactOK {
			t.Errorf("status row %q: want role %s and a CONTACT duration on followers, - on the leader", line, role)
		}
	}

	c.Stop(2)
	code, out, errs = cli("check")
	if code != 0 || !strings.Contains(out, "n3: not checked: unreachable: ") ||
		!regexp.MustCompile(`consistent: 2 members agree at seqno `).MatchString(out) {
		t.Fatalf("check with n3 stopped: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = cli("status", "--json")
	if code != 1 || !strings.Contains(errs, "not every member is SYNCED: n3 UNREACHABLE") {
		t.Fatalf("status --json with n3 down: exit %d, stderr %s; want 1, naming n3", code, errs)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r statusRow
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		switch {
		case r.ID == "n3":
			if r.State != stateUnreachable || r.Error == "" || r.LastContactMs != -1 {
				t.Errorf("stopped member: %+v", r)
			}
		case r.Role != map[bool]string{true: "arbitrator", false: "data"}[r.ID == "n4"] || r.ClusterID == "":
			t.Errorf("member %s: role %q, cluster id %q", r.ID, r.Role, r.ClusterID)
		case r.RaftState == "Follower" && r.LastContactMs < 0:
			t.Errorf("follower %s: last_contact_ms %d", r.ID, r.LastContactMs)
		}
	}
}

// A member cut off from the majority refuses reads unless --stale.
func TestStaleReads(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := nodetest.MakeCluster(t, 3)
	c.Leader()
	mustRunCLI(t, cliOf(t, c.Endpoints()...), "OK\n", "put", "k", "v")
	c.EnsureSame()
	c.Stop(1)
	c.Stop(2)
	c.WaitFor(20*time.Second, "n1 to be NON_PRIMARY", func() bool { return c.Nodes[0].Status().State == node.StateNonPrimary })

	cli := cliOf(t, c.Endpoints()[0])
	if code, out, errs := cli("get", "k"); code != 1 || out != "" || !strings.Contains(errs, "--stale") {
		t.Errorf("get on a NON_PRIMARY member: exit %d, stdout %q, stderr %q; want 1 and a hint at --stale", code, out, errs)
	}
	mustRunCLI(t, cli, "v\n", "get", "--stale", "k")
	mustRunCLI(t, cli, "k\tv\n", "scan", "--stale")
}

// joiner is `galena start --join`, run in-process as member n4.
type joiner struct {
	exited chan int
	logs   bytes.Buffer // written by the member's logger until it exits
}

// startJoiner runs `galena start` for n4 at addr, joining through via, with
// extra flags, until it exits or the test ends.
func startJoiner(t *testing.T, addr, via string, extra ...string) *joiner {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	j := &joiner{exited: make(chan int, 1)}
	args := append([]string{"start", "--id", "n4", "--addr", addr, "--data", filepath.Join(t.TempDir(), "n4"),
		"--join", via, "--heartbeat-timeout", "300ms", "--election-timeout", "300ms", "--not-primary-timeout", "2s"}, extra...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var out bytes.Buffer
		j.exited <- run(ctx, args, &out, &j.logs)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return j
}

// wait returns the member's exit status once it has exited by itself; it
// fails the test after timeout. j.logs may be read afterwards.
func (j *joiner) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case code := <-j.exited:
		return code
	case <-time.After(timeout):
		t.Fatalf("n4 did not exit within %v", timeout)
		return 0
	}
}
