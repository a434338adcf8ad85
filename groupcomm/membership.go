package groupcomm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// Membership errors. A change that returns one of them changed nothing.
var (
	// ErrNotLeader: only the leader changes membership (and appends
	// entries); send the request to Status().LeaderAddr. Nothing changed.
	ErrNotLeader = errors.New("groupcomm: not the leader")
	// ErrMemberExists: the id or the address is already in the configuration.
	ErrMemberExists = errors.New("groupcomm: already a member")
	// ErrUnknownMember: no member has that id.
	ErrUnknownMember = errors.New("groupcomm: no such member")
	// ErrLastVoter: the change would leave the cluster without a voter.
	ErrLastVoter = errors.New("groupcomm: cannot remove the last voter")
)

// membershipTimeout bounds a configuration change when ctx has no deadline.
const membershipTimeout = 30 * time.Second

// Members returns the latest configuration this member knows of.
func (g *Group) Members() ([]Member, error) {
	f := g.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, translateMembershipErr(err)
	}
	var ms []Member
	for _, s := range f.Configuration().Servers {
		ms = append(ms, Member{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return ms, nil
}

// AddMember adds id at addr as a non-voter, which receives the log (or a
// snapshot) but does not count towards a majority. With voter set it instead
// promotes id, already a non-voter at addr, to voter; the caller should do so
// once the member has caught up. Adding a member that is already present as
// asked is a no-op. Only the leader can change membership: other members
// return ErrNotLeader.
func (g *Group) AddMember(ctx context.Context, id, addr string, voter bool) error {
	conf, err := g.leaderConfiguration()
	if err != nil {
		return err
	}
	var cur *raft.Server
	for i, s := range conf.Servers {
		switch {
		case string(s.ID) == id:
			cur = &conf.Servers[i]
		case string(s.Address) == addr:
			return fmt.Errorf("%w: address %s belongs to member %s", ErrMemberExists, addr, s.ID)
		}
	}
	switch {
	case cur != nil && string(cur.Address) != addr:
		return fmt.Errorf("%w: id %s is in use by the member at %s", ErrMemberExists, id, cur.Address)
	case cur != nil && (cur.Suffrage == raft.Voter || !voter):
		if voter == (cur.Suffrage == raft.Voter) {
			return nil // already as asked
		}
		return fmt.Errorf("%w: %s is already a voter", ErrMemberExists, id)
	case cur == nil && voter:
		return fmt.Errorf("%w: %s must first be added as a non-voter, then promoted", ErrUnknownMember, id)
	}
	timeout := changeTimeout(ctx)
	add := g.raft.AddNonvoter
	if voter {
		add = g.raft.AddVoter
	}
	err = g.futures.wait(func() raft.Future { return add(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout) })
	if err != nil {
		return translateMembershipErr(err)
	}
	g.lg.Info("membership changed", zap.String("member", id), zap.String("addr", addr),
		zap.String("change", map[bool]string{true: "promoted to voter", false: "added as non-voter"}[voter]))
	return nil
}

// RemoveMember removes id from the configuration, whether it is live or not.
// Removing the leader makes it step down once the change is committed. Only
// the leader can change membership: other members return ErrNotLeader.
func (g *Group) RemoveMember(ctx context.Context, id string) error {
	conf, err := g.leaderConfiguration()
	if err != nil {
		return err
	}
	found, voters := false, 0
	for _, s := range conf.Servers {
		if s.Suffrage == raft.Voter && string(s.ID) != id {
			voters++
		}
		found = found || string(s.ID) == id
	}
	switch {
	case !found:
		return fmt.Errorf("%w: %s", ErrUnknownMember, id)
	case voters == 0:
		return fmt.Errorf("%w: %s is the only voter", ErrLastVoter, id)
	}
	timeout := changeTimeout(ctx)
	err = g.futures.wait(func() raft.Future { return g.raft.RemoveServer(raft.ServerID(id), 0, timeout) })
	if err != nil {
		return translateMembershipErr(err)
	}
	g.lg.Info("membership changed", zap.String("member", id), zap.String("change", "removed"))
	return nil
}

// leaderConfiguration returns the latest configuration if this member leads.
func (g *Group) leaderConfiguration() (raft.Configuration, error) {
	select {
	case <-g.closing:
		return raft.Configuration{}, ErrClosed
	default:
	}
	if g.raft.State() != raft.Leader {
		return raft.Configuration{}, ErrNotLeader
	}
	f := g.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return raft.Configuration{}, translateMembershipErr(err)
	}
	return f.Configuration(), nil
}

func changeTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Nanosecond) // Raft waits without end on 0
	}
	return membershipTimeout
}

// translateMembershipErr tells raft's errors of a configuration change
// that was never appended (ErrNotLeader: ask the leader) from those that
// leave its fate open (ErrIndeterminate).
func translateMembershipErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return ErrNotLeader // never appended: ask the leader
	case errors.Is(err, raft.ErrLeadershipLost):
		// Appended, and lost with the lead before it committed: it may
		// still commit under the next leader, so it is not to be retried
		// there as if refused.
		return fmt.Errorf("%w: membership change: %v", ErrIndeterminate, err)
	case errors.Is(err, errNotAsked):
		return ErrClosed // never handed to Raft
	case errors.Is(err, raft.ErrRaftShutdown):
		// Raft shut down before it answered: the change may have
		// committed.
		return fmt.Errorf("%w: membership change: %v", ErrIndeterminate, err)
	default:
		return fmt.Errorf("groupcomm: membership change: %w", err)
	}
}
