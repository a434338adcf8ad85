package integration

import (
	"strings"
	"testing"
	"time"
)

// The harness's own lifecycle operations on a follower: a graceful stop
// exits 0, Start refuses a running member, Restart of a running member keeps
// its data, and a stopped member is not counted by the waits.
func TestHarnessStopStartRestart(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t, 30*time.Second)
	ld, err := c.Leader()
	if err != nil {
		t.Fatal(err)
	}
	f := (ld + 1) % c.Size()
	if err := c.Member(f).Start(); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("Start of a running member: %v, want \"already running\"", err)
	}
	if err := c.Member(f).Stop(); err != nil {
		t.Fatal(err)
	}
	if c.Running(f) {
		t.Fatalf("%s still running after Stop", c.ID(f))
	}
	if err := c.Member(f).Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := c.WaitReady(); err != nil { // the two others are still a majority
		t.Fatal(err)
	}
	if err := newClient(t, c, c.EndpointsExcept(f)...).Put(ctx, []byte("k"), []byte("while down")); err != nil {
		t.Fatal(err)
	}
	if err := c.Member(f).Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.Member(f).Restart(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(); err != nil {
		t.Fatal(err)
	}
	ensureSame(t, c, map[string][]byte{"k": []byte("while down")})
	if err := c.Crashed(); err != nil {
		t.Fatal(err)
	}
}
