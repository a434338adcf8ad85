package groupcomm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap/zaptest"
)

// An arbitrator that is made leader hands leadership to a data member, and
// the group keeps ordering entries throughout.
func TestArbitratorHandsLeadershipOver(t *testing.T) {
	ms := startGroupWith(t, 3, func(i int, cfg *Config) { cfg.Arbitrator = i == 2 })
	l := leader(t, ms)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := ms[0].g.Broadcast(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	arb := ms[2].g
	// Hand leadership to the arbitrator, as an election could.
	deadline := time.Now().Add(15 * time.Second)
	for arb.raft.State() != raft.Leader {
		if time.Now().After(deadline) {
			t.Fatal("could not make the arbitrator lead")
		}
		if l = leader(t, ms); l != 2 {
			ms[l].g.raft.LeadershipTransferToServer(raft.ServerID(arb.cfg.ID), raft.ServerAddress(arb.cfg.Addr)) // retried until it leads
		}
		time.Sleep(time.Millisecond)
	}
	// It hands leadership to a data member.
	for ms[0].g.raft.State() != raft.Leader && ms[1].g.raft.State() != raft.Leader {
		if time.Now().After(deadline) {
			t.Fatal("the arbitrator still leads")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := ms[1].g.Broadcast(ctx, []byte("after")); err != nil {
		t.Fatal(err)
	}
}

func snapshotStream(magic string, idx uint64, body []byte) io.ReadCloser {
	return io.NopCloser(bytes.NewReader(append(snapshotHeader(magic, idx), body...)))
}

// A data member refuses an arbitrator's snapshot and keeps its state; an
// arbitrator takes a data member's snapshot's index and drops its data.
func TestArbitratorSnapshots(t *testing.T) {
	lg := zaptest.NewLogger(t)
	d := &memDeliverer{applied: 5, log: []Entry{{Index: 5, Data: []byte("x")}}}
	data := newFSM(d, lg, func(err error) { t.Errorf("fatal: %v", err) })
	if err := data.Restore(snapshotStream(arbitratorMagic, 10, nil)); !errors.Is(err, errArbitratorSnapshot) {
		t.Fatalf("data member restoring an arbitrator's snapshot: %v", err)
	}
	if d.Applied() != 5 || d.entries() != "5:x " || data.applied.Load() != 5 {
		t.Fatalf("a refused snapshot changed the state: applied %d, %q", d.Applied(), d.entries())
	}

	arb := newFSM(&arbitratorState{}, lg, func(err error) { t.Errorf("fatal: %v", err) })
	if err := arb.Restore(snapshotStream(snapshotMagic, 10, []byte("user data"))); err != nil {
		t.Fatal(err)
	}
	if got := arb.applied.Load(); got != 10 {
		t.Fatalf("arbitrator applied %d after a snapshot at 10", got)
	}
	sn, err := arb.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if s := sn.(*fsmSnapshot); s.magic != arbitratorMagic || s.sn.Index() != 10 {
		t.Fatalf("arbitrator snapshot %q at %d", s.magic, s.sn.Index())
	}
}
