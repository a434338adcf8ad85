package main

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/galenadb/galena/api"
	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/node/nodetest"
)

// hungAddr returns the address of a listener that accepts connections and
// never answers, as a member stopped with SIGSTOP does: the kernel completes
// the handshakes, but no HTTP/2 preface ever comes.
func hungAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = lis.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return lis.Addr().String()
}

// A member that accepts connections but never answers, listed first and a
// member of the cluster, leaves every command working well within a
// generous --timeout: the client commands go to the other members, and
// status and check report it unreachable once --dial-timeout has passed.
func TestHungMemberCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := nodetest.MakeCluster(t, 3)
	c.Leader()
	hung := hungAddr(t) // closed before the cluster stops
	cli := cliOf(t, append([]string{hung}, c.Endpoints()...)...)
	mustRun := func(want string, args ...string) string {
		t.Helper()
		code, out, errs := cli(append([]string{"--timeout", "20s"}, args...)...)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("galena %v: exit %d, stdout %q, stderr %q; want 0 and %q", args, code, out, errs, want)
		}
		return out
	}
	mustRun("added n4", "member", "add", "n4", hung)
	mustRun("OK\n", "put", "k", "v")
	mustRun("v\n", "get", "k")
	mustRun(hung, "member", "list")

	const unreachable = "not connected within 2s (--dial-timeout)"
	code, out, errs := cli("--timeout", "20s", "status", "--json")
	if code != 1 || !strings.Contains(errs, "not every member is SYNCED: n4 UNREACHABLE") {
		t.Fatalf("status with n4 hung: exit %d, stderr %q; want 1, naming n4", code, errs)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m statusRow
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("status line %q: %v", line, err)
		}
		if (m.ID == "n4") != (m.State == stateUnreachable) || (m.ID == "n4" && m.Error != unreachable) {
			t.Errorf("status of %s: %s %q; want only n4 %s: %s", m.ID, m.State, m.Error, stateUnreachable, unreachable)
		}
	}
	c.EnsureSame()
	mustRun("n4: not checked: unreachable: "+unreachable+"\nconsistent: 3 members agree", "check")
}

// notPrimaryErr is a member's refusal for want of a leader.
func notPrimaryErr() error {
	st, err := status.New(codes.Unavailable, "n1 is not primary: no leader").
		WithDetails(&errdetails.ErrorInfo{Domain: api.ErrorDomain, Reason: api.ReasonNotPrimary})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func (m *fakeMember) Commit(context.Context, *galenapb.CommitRequest) (*galenapb.CommitResponse, error) {
	m.mu.Lock()
	fn := m.commit
	m.mu.Unlock()
	return fn()
}

// During an election every member refuses as not primary; put waits for
// the next leader instead of failing.
func TestPutWaitsForLeader(t *testing.T) {
	ms := fakeMembers(t, 2)
	var calls atomic.Int32
	commit := func() (*galenapb.CommitResponse, error) {
		if calls.Add(1) <= 5 {
			return nil, notPrimaryErr()
		}
		return &galenapb.CommitResponse{Outcome: galenapb.Outcome_OUTCOME_COMMITTED, Seqno: 7}, nil
	}
	for _, m := range ms {
		m.set(func(m *fakeMember) { m.commit = commit })
	}
	code, out, errs := cliOf(t, ms[0].addr, ms[1].addr)("--timeout", "20s", "put", "k", "v")
	if code != 0 || out != "OK\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and OK", code, out, errs)
	}
	if n := calls.Load(); n != 6 {
		t.Fatalf("%d commits; want 6 (five refused)", n)
	}
}
