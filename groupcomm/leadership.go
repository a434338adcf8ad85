package groupcomm

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	switch err := g.raft.LeadershipTransfer().Error(); {
	case errors.Is(err, raft.ErrNotLeader):
		return nil // lost it meanwhile
	case errors.Is(err, raft.ErrRaftShutdown):
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
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	g.raft.RegisterObserver(obs)
	defer g.raft.DeregisterObserver(obs)
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
