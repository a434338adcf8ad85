package groupcomm

import (
	"context"
	"testing"
	"time"
)

// The leader hands leadership to another voter and no longer leads once
// TransferLeadership returns; on a follower it does nothing.
func TestTransferLeadership(t *testing.T) {
	ms := startGroup(t, 3)
	ld := leader(t, ms)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ms[ld].g.Broadcast(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	follower := (ld + 1) % len(ms)
	if err := ms[follower].g.TransferLeadership(ctx); err != nil {
		t.Fatalf("TransferLeadership on a follower: %v", err)
	}
	if st := ms[ld].g.Status().RaftState; st != "Leader" {
		t.Fatalf("a follower's TransferLeadership moved leadership: old leader is %s", st)
	}
	if err := ms[ld].g.TransferLeadership(ctx); err != nil {
		t.Fatalf("TransferLeadership: %v", err)
	}
	if st := ms[ld].g.Status().RaftState; st == "Leader" {
		t.Fatal("still the leader after TransferLeadership returned")
	}
	if next := leader(t, ms); next == ld {
		t.Fatalf("leadership came back to %s", ms[ld].g.cfg.ID)
	}
	if _, err := ms[ld].g.Broadcast(ctx, []byte("after")); err != nil {
		t.Fatalf("Broadcast through the new leader: %v", err)
	}
	ms[ld].close()
	if err := ms[ld].g.TransferLeadership(ctx); err != ErrClosed {
		t.Fatalf("TransferLeadership after Close = %v, want ErrClosed", err)
	}
}
