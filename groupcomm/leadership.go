package groupcomm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// TransferLeadership hands leadership over to the most up-to-date other
// voter when this member leads, so that a member about to stop does not
// leave the cluster without a leader for an election timeout. It returns
// nil once this member no longer leads (or if it did not lead), and an error
// if no other voter took over within the election timeout: raft bounds the
// attempt, whatever ctx's deadline.
func (g *Group) TransferLeadership(ctx context.Context) error {
	select {
	case <-g.closing:
		return ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if g.raft.State() != raft.Leader || !g.otherVoter() {
		return nil
	}
	start := time.Now()
	switch err := g.futures.wait(g.raft.LeadershipTransfer); {
	case errors.Is(err, raft.ErrNotLeader):
		return nil // lost it meanwhile
	case errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, errNotAsked):
		return ErrClosed
	case err != nil:
		return fmt.Errorf("groupcomm: leadership transfer: %w", err)
	}
	// The new leader is not always known yet; watchLeader logs it.
	g.lg.Info("leadership handed over", zap.Duration("took", time.Since(start)))
	return nil
}

// otherVoter reports whether the configuration has a voter other than this
// member, which could take leadership over.
func (g *Group) otherVoter() bool {
	ms, err := g.Members()
	if err != nil {
		return false
	}
	for _, m := range ms {
		if m.Voter && m.ID != g.cfg.ID {
			return true
		}
	}
	return false
}

// watchLeader logs each change of leader this member sees, once: raft logs
// its own state changes but not a follower's change of leader.
func (g *Group) watchLeader() {
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		// Raft calls this as it changes state, right after State changes.
		if s, ok := o.Data.(raft.RaftState); ok && g.leading.Swap(s == raft.Leader) && s != raft.Leader {
			g.leftLead.Store(time.Now().UnixNano())
		}
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	g.raft.RegisterObserver(obs)
	defer g.raft.DeregisterObserver(obs)
	g.leading.Store(g.raft.State() == raft.Leader) // led before the observer saw it
	for {
		select {
		case <-g.closing:
			return
		case o := <-ch:
			lo := o.Data.(raft.LeaderObservation)
			if lo.LeaderID == "" {
				g.lg.Info("no leader", zap.Uint64("term", g.raft.CurrentTerm()))
				continue
			}
			g.lg.Info("leader changed", zap.String("leader", string(lo.LeaderID)),
				zap.String("leader_addr", string(lo.LeaderAddr)), zap.Uint64("term", g.raft.CurrentTerm()))
		}
	}
}

// donorTransport logs the start and end of each state transfer this member
// sends: raft sends a snapshot only to a member too far behind for the log.
type donorTransport struct {
	*raft.NetworkTransport
	lg *zap.Logger
}

func (t donorTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest,
	resp *raft.InstallSnapshotResponse, data io.Reader) error {
	lg := t.lg.With(zap.String("to", string(id)), zap.Uint64("snapshot", args.LastLogIndex))
	lg.Info("state transfer: sending snapshot (donor)", zap.Int64("bytes", args.Size))
	start := time.Now()
	err := t.NetworkTransport.InstallSnapshot(id, target, args, resp, data)
	switch {
	case err != nil:
		lg.Warn("state transfer: sending snapshot failed", zap.Duration("took", time.Since(start)), zap.Error(err))
	case !resp.Success:
		lg.Warn("state transfer: snapshot refused by the receiver", zap.Duration("took", time.Since(start)))
	default:
		lg.Info("state transfer: snapshot sent", zap.Duration("took", time.Since(start)))
	}
	return err
}

// Leadership preference. Every commit goes through the leader, so a
// commit taken by a member in another region pays a round trip to it on
// top of the leader's own round trip to a majority. Config.LeaderPreference
// puts leadership where most commits start: a leader that ranks below a
// listed voter hands leadership over to the first such voter that answers
// and has applied within preferLag entries of the leader's log, so that it
// takes over at once. A transfer that fails stalls commits for up to an
// election timeout, so after one the leader waits preferBackoff before it
// tries again.
const (
	preferLag     = 1024
	preferBackoff = 30 * time.Second
)

// rank is id's place in the leadership preference: an unlisted member
// ranks below every listed one.
func (g *Group) rank(id string) int {
	if i := slices.Index(g.cfg.LeaderPreference, id); i >= 0 {
		return i
	}
	return len(g.cfg.LeaderPreference)
}

// transferTo hands leadership over to m.
func (g *Group) transferTo(m Member) error {
	return g.futures.wait(func() raft.Future {
		return g.raft.LeadershipTransferToServer(raft.ServerID(m.ID), raft.ServerAddress(m.Addr))
	})
}

// preferLeader runs the leadership preference until the group closes.
func (g *Group) preferLeader() {
	g.whileLeading(askInterval, func(now time.Time) time.Time {
		m, ok := g.preferredLeader()
		if !ok {
			return now
		}
		err := g.transferTo(m)
		if err != nil {
			g.lg.Warn("could not hand leadership over to the preferred member", zap.String("to", m.ID), zap.Error(err))
			return now.Add(preferBackoff)
		}
		g.lg.Info("leadership handed over to the preferred member", zap.String("to", m.ID))
		return now
	})
}

// whileLeading calls fn every interval while this member leads, until the
// group closes; fn returns the time before which it is not to be called
// again.
func (g *Group) whileLeading(interval time.Duration, fn func(now time.Time) (next time.Time)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var next time.Time
	for {
		select {
		case <-g.closing:
			return
		case now := <-t.C:
			if g.raft.State() == raft.Leader && !now.Before(next) {
				next = fn(now)
			}
		}
	}
}

// preferredLeader returns the first voter of the preference that ranks
// above this member, answers, keeps data and has caught up.
func (g *Group) preferredLeader() (Member, bool) {
	ms, err := g.Members()
	if err != nil {
		return Member{}, false
	}
	answers := g.peers.answers(time.Now())
	for _, id := range g.cfg.LeaderPreference[:g.rank(g.cfg.ID)] {
		i := slices.IndexFunc(ms, func(m Member) bool { return m.ID == id && m.Voter })
		if i < 0 {
			continue
		}
		if a, ok := answers[id]; ok && !a.Arbitrator && a.caughtUp(preferLag) {
			return ms[i], true
		}
	}
	return Member{}, false
}

// Leadership that follows the writes (Config.LeaderFollowsWrites): every
// askInterval the leader takes how many commands each member has ordered,
// from what the members last said of themselves (pollers), and compares
// with what they said a window earlier. When a
// data voter other than itself originated at least followShare of the
// window's commands, and the window held at least followMin of them, it
// hands leadership over to that voter, once caught up. The new leader
// starts with no window of its own, so leadership moves at most once per
// window; balanced load moves it nowhere.
const (
	followShare = 2.0 / 3
	followMin   = 100
)

// writeSample is what the members said at one time.
type writeSample struct {
	at     time.Time
	states map[string]answer
}

// followWrites runs leadership that follows the writes until the group
// closes.
func (g *Group) followWrites() {
	window := g.cfg.LeaderFollowWindow
	var samples []writeSample
	g.whileLeading(askInterval, func(now time.Time) time.Time {
		ms, err := g.Members()
		if err != nil {
			return now
		}
		states := g.peers.answers(now)
		if len(samples) > 0 && now.Sub(samples[len(samples)-1].at) > window {
			samples = nil // not leading meanwhile: start a new window
		}
		samples = append(samples, writeSample{at: now, states: states})
		for len(samples) > 1 && now.Sub(samples[1].at) >= window {
			samples = samples[1:]
		}
		if now.Sub(samples[0].at) < window {
			return now
		}
		m, share, ok := writesLeader(samples[0].states, states, ms)
		if !ok || m.ID == g.cfg.ID {
			return now
		}
		err = g.transferTo(m)
		if err != nil {
			g.lg.Warn("could not hand leadership over to the member originating most commits", zap.String("to", m.ID), zap.Error(err))
			return now.Add(preferBackoff)
		}
		g.lg.Info("leadership handed over to the member originating most commits", zap.String("to", m.ID),
			zap.String("share", fmt.Sprintf("%.0f%%", 100*share)), zap.Duration("window", window))
		samples = nil
		return now
	})
}

// writesLeader returns the data voter of ms that originated at least
// followShare of the commands between the answers then and now, and its
// share, if the window held at least followMin commands and that voter had
// applied within preferLag entries when last asked. A member that restarted
// in between counts from zero.
func writesLeader(then, now map[string]answer, ms []Member) (Member, float64, bool) {
	var total, most uint64
	var top Member
	for _, m := range ms {
		was, ok1 := then[m.ID]
		is, ok2 := now[m.ID]
		if !ok1 || !ok2 || is.Arbitrator || !m.Voter {
			continue
		}
		n := is.Originated
		if n >= was.Originated {
			n -= was.Originated
		}
		total += n
		if n > most {
			most, top = n, m
		}
	}
	share := float64(most) / float64(max(total, 1))
	if total < followMin || share < followShare || !now[top.ID].caughtUp(preferLag) {
		return Member{}, 0, false
	}
	return top, share, true
}
