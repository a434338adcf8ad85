package integration

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/harness"
)

// `galena check` passes on a healthy cluster. A member started with
// --fault-diverge-at applies write-sets from that seqno on wrongly: check
// then names it, and once the members compare checkpoints it stops loudly
// (FAILED, or exit non-zero) while the others keep working.
func TestOpsConsistencyCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts real galena processes")
	}
	const divergeAt, interval, bad = 300, 64, 2
	c := harness.NewCluster(t, harness.Options{Binary: galenaBin, Members: 3,
		ExtraArgs:  []string{"--checkpoint-interval", strconv.Itoa(interval)},
		MemberArgs: [][]string{nil, nil, {"--fault-diverge-at", strconv.Itoa(divergeAt)}}})
	c.Member(bad).Process().ExpectExit() // it must stop once it finds itself diverged
	ctx := testCtx(t, 2*time.Minute)
	cl := newClient(t, c, c.Endpoint(0), c.Endpoint(1))

	putUntil(t, ctx, cl, "healthy", divergeAt-interval/2)
	converge(t, c)
	wantCheckOK(t, c)
	if r := c.CLI("check"); r.Err != nil || r.Code != 0 || !strings.HasPrefix(r.Stdout, "consistent: 3 members agree") {
		t.Errorf("%v\nwant exit 0 and \"consistent: 3 members agree ...\"", r)
	}

	seq := putUntil(t, ctx, cl, "diverging", divergeAt+8)
	if next := uint64(divergeAt/interval+1) * interval; seq >= next {
		t.Fatalf("wrote up to seqno %d, past the checkpoint at %d: the check below would race the member's own", seq, next)
	}
	converge(t, c)
	rep, r := runCheck(t, c.Endpoints())
	want := map[string]string{c.ID(0): "agrees", c.ID(1): "agrees", c.ID(bad): "diverged"}
	if r.Code != 1 || rep.Verdict != "diverged" || fmt.Sprint(rep.outcomes()) != fmt.Sprint(want) {
		t.Errorf("%v\nwant exit 1, verdict diverged and outcomes %v", r, want)
	}
	r = c.CLI("check")
	if r.Code != 1 || !strings.HasPrefix(r.Stdout, c.ID(bad)+" diverged at seqno") || !strings.Contains(r.Stderr, c.ID(bad)+" diverged") {
		t.Errorf("%v\nwant exit 1 and a report naming %s as diverged", r, c.ID(bad))
	}
	t.Logf("galena check: %s", strings.TrimSpace(r.Stdout))

	putUntil(t, ctx, cl, "after", divergeAt+3*interval)
	waitStopped(t, c, bad)
	if err := c.Member(bad).Kill(); err != nil { // a FAILED member still runs
		t.Fatal(err)
	}
	if err := c.WaitReady(); err != nil {
		t.Fatal(err)
	}
	rows := make(map[string][]byte)
	writeRows(t, ctx, cl, rows, "survivors", 20, 1)
	ensureSame(t, c, rows)
}

// waitStopped waits until member i, diverged, has stopped loudly: its
// process exited non-zero, or it reports FAILED with an error that says it
// diverged; either way it logged an error about divergence.
func waitStopped(t *testing.T, c *harness.Cluster, i int) {
	t.Helper()
	err := harness.WaitFor(30*time.Second, func() error {
		if !c.Running(i) {
			return nil
		}
		st, err := c.Member(i).Status()
		if err != nil {
			return err
		}
		if st.GetState() != "FAILED" {
			return fmt.Errorf("%s is %s", c.ID(i), st.GetState())
		}
		if !strings.Contains(strings.ToLower(st.GetError()), "diverge") {
			return harness.Permanent(fmt.Errorf("%s is FAILED with error %q, which does not say it diverged", c.ID(i), st.GetError()))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the diverged member did not stop: %v\n%s", err, c.Member(i).LogTail())
	}
	if !c.Running(i) {
		code, err := c.Member(i).Process().Wait(time.Second)
		if err != nil || code == 0 {
			t.Errorf("the diverged %s exited %d (%v), want non-zero", c.ID(i), code, err)
		}
	}
	line, err := c.Member(i).Process().WaitLog(time.Second, "diverge")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, "ERROR") && !strings.Contains(line, `"level":"error"`) && !strings.Contains(line, "FATAL") {
		t.Errorf("the diverged %s's first line on divergence is not an error: %q", c.ID(i), line)
	}
	t.Logf("%s stopped: %s", c.ID(i), line)
}

// putUntil commits single-key write-sets prefix/0, prefix/1, ... through
// cl until one is ordered at seqno target or later, and returns the last
// seqno.
func putUntil(t *testing.T, ctx context.Context, cl *client.Client, prefix string, target uint64) uint64 {
	t.Helper()
	var seq uint64
	for n := 0; seq < target; n++ {
		tx, err := cl.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Put(fmt.Appendf(nil, "%s/%04d", prefix, n), []byte("v")); err != nil {
			t.Fatal(err)
		}
		info, err := tx.Commit(ctx)
		if err != nil {
			t.Fatalf("put %s/%04d: %v", prefix, n, err)
		}
		seq = info.Seqno
	}
	return seq
}

// refuseTimeout bounds a `galena start` that must be refused.
const refuseTimeout = 30 * time.Second

// Bad operator input is refused with a clear message, touches no data
// directory and leaves the cluster as it was.
func TestOpsBadInput(t *testing.T) {
	a := startCluster(t, 3)
	b := harness.NewCluster(t, harness.Options{Binary: galenaBin, Members: 1, IDPrefix: "b", ExtraArgs: []string{"--cluster-token", "other"}})
	ctx := testCtx(t, 2*time.Minute)
	want := make(map[string][]byte)
	writeRows(t, ctx, newClient(t, a), want, "a", 10, 1)
	if err := newClient(t, b).Put(ctx, []byte("b"), []byte("b")); err != nil {
		t.Fatal(err)
	}
	aID, bID := clusterID(t, a), clusterID(t, b)
	if aID == "" || aID == bID {
		t.Fatalf("cluster ids %q and %q, want two different ones", aID, bID)
	}
	membersA := listMembers(t, a)
	scratch := t.TempDir()
	fresh := func(name string) string { return filepath.Join(scratch, name) }
	free := func() string {
		addr, err := harness.ClosedAddr()
		if err != nil {
			t.Fatal(err)
		}
		return addr
	}

	t.Run("remove-last-voter", func(t *testing.T) {
		r := b.CLI("member", "remove", b.ID(0))
		wantRefusal(t, r, -1, b.ID(0), "last voter")
		if err := newClient(t, b).Put(ctx, []byte("b"), []byte("still")); err != nil {
			t.Errorf("%s after the refused removal: %v", b.ID(0), err)
		}
	})
	t.Run("join-with-id-in-use", func(t *testing.T) {
		dir := fresh("dup")
		r := harness.RunStart(galenaBin, refuseTimeout, "--id", a.ID(1), "--addr", free(), "--data", dir, "--join", a.Endpoint(0))
		wantRefusal(t, r, -1, "id "+a.ID(1), "already in use")
		wantAbsent(t, dir)
	})
	if err := b.Member(0).Stop(); err != nil {
		t.Fatal(err)
	}
	foreign := b.Member(0).DataDir()
	t.Run("join-with-foreign-data", func(t *testing.T) {
		before := dirState(t, foreign)
		r := harness.RunStart(galenaBin, refuseTimeout, "--id", b.ID(0), "--addr", b.Endpoint(0), "--data", foreign, "--join", a.Endpoint(0))
		wantRefusal(t, r, -1, "belongs to cluster "+bID, aID)
		wantUnchanged(t, foreign, before)
	})
	t.Run("start-with-foreign-data", func(t *testing.T) {
		before := dirState(t, foreign)
		r := harness.RunStart(galenaBin, refuseTimeout, "--id", b.ID(0), "--addr", b.Endpoint(0), "--data", foreign,
			"--initial-cluster", b.ID(0)+"="+b.Endpoint(0)) // the default cluster token: another cluster id
		wantRefusal(t, r, -1, "belongs to cluster "+bID, "--initial-cluster")
		wantUnchanged(t, foreign, before)
	})
	t.Run("initial-cluster-without-self", func(t *testing.T) {
		dir := fresh("notself")
		var initial []string // a's bootstrap members
		for i := range a.Size() {
			initial = append(initial, a.ID(i)+"="+a.Endpoint(i))
		}
		r := harness.RunStart(galenaBin, refuseTimeout, "--id", "x1", "--addr", free(), "--data", dir, "--initial-cluster", strings.Join(initial, ","))
		wantRefusal(t, r, -1, "does not list", "x1")
		wantAbsent(t, dir)
	})
	t.Run("join-and-initial-cluster", func(t *testing.T) {
		dir, addr := fresh("both"), free()
		r := harness.RunStart(galenaBin, refuseTimeout, "--id", "x2", "--addr", addr, "--data", dir,
			"--initial-cluster", "x2="+addr, "--join", a.Endpoint(0))
		wantRefusal(t, r, 2, "--join", "--initial-cluster", "exclude")
		wantAbsent(t, dir)
	})
	t.Run("neither-on-empty-data", func(t *testing.T) {
		dir, empty := fresh("neither"), fresh("empty")
		if err := os.Mkdir(empty, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{dir, empty} {
			r := harness.RunStart(galenaBin, refuseTimeout, "--id", "x3", "--addr", free(), "--data", d)
			wantRefusal(t, r, -1, "no member state", "--join", "--initial-cluster")
		}
		wantAbsent(t, dir)
		if ents, err := os.ReadDir(empty); err != nil || len(ents) != 0 {
			t.Errorf("empty data directory now holds %d entries (%v)", len(ents), err)
		}
	})

	if got := listMembers(t, a); fmt.Sprint(got) != fmt.Sprint(membersA) {
		t.Errorf("members after the refusals: %+v, want %+v", got, membersA)
	}
	if err := a.WaitReady(); err != nil {
		t.Fatal(err)
	}
	writeRows(t, ctx, newClient(t, a), want, "after", 10, 1)
	ensureSame(t, a, want)
}

// clusterID is the cluster id c's first running member reports.
func clusterID(t *testing.T, c *harness.Cluster) string {
	t.Helper()
	st, err := c.Member(c.RunningMembers()[0]).Status()
	if err != nil {
		t.Fatal(err)
	}
	return st.GetClusterId()
}

// wantRefusal checks that a command was refused: it exited by itself with
// code (any non-zero code when code is -1), and its stderr holds every one
// of substrs, case-insensitively.
func wantRefusal(t *testing.T, r harness.CLIResult, code int, substrs ...string) {
	t.Helper()
	switch {
	case r.Err != nil:
		t.Fatalf("%v\nwant a refusal", r)
	case code < 0 && r.Code == 0, code >= 0 && r.Code != code:
		t.Fatalf("%v\nwant a refusal with exit code %d (-1: any but 0)", r, code)
	}
	for _, s := range substrs {
		if !strings.Contains(strings.ToLower(r.Stderr), strings.ToLower(s)) {
			t.Errorf("%v\nwant a message containing %q", r, s)
		}
	}
	t.Logf("refused after %v: %s", r.Elapsed.Round(time.Millisecond), strings.TrimSpace(lastLine(r.Stderr)))
}

// lastLine is the last line of s that starts "galena:", the message of a
// refused command, which follows its log; else the last line.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for _, l := range slices.Backward(lines) {
		if strings.HasPrefix(l, "galena:") {
			return l
		}
	}
	return lines[len(lines)-1]
}

func wantAbsent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused member created %s (%v)", path, err)
	}
}

// dirState describes every file under dir: path, size and content hash.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := make(map[string]string)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files[rel] = fmt.Sprintf("%d bytes %x", len(b), sha256.Sum256(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// wantUnchanged checks that no file under dir changed since before.
func wantUnchanged(t *testing.T, dir string, before map[string]string) {
	t.Helper()
	after := dirState(t, dir)
	for f, s := range before {
		if after[f] != s {
			t.Errorf("%s changed: %s -> %q", filepath.Join(dir, f), s, after[f])
		}
	}
	for f := range after {
		if _, ok := before[f]; !ok {
			t.Errorf("%s created", filepath.Join(dir, f))
		}
	}
}
