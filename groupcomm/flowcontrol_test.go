package groupcomm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowFollower starts 3 members with flow control at limit entries and
// maxPause, answering each other's questions in-process; once the leader's
// flow control counts a follower, it stops that follower's deliveries and
// loads the leader. It returns the leader's Group, the slow follower, the
// function that lets the follower deliver again, and the one that stops
// the load and returns what it ordered.
func slowFollower(t *testing.T, limit uint64, maxPause time.Duration) (lg *Group, slow *member, open func(), stop func() int) {
	t.Helper()
	ms, l := flowCluster(t, limit, maxPause)
	lg, slow = ms[l].g, ms[(l+1)%3]
	waitFor(t, "flow control to count the members", func() bool { return lg.fc.counts(slow.cfg.ID) })
	open = gate(t, slow)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := load(ctx, t, ms[l])
	return lg, slow, open, func() int { cancel(); return done() }
}

// flowCluster starts 3 members with flow control at limit entries and
// maxPause, answering each other's questions in-process; it returns them
// and the leader's index.
func flowCluster(t *testing.T, limit uint64, maxPause time.Duration) ([]*member, int) {
	ms, l, _ := flowClusterPeers(t, limit, maxPause)
	return ms, l
}

// flowClusterPeers is flowCluster, and the members' answers.
func flowClusterPeers(t *testing.T, limit uint64, maxPause time.Duration) ([]*member, int, *groupPeers) {
	t.Helper()
	peers := &groupPeers{groups: map[string]*Group{}}
	ms := startGroupWith(t, 3, func(_ int, cfg *Config) {
		cfg.Peers, cfg.FlowControlLimit, cfg.FlowControlMaxPause = peers, limit, maxPause
		cfg.MaxBatch = 1 // an entry per command: the backlog grows with every commit
	})
	for _, m := range ms {
		peers.add(m.g)
	}
	return ms, leader(t, ms), peers
}

// load broadcasts through m from 8 goroutines until ctx ends, and returns
// how many commands were ordered once they have all stopped.
func load(ctx context.Context, t *testing.T, m *member) func() int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	n := 0
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				_, err := m.g.Broadcast(ctx, fmt.Appendf(nil, "w%d-%d", w, i))
				switch {
				case err == nil:
					mu.Lock()
					n++
					mu.Unlock()
				case ctx.Err() == nil && !errors.Is(err, ErrNotPrimary):
					t.Errorf("broadcast: %v", err)
					return
				}
			}
		})
	}
	return func() int { wg.Wait(); return n }
}

// gate stops member m's deliveries until the returned function is called
// (at the latest when the test ends).
func gate(t *testing.T, m *member) func() {
	ch := make(chan struct{})
	m.d.gate.Store(&ch)
	var once sync.Once
	open := func() { once.Do(func() { close(ch) }) }
	t.Cleanup(open)
	return open
}

// A follower that stops applying makes the leader hold commits back once
// its backlog passes the limit, and for no longer than it takes the
// follower to catch up; the leader's status says who holds them and for
// how long.
func TestFlowControlHoldsCommitsForASlowMember(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a group")
	}
	const limit = 20
	lg, slow, open, stop := slowFollower(t, limit, time.Hour)
	waitFor(t, "commits held back", func() bool { return lg.Status().FlowControl.PausedBy == slow.cfg.ID })
	held := lg.raft.LastIndex()
	// While held, nothing more enters the log: the backlog stops growing.
	waitFor(t, "a second of holding", func() bool { return lg.Status().FlowControl.Paused >= time.Second })
	st := lg.Status()
	if st.FlowControl.PausedBy != slow.cfg.ID || st.LastIndex > held+1 {
		t.Fatalf("after a second held by %q: last index %d, was %d when held (want at most one more)", st.FlowControl.PausedBy, st.LastIndex, held)
	}
	if backlog := st.LastIndex - slow.g.AppliedIndex(); backlog < limit {
		t.Fatalf("held with a backlog of %d, below the limit %d", backlog, limit)
	}
	t.Logf("held at index %d, %d entries ahead of %s", st.LastIndex, st.FlowControl.Backlog, slow.cfg.ID)
	// A commit held back until its caller gives up was never sent.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err := lg.Broadcast(ctx, []byte("withdrawn"))
	cancel()
	if !errors.Is(err, ErrHeldBack) || !strings.Contains(err.Error(), slow.cfg.ID+" is ") {
		t.Fatalf("a commit held back past its deadline: %v, want ErrHeldBack naming %s", err, slow.cfg.ID)
	}

	open()
	before := lg.raft.LastIndex()
	waitFor(t, "commits to flow again", func() bool {
		return lg.Status().FlowControl.PausedBy == "" && lg.raft.LastIndex() > before+2*limit
	})
	if n := stop(); n == 0 {
		t.Fatal("nothing was ordered")
	}
	if fc := lg.Status().FlowControl; fc.Paused < time.Second || len(fc.Lagging) > 0 {
		t.Fatalf("flow control %+v: want at least a second paused and no member lagging", fc)
	}
	waitFor(t, "the slow member to catch up", func() bool { return slow.g.AppliedIndex() >= lg.AppliedIndex() })
	if strings.Contains(slow.d.entries(), ":withdrawn ") {
		t.Fatal("the withdrawn commit was ordered")
	}
}

// A member that holds commits back longer than the maximum pause is
// reported as lagging and no longer holds them; once it catches up it
// counts again.
func TestFlowControlReleasesAMemberTooFarBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a group")
	}
	const limit = 20
	lg, slow, open, stop := slowFollower(t, limit, time.Second)
	waitFor(t, "the slow member reported lagging", func() bool {
		return slices.Contains(lg.Status().FlowControl.Lagging, slow.cfg.ID)
	})
	released := lg.raft.LastIndex()
	waitFor(t, "commits to go on without it", func() bool { return lg.raft.LastIndex() > released+4*limit })
	if fc := lg.Status().FlowControl; fc.PausedBy != "" {
		t.Fatalf("still held by %s after it was released", fc.PausedBy)
	}
	stop()
	open()
	waitFor(t, "the slow member to catch up and count again", func() bool {
		return len(lg.Status().FlowControl.Lagging) == 0 && lg.fc.counts(slow.cfg.ID)
	})
}

// The control: without flow control, a follower that stops applying falls
// behind without bound while the others commit.
func TestFlowControlOffLetsTheBacklogGrow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a group")
	}
	ms, l := flowCluster(t, 0, time.Hour)
	lg, slow := ms[l].g, ms[(l+1)%3]
	gate(t, slow)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := load(ctx, t, ms[l])
	waitFor(t, "a backlog of 50 times the other tests' limit", func() bool {
		return lg.raft.LastIndex() > slow.g.AppliedIndex()+50*20
	})
	if fc := lg.Status().FlowControl; fc.Paused != 0 || fc.PausedBy != "" {
		t.Fatalf("flow control is off, yet %+v", fc)
	}
	cancel()
	done()
}

// A member that stops answering no longer counts: when it answers again
// far behind (back from a partition, restarted from an old snapshot), it
// does not hold commits back while it catches up, and counts again once
// it has.
func TestFlowControlIgnoresAMemberComingBackBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a group")
	}
	const limit = 200 // far above what a member that applies keeps behind
	ms, l, peers := flowClusterPeers(t, limit, time.Hour)
	lg, slow := ms[l].g, ms[(l+1)%3]
	waitFor(t, "flow control to count the members", func() bool { return lg.fc.counts(slow.cfg.ID) })
	peers.mu.Lock()
	delete(peers.groups, slow.g.cfg.Addr) // it answers no more
	peers.mu.Unlock()
	waitFor(t, "the silent member to stop counting", func() bool { return !lg.fc.counts(slow.cfg.ID) })
	open := gate(t, slow)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := load(ctx, t, ms[l])
	waitFor(t, "a backlog of 10 times the limit", func() bool { return lg.raft.LastIndex() > slow.g.AppliedIndex()+10*limit })
	peers.add(slow.g) // back, far behind
	before := lg.raft.LastIndex()
	waitFor(t, "commits to go on while it is behind", func() bool {
		// The member that applies may hold commits back for a moment: it
		// is in one process with the others, on a busy machine.
		if by := lg.Status().FlowControl.PausedBy; by == slow.cfg.ID || lg.fc.counts(slow.cfg.ID) {
			t.Fatalf("%s, back %d entries behind, counts: %+v", by, lg.raft.LastIndex()-slow.g.AppliedIndex(), lg.Status().FlowControl)
		}
		return lg.raft.LastIndex() > before+10*limit
	})
	cancel()
	done()
	open()
	waitFor(t, "it to catch up and count again", func() bool { return lg.fc.counts(slow.cfg.ID) })
}
