package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/node/nodetest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestCommandsAgainstCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := nodetest.MakeCluster(t, 3)
	c.Leader()
	eps := strings.Join(c.Endpoints(), ",")
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, append([]string{"--endpoints", eps}, args...)...)
	}
	mustRun := func(want string, args ...string) {
		t.Helper()
		code, out, errs := cli(args...)
		if code != 0 || out != want {
			t.Fatalf("galena %v: exit %d, stdout %q, stderr %q; want 0 and %q", args, code, out, errs, want)
		}
	}
	mustRun("OK\n", "put", "fruit/apple", "red")
	mustRun("OK\n", "put", "fruit/banana", "yellow")
	mustRun("OK\n", "put", "veg/carrot", "orange")
	mustRun("red\n", "get", "fruit/apple")
	mustRun("fruit/apple\tred\nfruit/banana\tyellow\n", "scan", "--prefix", "fruit/")
	mustRun("fruit/banana\tyellow\n", "scan", "--start", "fruit/b", "--end", "veg/")
	mustRun("fruit/apple\tred\n", "scan", "--limit", "1")
	mustRun("OK\n", "del", "fruit/apple")
	mustRun("OK\n", "del", "fruit/apple")

	code, out, errs := cli("get", "fruit/apple")
	if code != 1 || out != "" || errs != "galena: key not found: fruit/apple\n" {
		t.Errorf("get deleted key: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	c.EnsureSame()
	code, out, errs = cli("status")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 4 ||
		!strings.HasPrefix(lines[0], "ID") || strings.Count(out, "SYNCED") != 3 {
		t.Errorf("status: exit %d, stdout:\n%s\nstderr: %s", code, out, errs)
	}

	c.Stop(2)
	code, out, errs = cli("status", "--json")
	if code != 1 || !strings.Contains(errs, "not every member is SYNCED: n3 UNREACHABLE") {
		t.Fatalf("status --json with n3 stopped: exit %d, stderr %s; want 1, naming n3", code, errs)
	}
	states := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m statusRow
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		states[m.ID] = m.State
	}
	if len(states) != 3 || states["n3"] != stateUnreachable || states["n1"] == stateUnreachable {
		t.Errorf("states %v; want n3 %s and n1, n2 answering", states, stateUnreachable)
	}

	// With n2 stopped too, n1 is cut off: what it answers is the cause.
	c.Stop(1)
	n1 := c.Endpoints()[0]
	c.WaitFor(30*time.Second, "n1 to be NON_PRIMARY", func() bool {
		_, out, _ := runCLI(t, "--endpoints", n1, "status", "-w", "json")
		return strings.Contains(out, `"id":"n1"`) && strings.Contains(out, `"state":"NON_PRIMARY"`)
	})
	code, _, errs = runCLI(t, "--endpoints", n1, "--timeout", "2s", "get", "k")
	if code != 1 || !strings.HasPrefix(errs, "galena: not primary: the members that answered (of "+n1+") are cut off from the majority") {
		t.Fatalf("get through a member cut off: exit %d, stderr %q", code, errs)
	}
}

// explain says that a write without an answer may have been applied, from
// the transport's status the client keeps inside such an error (as
// client/commit.go builds it), and rewords the other errors of an
// unreachable cluster.
func TestExplain(t *testing.T) {
	eps := []string{"127.0.0.1:1", "127.0.0.1:2"}
	down := status.Error(codes.Unavailable, "connection refused")
	for _, tc := range []struct {
		err  error
		want string // "" for err unchanged
	}{
		{fmt.Errorf("%w: write-set 01: no endpoint answered (tried %s): %w", client.ErrIndeterminate, strings.Join(eps, ","), down),
			"no endpoint reachable (127.0.0.1:1,127.0.0.1:2); the write may or may not have been applied: connection refused"},
		{fmt.Errorf("%w: connection refused", client.ErrUnavailable), "no endpoint reachable (127.0.0.1:1,127.0.0.1:2): "},
		{context.DeadlineExceeded, "no answer within 5s (127.0.0.1:1,127.0.0.1:2): "},
		{client.ErrUnauthenticated, "client: unauthenticated (give a client certificate"},
		{fmt.Errorf("%w: write-set 01: %w", client.ErrIndeterminate, context.Canceled), ""},
		{client.ErrConflict, ""},
	} {
		got := explain(tc.err, eps, 5*time.Second)
		if tc.want == "" && got != tc.err {
			t.Errorf("explain(%v) = %v, want it unchanged", tc.err, got)
		}
		if tc.want != "" && !strings.HasPrefix(got.Error(), tc.want) {
			t.Errorf("explain(%v) = %q, want it to start %q", tc.err, got, tc.want)
		}
	}
}

// put reads the value from standard input, byte for byte, when it has no
// VALUE or VALUE is -; get --raw prints it back exactly.
func TestPutFromStandardInput(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := nodetest.MakeCluster(t, 1)
	c.Leader()
	ep := c.Endpoints()[0]
	cl, err := client.New(client.Config{Endpoints: c.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	value := append([]byte("line one\nline two\n\x00\xff"), bytes.Repeat([]byte("x"), 200<<10)...)
	for _, args := range [][]string{{"put", "a", "-"}, {"put", "b"}} {
		var out, errs bytes.Buffer
		code := runWith(t.Context(), append([]string{"--endpoints", ep}, args...), bytes.NewReader(value), &out, &errs)
		if code != 0 || out.String() != "OK\n" {
			t.Fatalf("galena %v: exit %d, stdout %q, stderr %q", args, code, out.String(), errs.String())
		}
		got, err := cl.Get(t.Context(), []byte(args[1]))
		if err != nil || !bytes.Equal(got, value) {
			t.Fatalf("after galena %v: %d bytes, %v; want the %d bytes of standard input", args, len(got), err, len(value))
		}
		out.Reset()
		if code := runWith(t.Context(), []string{"--endpoints", ep, "get", "--raw", args[1]}, nil, &out, &errs); code != 0 || !bytes.Equal(out.Bytes(), value) {
			t.Fatalf("galena get --raw %s: exit %d, %d bytes out; want the %d bytes put", args[1], code, out.Len(), len(value))
		}
	}
	var errs bytes.Buffer
	code := runWith(t.Context(), []string{"--endpoints", ep, "put", "c"}, bytes.NewReader(make([]byte, maxStdinValue+1)), io.Discard, &errs)
	if code != 2 || !strings.Contains(errs.String(), "over 1048576 bytes") {
		t.Fatalf("an oversized value on standard input: exit %d, stderr %q", code, errs.String())
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, errs := runCLI(t, args...)
		if code != 0 || !strings.HasPrefix(out, "galena ") || !strings.Contains(out, "go1.") || errs != "" {
			t.Errorf("galena %v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}
