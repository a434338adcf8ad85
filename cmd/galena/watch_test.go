package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/node/nodetest"
)

// lockedBuffer is a bytes.Buffer the command writes while the test reads;
// wrote is signalled after each write.
type lockedBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{}
}

func newLockedBuffer() *lockedBuffer { return &lockedBuffer{wrote: make(chan struct{}, 1)} }

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case l.wrote <- struct{}{}:
	default:
	}
	return l.b.Write(p)
}

// waitLines waits until n lines were written, for at most d.
func (l *lockedBuffer) waitLines(t *testing.T, n int, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for strings.Count(l.String(), "\n") < n {
		select {
		case <-l.wrote:
		case <-deadline:
			t.Fatalf("%d lines written within %v, want %d:\n%s", strings.Count(l.String(), "\n"), d, n, l.String())
		}
	}
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// `galena watch` prints one JSON line per transaction of the range, from
// the history (--from) and then live, and exits 0 when interrupted.
func TestWatchCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := nodetest.MakeCluster(t, 1)
	c.Leader()
	eps := strings.Join(c.Endpoints(), ",")
	cl, err := client.New(client.Config{Endpoints: c.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	tx, err := cl.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string][]byte{"user/1": []byte("ada"), "user/2": {0xff, 0x00}, "other": []byte("x")} {
		if err := tx.Put([]byte(k), v); err != nil {
			t.Fatal(err)
		}
	}
	first, err := tx.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}

	wctx, stop := context.WithCancel(ctx)
	out, errs := newLockedBuffer(), newLockedBuffer()
	code := make(chan int, 1)
	go func() {
		code <- run(wctx, []string{"--endpoints", eps, "watch", "--prefix", "user/", "--from", "1"}, out, errs)
	}()
	if err := cl.Delete(ctx, []byte("user/1")); err != nil {
		t.Fatal(err)
	}
	if err := cl.Put(ctx, []byte("user/3"), []byte("")); err != nil {
		t.Fatal(err)
	}
	out.waitLines(t, 3, 30*time.Second)
	stop()
	if got := <-code; got != 0 {
		t.Fatalf("watch exited %d after an interrupt; stderr %q", got, errs.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("watch printed %d lines, want 3:\n%s\nstderr: %s", len(lines), out.String(), errs.String())
	}
	var l watchLine
	if err := json.Unmarshal([]byte(lines[0]), &l); err != nil || l.Seqno != first.Seqno {
		t.Fatalf("first line %s: seqno %d, %v; want the first commit's %d", lines[0], l.Seqno, err, first.Seqno)
	}
	wantFirst := `"changes":[{"key":"user/1","value":"ada"},{"key":"user/2","value_base64":"/wA="}]}`
	if !strings.HasSuffix(lines[0], wantFirst) {
		t.Errorf("first line %s, want it to end with %s", lines[0], wantFirst)
	}
	if !strings.HasSuffix(lines[1], `"changes":[{"key":"user/1","deleted":true}]}`) ||
		!strings.HasSuffix(lines[2], `"changes":[{"key":"user/3","value":""}]}`) {
		t.Errorf("lines after the first:\n%s\n%s", lines[1], lines[2])
	}
	if !strings.Contains(errs.String(), "watching after seqno 1") {
		t.Errorf("stderr %q does not say where the watch starts", errs.String())
	}
}

func TestWatchCommandRejectsBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"watch", "--prefix", "a", "--start", "b"}, "--prefix cannot be combined with --start or --end"},
		{[]string{"watch", "--start", "b", "--end", "a"}, `--start "b" is not before --end "a"`},
		{[]string{"watch", "--from", "-1"}, `invalid argument "-1"`},
		{[]string{"watch", "extra"}, "unknown command"},
	}
	for _, tc := range tests {
		code, out, errs := runCLI(t, tc.args...)
		if code != 2 || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("galena %v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, errs, tc.want)
		}
	}
}
