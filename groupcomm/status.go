package groupcomm

import (
	"time"

	"github.com/hashicorp/raft"
)

// Member is one server of the Raft configuration.
type Member struct {
	ID    string
	Addr  string
	Voter bool
}

// Status is a member's view of itself and of the group.
type Status struct {
	ID          string
	Addr        string
	RaftState   string // Leader, Follower, Candidate, Shutdown
	LeaderID    string
	LeaderAddr  string
	Primary     bool          // part of a majority with a live leader
	LastContact time.Duration // since the leader was last heard from (0 on the leader, -1 never)
	Applied     uint64
	CommitIndex uint64
	LastIndex   uint64
	// ApplyLag and RecvQueue are the entries still to be delivered here:
	// those committed, and all those in the log, committed or not. Raft's
	// own entries, which are never delivered (a new leader's first entry,
	// say), do not count.
	ApplyLag  uint64
	RecvQueue uint64
	Members   []Member

	ClusterID  uint64
	Arbitrator bool
	Voter      bool // this member votes (false while it catches up as a non-voter)
	Member     bool // this member is in the configuration it knows of
	Donor      bool // sending a snapshot to a member too far behind for the log
	Restoring  bool // receiving state: restoring a snapshot
}

// Status reports the member's current view. It does not block on the network.
func (g *Group) Status() Status {
	addr, id := g.raft.LeaderWithID()
	st := Status{
		ID: g.cfg.ID, Addr: g.cfg.Addr,
		RaftState: g.raft.State().String(),
		LeaderID:  string(id), LeaderAddr: string(addr),
		Applied:     g.Applied(),
		CommitIndex: g.raft.CommitIndex(),
		LastIndex:   g.raft.LastIndex(),
		ClusterID:   g.cfg.ClusterID, Arbitrator: g.cfg.Arbitrator,
		Donor: g.snaps.open.Load() > 0, Restoring: g.fsm.restoring.Load(),
	}
	if st.RaftState != raft.Leader.String() {
		st.LastContact = g.lastContact()
	}
	st.ApplyLag, st.RecvQueue = g.backlog(st)
	st.Primary = g.primary(st)
	st.Members, _ = g.Members()
	for _, m := range st.Members {
		if m.ID == g.cfg.ID {
			st.Member, st.Voter = true, m.Voter
		}
	}
	return st
}

// backlog is Status's ApplyLag and RecvQueue for st.
func (g *Group) backlog(st Status) (lag, queued uint64) {
	pending := func(idx uint64) uint64 {
		if d := g.delivered(idx); d > st.Applied {
			return d - st.Applied
		}
		return 0
	}
	return pending(st.CommitIndex), pending(st.LastIndex)
}

// primary: the leader is primary while it holds its lease (raft steps down
// when it loses the majority); a follower is while it hears from a leader,
// within NotPrimaryTimeout.
func (g *Group) primary(st Status) bool {
	switch {
	case st.RaftState == raft.Leader.String():
		return true
	case st.LeaderID == "" || st.LastContact < 0:
		return false
	default:
		return st.LastContact < g.cfg.NotPrimaryTimeout
	}
}

// Primary reports whether this member is part of a majority with a live
// leader, as Status().Primary does, more cheaply.
func (g *Group) Primary() bool {
	_, id := g.raft.LeaderWithID()
	return g.primary(Status{RaftState: g.raft.State().String(), LeaderID: string(id), LastContact: g.lastContact()})
}

// lastContact is how long ago this member last heard from a leader; -1 if
// it never has.
func (g *Group) lastContact() time.Duration {
	if lc := g.raft.LastContact(); !lc.IsZero() {
		return time.Since(lc)
	}
	return -1
}

// Restoring reports whether this member is restoring a snapshot it received.
func (g *Group) Restoring() bool { return g.fsm.restoring.Load() }
