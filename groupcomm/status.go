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
	LastContact time.Duration // since the leader was last heard from (0 on the leader)
	Applied     uint64
	CommitIndex uint64
	LastIndex   uint64
	Members     []Member
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
	}
	if g.raft.State() != raft.Leader {
		if lc := g.raft.LastContact(); !lc.IsZero() {
			st.LastContact = time.Since(lc)
		}
	}
	st.Primary = g.primary(st)
	if f := g.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			st.Members = append(st.Members, Member{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
		}
	}
	return st
}

// primary: the leader is primary while it holds its lease (raft steps down
// when it loses the majority); a follower is while it hears from a leader.
func (g *Group) primary(st Status) bool {
	switch {
	case st.RaftState == raft.Leader.String():
		return true
	case st.LeaderID == "":
		return false
	default:
		return st.LastContact < g.cfg.HeartbeatTimeout+g.cfg.ElectionTimeout
	}
}
