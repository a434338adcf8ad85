package groupcomm

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap/zaptest"
)

// fakePeers answers the policy's questions from tables.
type fakePeers struct {
	confs   map[string]fakeConf // by address: what the member there answers
	applied map[string]uint64   // by id: data members that answer
	arbs    map[string]bool     // by id: arbitrators that answer
}

type fakeConf struct {
	ms     []Member
	leader string
	err    error
}

func (f fakePeers) AskAdd(context.Context, string, Member) error { return nil }

func (f fakePeers) Configuration(_ context.Context, addr string) ([]Member, string, error) {
	c, ok := f.confs[addr]
	if !ok {
		return nil, "", errors.New("unreachable")
	}
	return c.ms, c.leader, c.err
}

func (f fakePeers) Applied(_ context.Context, m Member) (PeerState, error) {
	if f.arbs[m.ID] {
		return PeerState{Arbitrator: true}, nil
	}
	a, ok := f.applied[m.ID]
	if !ok {
		return PeerState{}, errors.New("unreachable")
	}
	return PeerState{Applied: a}, nil
}

var (
	n1, n2, n3 = Member{ID: "n1", Addr: "a1", Voter: true}, Member{ID: "n2", Addr: "a2", Voter: true}, Member{ID: "n3", Addr: "a3", Voter: true}
	withN3     = []Member{n1, n2, n3}
	withoutN3  = []Member{n1, n2}
)

// A member is judged removed by the leader's configuration alone: not by
// its own, which may be an old one it replays, nor by a follower's.
func TestPolicyJudgesRemovalByTheLeader(t *testing.T) {
	cases := []struct {
		name  string
		own   []Member // the configuration n3 holds
		confs map[string]fakeConf
		want  bool
	}{
		{"own configuration lacks it, the leader's lists it", withoutN3,
			map[string]fakeConf{"a1": {withN3, "n1", nil}}, false},
		{"the leader does not list it", withoutN3,
			map[string]fakeConf{"a1": {withoutN3, "n1", nil}}, true},
		{"cut off, and the leader does not list it", withN3,
			map[string]fakeConf{"a1": {withoutN3, "n1", nil}}, true},
		{"a follower lists it, the leader it names does not", withN3,
			map[string]fakeConf{"a1": {withN3, "n2", nil}, "a2": {withoutN3, "n2", nil}}, true},
		{"a follower does not list it, the leader it names does", withoutN3,
			map[string]fakeConf{"a1": {withoutN3, "n2", nil}, "a2": {withN3, "n2", nil}}, false},
		{"no leader answers", withoutN3,
			map[string]fakeConf{"a1": {withoutN3, "", nil}, "a2": {nil, "", errors.New("another cluster")}}, false},
		{"the first member cannot tell, the second leads", withoutN3,
			map[string]fakeConf{"a1": {nil, "", errors.New("another cluster")}, "a2": {withoutN3, "n2", nil}}, true},
		{"a member that names this one as leader cannot tell", withoutN3,
			map[string]fakeConf{"a1": {withoutN3, "n3", nil}}, false},
		{"leaders named in a circle", withoutN3,
			map[string]fakeConf{"a1": {withoutN3, "n2", nil}, "a2": {withoutN3, "n1", nil}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &policy{self: Member{ID: "n3", Addr: "a3"}, peers: fakePeers{confs: tc.confs}}
			if got := p.removed(context.Background(), tc.own); got != tc.want {
				t.Fatalf("removed = %v, want %v", got, tc.want)
			}
		})
	}
}

// The policy's moves over a member's life: it asks to join, then to be
// promoted once caught up (at once when just added), and asks the leader
// whether it was removed when its configuration drops it or it has been
// cut off for long; it asks at most once per askInterval.
func TestPolicyMoves(t *testing.T) {
	p := &policy{self: Member{ID: "n3", Addr: "a3"}, join: "a1", cutOff: 6 * time.Second}
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	outside := Status{Members: withoutN3}
	nonVoter := Status{Member: true, Members: append(withoutN3, Member{ID: "n3", Addr: "a3"}), Primary: true, CommitIndex: 10}
	behind := nonVoter
	behind.ApplyLag = SyncedLag + 1
	voter := Status{Member: true, Voter: true, Members: withN3, Primary: true, CommitIndex: 10}
	cut := voter
	cut.Primary = false
	steps := []struct {
		st   Status
		at   time.Duration
		want move
	}{
		{outside, 0, askToJoin},
		{outside, time.Second, wait}, // within askInterval
		{outside, 2 * time.Second, askToJoin},
		{behind, 2500 * time.Millisecond, wait},   // added, not caught up
		{nonVoter, 3 * time.Second, askPromotion}, // caught up: within askInterval, since it was just added
		{nonVoter, 4 * time.Second, wait},
		{voter, 10 * time.Second, wait},
		{cut, 11 * time.Second, wait},
		{cut, 17 * time.Second, wait}, // cut off for exactly cutOff
		{cut, 17*time.Second + 1, checkRemoved},
		{voter, 18 * time.Second, wait},
		{cut, 30 * time.Second, wait}, // cut off again: the clock starts again
		{outside, 40 * time.Second, checkRemoved},
		{outside, 41 * time.Second, wait},
		{outside, 43 * time.Second, checkRemoved},
	}
	for i, s := range steps {
		if got := p.next(s.st, at(s.at)); got != s.want {
			t.Fatalf("step %d (at %v): move %d, want %d", i, s.at, got, s.want)
		}
	}

	// Without Join, a member in no configuration since it started waits.
	q := &policy{self: Member{ID: "n3", Addr: "a3"}, cutOff: time.Second}
	if got := q.next(outside, t0); got != wait {
		t.Fatalf("a member that never was one, without Join: move %d, want wait", got)
	}
}

// An arbitrator keeps the log from the lowest applied index of the data
// members, remembering members that do not answer, and keeps everything
// for a data member never heard from.
func TestRetainFrom(t *testing.T) {
	ctx := context.Background()
	arb := Member{ID: "arb", Addr: "a0"}
	ms := []Member{arb, n1, n2, n3}
	applied := map[string]uint64{}
	peers := fakePeers{applied: map[string]uint64{"n1": 50, "n2": 70}, arbs: map[string]bool{"n3": true}}
	if got := retainFrom(ctx, peers, "arb", ms, applied); got != 50 {
		t.Fatalf("retain from %d, want 50 (n3 is an arbitrator)", got)
	}
	peers = fakePeers{applied: map[string]uint64{"n2": 80, "n3": 60}}
	if got := retainFrom(ctx, peers, "arb", ms, applied); got != 50 {
		t.Fatalf("retain from %d, want 50 (n1 did not answer: its last answer holds)", got)
	}
	if got := retainFrom(ctx, peers, "arb", ms, map[string]uint64{}); got != 0 {
		t.Fatalf("retain from %d, want 0 (n1 was never heard from)", got)
	}
	if got := retainFrom(ctx, fakePeers{}, "arb", []Member{arb}, applied); got != 0 {
		t.Fatalf("retain from %d with no data member, want 0", got)
	}
}

// groupPeers answers the policy's questions from in-process Groups, as the
// node does over its Cluster service.
type groupPeers struct {
	mu     sync.Mutex
	groups map[string]*Group // by address
}

func (p *groupPeers) add(g *Group) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.groups[g.cfg.Addr] = g
}

func (p *groupPeers) at(addr string) (*Group, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if g, ok := p.groups[addr]; ok {
		return g, nil
	}
	return nil, errors.New("unreachable")
}

func (p *groupPeers) AskAdd(ctx context.Context, addr string, m Member) error {
	g, err := p.at(addr)
	if err != nil {
		return err
	}
	err = g.AddMember(ctx, m.ID, m.Addr, m.Voter)
	if errors.Is(err, ErrNotLeader) {
		if g, err = p.at(g.Status().LeaderAddr); err == nil {
			err = g.AddMember(ctx, m.ID, m.Addr, m.Voter)
		}
	}
	return err
}

func (p *groupPeers) Configuration(_ context.Context, addr string) ([]Member, string, error) {
	g, err := p.at(addr)
	if err != nil {
		return nil, "", err
	}
	st := g.Status()
	return st.Members, st.LeaderID, nil
}

func (p *groupPeers) Applied(_ context.Context, m Member) (PeerState, error) {
	g, err := p.at(m.Addr)
	if err != nil {
		return PeerState{}, err
	}
	return g.selfState(), nil
}

// A member started with Join asks to be added, then to be promoted once
// caught up; removed, it learns so from the leader and reports it once.
func TestPolicyJoinsAndLearnsOfItsRemoval(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a group")
	}
	peers := &groupPeers{groups: map[string]*Group{}}
	ms := startGroupWith(t, 2, func(_ int, cfg *Config) { cfg.Peers = peers })
	for _, m := range ms {
		peers.add(m.g)
	}
	l := leader(t, ms)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	removed := make(chan struct{}, 2)
	cfg := DefaultConfig()
	cfg.ID, cfg.Addr, cfg.Dir = "m2", ln.Addr().String(), t.TempDir()
	cfg.Logger, cfg.NotPrimaryTimeout = zaptest.NewLogger(t).Named("m2"), time.Second
	cfg.Peers, cfg.Join, cfg.OnRemoved = peers, ms[1-l].cfg.Addr, func() { removed <- struct{}{} }
	j := startMember(t, cfg, ln)
	peers.add(j.g)

	waitFor(t, "m2 to be added and promoted", func() bool { return j.g.Status().Voter })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	members := append(ms, j)
	waitFor(t, "the leader to remove m2", func() bool {
		err := members[leader(t, members)].g.RemoveMember(ctx, "m2")
		return err == nil || errors.Is(err, ErrUnknownMember)
	})
	select {
	case <-removed:
	case <-ctx.Done():
		t.Fatal("m2 did not learn of its removal")
	}
	select {
	case <-removed:
		t.Fatal("OnRemoved called twice")
	default:
	}
}

// A configuration change lost with the lead may still commit under the
// next leader: it is indeterminate, never "not the leader", which would
// have it retried there as if refused.
func TestMembershipErrors(t *testing.T) {
	for _, tc := range []struct {
		raft error
		want error
	}{
		{raft.ErrNotLeader, ErrNotLeader},
		{raft.ErrLeadershipTransferInProgress, ErrNotLeader},
		{raft.ErrLeadershipLost, ErrIndeterminate},
		{raft.ErrRaftShutdown, ErrIndeterminate}, // it may have committed
		{errNotAsked, ErrClosed},
	} {
		got := translateMembershipErr(tc.raft)
		if !errors.Is(got, tc.want) {
			t.Errorf("%v became %v, want %v", tc.raft, got, tc.want)
		}
		if tc.want != ErrNotLeader && errors.Is(got, ErrNotLeader) || tc.want != ErrClosed && errors.Is(got, ErrClosed) {
			t.Errorf("%v became %v, which reads as never appended", tc.raft, got)
		}
	}
}

// A change whose deadline has passed still asks Raft with a bound: Raft
// reads a timeout of 0 as none.
func TestChangeTimeoutPassedDeadline(t *testing.T) {
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if d := changeTimeout(ctx); d <= 0 {
		t.Fatalf("changeTimeout after the deadline: %v, want above 0", d)
	}
}
