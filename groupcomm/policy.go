package groupcomm

import (
	"context"
	"slices"
	"time"

	"go.uber.org/zap"
)

// The membership policy: what a member does about its own place in the
// configuration. A member started with Config.Join asks to be added as a
// non-voter, and once caught up asks the leader to promote it; a member
// that no longer finds itself in its configuration, or has been cut off
// from the majority for long, asks the leader whether it was removed. On
// an arbitrator, the policy also keeps the log the data members need
// (retain.go). It runs only with Config.Peers, through which it asks the
// other members.

// Peers is what the membership policy asks of other members. groupcomm
// does not know how the questions travel; the node answers them over its
// Cluster service. Every call returns once ctx is done.
type Peers interface {
	// AskAdd asks the member at addr to add m as a non-voter or, with
	// m.Voter, to promote it to voter. A member that does not lead passes
	// the request on to the leader.
	AskAdd(ctx context.Context, addr string, m Member) error
	// Configuration returns the configuration the member at addr holds and
	// the id of the leader it knows ("" for none). It fails for a member of
	// another cluster.
	Configuration(ctx context.Context, addr string) (ms []Member, leaderID string, err error)
	// Applied returns what member m, asked at m.Addr, says of itself: its
	// applied index, whether it is an arbitrator (it holds no data) and the
	// commands it has ordered. It fails if another member answers there.
	Applied(ctx context.Context, m Member) (PeerState, error)
}

// PeerState is what a member says of itself (Peers.Applied).
type PeerState struct {
	Applied    uint64 // the last log index delivered there
	Arbitrator bool   // it holds no data
	// Originated counts the commands it has ordered (Broadcast) since it
	// started: the commits its clients made there, and its checkpoint
	// announcements.
	Originated uint64
}

const (
	// policyInterval is how often the policy looks at the member's status.
	policyInterval = 200 * time.Millisecond
	// askInterval spaces the member's requests to be added or promoted, its
	// questions about its removal, and an arbitrator's rounds of questions
	// about the data members' applied indexes.
	askInterval = 2 * time.Second
	// askTimeout bounds each request to another member.
	askTimeout = 10 * time.Second
)

// move is what the policy decides to do next.
type move int

const (
	wait         move = iota
	askToJoin         // ask through Config.Join to be added as a non-voter
	askPromotion      // ask the leader to be promoted to voter
	checkRemoved      // ask the leader whether this member is still in the configuration
)

// policy is one member's membership policy: its decisions (next, removed)
// and what it remembers between them.
type policy struct {
	self   Member // ID and Addr
	join   string
	peers  Peers
	cutOff time.Duration // cut off from the majority this long, a member asks whether it was removed

	wasMember bool      // found itself in a configuration since it started
	lastAsk   time.Time // of the last request or question
	cutSince  time.Time // cut off from the majority since; zero while primary
}

func newPolicy(cfg Config) *policy {
	return &policy{self: Member{ID: cfg.ID, Addr: cfg.Addr}, join: cfg.Join, peers: cfg.Peers, cutOff: 3 * cfg.NotPrimaryTimeout}
}

// next decides, from the member's status st at now, what to do. It asks at
// most once per askInterval, except that a member just added may ask to be
// promoted at once.
func (p *policy) next(st Status, now time.Time) move {
	if st.Member && !p.wasMember {
		p.wasMember, p.lastAsk = true, time.Time{}
	}
	if st.Primary || !st.Member {
		p.cutSince = time.Time{}
	} else if p.cutSince.IsZero() {
		p.cutSince = now
	}
	if now.Sub(p.lastAsk) < askInterval {
		return wait
	}
	m := wait
	switch {
	case !st.Member && !p.wasMember && p.join != "":
		m = askToJoin
	case st.Member && !st.Voter && st.CaughtUp():
		m = askPromotion
	case p.wasMember && !st.Member && len(st.Members) > 0, !p.cutSince.IsZero() && now.Sub(p.cutSince) > p.cutOff:
		// The configuration this member holds no longer lists it, or it
		// has been cut off for long. The first may be an old
		// configuration it is catching up through: a member that reuses
		// the id of one removed before it replays that removal, and its
		// own later addition is still to come. So the leader decides.
		m = checkRemoved
	}
	if m != wait {
		p.lastAsk = now
	}
	return m
}

// removed asks the leader, through the members of ms other than this one,
// whether this member is still in the configuration: a member removed
// while it was running is not told, and a member catching up through an
// old configuration must not take that one's word. It reports false when
// no leader answers.
func (p *policy) removed(ctx context.Context, ms []Member) bool {
	for _, m := range ms {
		if m.ID == p.self.ID {
			continue
		}
		if conf, ok := p.leaderConfiguration(ctx, m.Addr); ok {
			return !slices.ContainsFunc(conf, func(x Member) bool { return x.ID == p.self.ID })
		}
	}
	return false
}

// leaderConfiguration returns the configuration as the leader holds it,
// asked of the member at addr or of the leader it names.
func (p *policy) leaderConfiguration(ctx context.Context, addr string) ([]Member, bool) {
	for range 2 {
		ms, leader, err := p.ask(ctx, addr)
		switch {
		case err != nil || leader == "" || leader == p.self.ID:
			return nil, false
		case leader == idAt(ms, addr):
			return ms, true
		}
		if addr = addrOf(ms, leader); addr == "" {
			return nil, false
		}
	}
	return nil, false
}

// ask asks the member at addr for its configuration, within askTimeout.
func (p *policy) ask(ctx context.Context, addr string) ([]Member, string, error) {
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	return p.peers.Configuration(ctx, addr)
}

// idAt is the id of the member at addr in ms.
func idAt(ms []Member, addr string) string {
	for _, m := range ms {
		if m.Addr == addr {
			return m.ID
		}
	}
	return ""
}

// addrOf is the address of member id in ms.
func addrOf(ms []Member, id string) string {
	for _, m := range ms {
		if m.ID == id {
			return m.Addr
		}
	}
	return ""
}

// askAdd asks the member at addr to add this member, or to promote it.
func (p *policy) askAdd(ctx context.Context, lg *zap.Logger, addr string, voter bool) {
	what := map[bool]string{false: "to be added as a non-voter", true: "to be promoted to voter"}[voter]
	if addr == "" {
		lg.Debug("no leader to ask " + what + "; will ask again")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	m := p.self
	m.Voter = voter
	if err := p.peers.AskAdd(ctx, addr, m); err != nil {
		lg.Warn("asked "+what+"; will ask again", zap.String("via", addr), zap.Error(err))
		return
	}
	lg.Info("asked "+what, zap.String("via", addr))
}

// keepStanding runs the membership policy for the Group's life, or until
// it finds this member removed (it then calls Config.OnRemoved) or the
// apply loop stops.
func (g *Group) keepStanding() {
	t := time.NewTicker(policyInterval)
	defer t.Stop()
	p := newPolicy(g.cfg)
	for {
		select {
		case <-g.closing:
			return
		case <-t.C:
		}
		if g.fsm.failed.Load() != nil {
			return // a member that stopped takes no further part
		}
		st := g.Status()
		switch p.next(st, time.Now()) {
		case askToJoin:
			p.askAdd(g.ctx, g.lg, g.cfg.Join, false)
		case askPromotion:
			p.askAdd(g.ctx, g.lg, st.LeaderAddr, true)
		case checkRemoved:
			if p.removed(g.ctx, st.Members) {
				g.lg.Info("the leader's configuration no longer lists this member")
				if g.cfg.OnRemoved != nil {
					g.cfg.OnRemoved()
				}
				return
			}
		}
	}
}
