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

// With a leadership preference, leadership moves to the first listed
// member, wherever the election put it, and back to it after it was handed
// away.
func TestLeaderPreference(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a group")
	}
	peers := &groupPeers{groups: map[string]*Group{}}
	ms := startGroupWith(t, 3, func(_ int, cfg *Config) {
		cfg.Peers, cfg.LeaderPreference = peers, []string{"m2", "m1"}
	})
	for _, m := range ms {
		peers.add(m.g)
	}
	leads := func(i int) func() bool { return func() bool { return ms[i].g.Status().RaftState == "Leader" } }
	waitFor(t, "m2 to lead", leads(2))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	term := ms[2].g.Status().Term
	if err := ms[2].g.TransferLeadership(ctx); err != nil {
		t.Fatal(err)
	}
	// The new leader ranks below m2 and hands leadership back: two terms
	// later, m2 leads again.
	waitFor(t, "m2 to lead again", func() bool { return leads(2)() && ms[2].g.Status().Term >= term+2 })
	if _, err := ms[0].g.Broadcast(ctx, []byte("through m2")); err != nil {
		t.Fatal(err)
	}
}

func TestWritesLeader(t *testing.T) {
	ms := []Member{{ID: "eu", Voter: true}, {ID: "asia", Voter: true}, {ID: "me", Voter: true}, {ID: "new"}}
	// st is what the members said, each asked at index 5000 and having
	// applied applied.
	st := func(applied uint64, originated ...uint64) map[string]answer {
		a := func(arbitrator bool, originated uint64) answer {
			return answer{PeerState: PeerState{Applied: applied, Arbitrator: arbitrator, Originated: originated}, asked: 5000}
		}
		return map[string]answer{"eu": a(false, originated[0]), "asia": a(false, originated[1]),
			"me": a(true, originated[2]), "new": a(false, originated[3])}
	}
	base := st(5000, 100, 100, 100, 0)
	for _, c := range []struct {
		name string
		now  map[string]answer
		want string // "" for none
	}{
		{"two thirds", st(5000, 300, 200, 100, 0), "eu"},
		{"just under two thirds", st(5000, 299, 201, 100, 0), ""},
		{"balanced", st(5000, 250, 250, 100, 0), ""},
		{"too few", st(5000, 166, 100, 100, 0), ""},
		{"an arbitrator does not count", st(5000, 100, 100, 9000, 0), ""},
		{"a non-voter does not count", st(5000, 100, 160, 100, 5000), ""},
		{"behind", st(5000-preferLag-1, 100, 400, 100, 0), ""},
		{"just caught up", st(5000-preferLag, 100, 400, 100, 0), "asia"},
		{"restarted: counts from zero", st(5000, 10, 400, 100, 0), "asia"},
	} {
		m, share, ok := writesLeader(base, c.now, ms)
		if got := map[bool]string{true: m.ID}[ok]; got != c.want {
			t.Errorf("%s: %q (share %.2f), want %q", c.name, got, share, c.want)
		}
	}
	then := map[string]answer{"asia": {PeerState: PeerState{Originated: 100}}}
	now := map[string]answer{"eu": {PeerState: PeerState{Originated: 900}}, "asia": {PeerState: PeerState{Originated: 150}}}
	if m, _, ok := writesLeader(then, now, ms); ok {
		t.Errorf("%s chosen: a member missing from the first answers counted", m.ID)
	}
}
