package groupcomm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
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
	d := &memDeliverer{applied: Position{Index: 5, Seqno: 5}, log: []Entry{{Index: 5, Seqno: 5, Data: []byte("x")}}}
	data := newFSM(d, lg, func(err error) { t.Errorf("fatal: %v", err) })
	if err := data.Restore(snapshotStream(arbitratorMagic, 10, nil)); !errors.Is(err, errArbitratorSnapshot) {
		t.Fatalf("data member restoring an arbitrator's snapshot: %v", err)
	}
	if d.Applied().Index != 5 || d.entries() != "5:x " || data.position().Index != 5 {
		t.Fatalf("a refused snapshot changed the state: applied %d, %q", d.Applied(), d.entries())
	}

	arb := newFSM(&arbitratorState{}, lg, func(err error) { t.Errorf("fatal: %v", err) })
	if err := arb.Restore(snapshotStream(snapshotMagic, 10, []byte("user data"))); err != nil {
		t.Fatal(err)
	}
	if got := arb.position().Index; got != 10 {
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

// A data member that the leader, an arbitrator, can bring up to date only
// with a snapshot refuses the snapshot without storing it (so it restarts
// cleanly), says it is waiting for data while it counts how far behind it
// is, and catches up once a data member is back.
func TestDataMemberWaitsForADataMember(t *testing.T) {
	ms := startGroupWith(t, 3, func(i int, cfg *Config) {
		cfg.Arbitrator = i == 2
		cfg.SnapshotThreshold, cfg.TrailingLogs, cfg.SnapshotInterval = 16, 4, 50*time.Millisecond
	})
	// An arbitrator that does not hold what the data member needs (one
	// that was replaced, say): it compacts as a data member does.
	ms[2].g.RetainLog(math.MaxUint64)
	broadcastN(t, ms[0], "a", 5)
	waitFor(t, "m1 to apply the first entries", func() bool { return ms[1].g.Applied() >= ms[0].g.Applied() })
	ms[1].close()
	broadcastN(t, ms[0], "b", 100)
	want, wantIndex := ms[0].g.Applied(), ms[0].g.AppliedIndex()
	waitFor(t, "the arbitrator to compact its log past m1's entries", func() bool {
		first, err := ms[2].g.cache.FirstIndex()
		return err == nil && first > ms[1].g.AppliedIndex()+1
	})
	ms[0].close()

	m1 := restart(t, ms[1])
	waitFor(t, "m1 to wait for data, knowing how far behind it is", func() bool {
		st := m1.g.Status()
		return st.WaitingForData && st.ApplyLag >= wantIndex-m1.g.AppliedIndex()-1 && st.ApplyLag > 50
	})
	snaps, err := m1.g.snaps.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps {
		if s.Index > m1.g.AppliedIndex() {
			t.Fatalf("m1 stored snapshot %s at %d, ahead of its state at %d", s.ID, s.Index, m1.g.AppliedIndex())
		}
	}
	m1.close()
	m1 = restart(t, m1) // fails if a snapshot m1 cannot restore was stored
	restart(t, ms[0])
	waitFor(t, "m1 to catch up from the returning data member", func() bool {
		return m1.g.Applied() >= want && !m1.g.Status().WaitingForData
	})
	if got := m1.d.entries(); !strings.Contains(got, "b99") {
		t.Fatalf("m1 lacks entries after catching up: %q", got)
	}
}

// broadcastN orders n entries prefix0, prefix1, ... through m, sending an
// entry again when its outcome is unknown (a change of leader): the tests
// that use it do not mind an entry ordered twice.
func broadcastN(t *testing.T, m *member, prefix string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < n; {
		_, err := m.g.Broadcast(ctx, fmt.Appendf(nil, "%s%d", prefix, i))
		switch {
		case err == nil:
			i++
		case !errors.Is(err, ErrIndeterminate) && !errors.Is(err, ErrNotPrimary):
			t.Fatalf("broadcast %s%d: %v", prefix, i, err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
