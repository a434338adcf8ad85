package groupcomm

import (
	"context"
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
	Term        uint64 // the current Raft term
	LeaderID    string
	LeaderAddr  string
	Primary     bool          // part of a majority with a live leader
	LastContact time.Duration // since the leader was last heard from, or this member led (0 on the leader, -1 never)
	// AppliedIndex is the last log index delivered here, AppliedSeqno the
	// seqno reached there (see Position). Lags and the log are counted in
	// log indexes.
	AppliedIndex uint64
	AppliedSeqno uint64
	CommitIndex  uint64
	LastIndex    uint64
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
	// Transfer is the progress of a state transfer this member takes part
	// in, as donor or joiner.
	Transfer Transfer
	// WaitingForData is set on a data member that is too far behind the
	// leader for its log and was offered only an arbitrator's snapshot,
	// which holds no data: it waits for a data member to lead.
	WaitingForData bool
	// RetainedFrom is, on an arbitrator, the lowest log index it keeps for
	// the data members (Group.RetainLog); 0 while it keeps the whole log.
	RetainedFrom uint64
	// BatchedEntries and BatchedCommands count the Raft entries this
	// member handed to Raft while leading, and the commands they carried
	// (group commit); their ratio is the mean batch.
	BatchedEntries, BatchedCommands uint64
	// FlowControl is, on the leader, whether a member's backlog holds
	// commits back, and, on any member, how long it did while this member
	// led.
	FlowControl FlowControl
}

// SyncedLag is how many committed entries a member may still have to
// deliver and count as caught up (Status.CaughtUp).
const SyncedLag = 1024

// CaughtUp reports whether the member is primary, has its state (it is not
// restoring a snapshot), and is at most SyncedLag entries behind the
// leader. A non-voter asks to be promoted once it is.
func (s Status) CaughtUp() bool {
	return s.Primary && !s.Restoring && s.CommitIndex > 0 && s.ApplyLag <= SyncedLag
}

// Status reports the member's current view. It does not block on the network.
func (g *Group) Status() Status {
	addr, id := g.raft.LeaderWithID()
	at := g.fsm.position() // index and seqno of one moment
	st := Status{
		ID: g.cfg.ID, Addr: g.cfg.Addr,
		RaftState: g.raft.State().String(), Term: g.raft.CurrentTerm(),
		LeaderID: string(id), LeaderAddr: string(addr),
		AppliedSeqno: at.Seqno,
		AppliedIndex: at.Index,
		CommitIndex:  g.raft.CommitIndex(),
		LastIndex:    g.raft.LastIndex(),
		ClusterID:    g.cfg.ClusterID, Arbitrator: g.cfg.Arbitrator,
		Donor: g.snaps.open.Load() > 0, Restoring: g.fsm.restoring.Load(),
		BatchedEntries: g.app.entries.Load(), BatchedCommands: g.app.commands.Load(),
		FlowControl: g.fc.state(time.Now()),
	}
	st.WaitingForData = g.snaps.waitingForData(st.AppliedIndex)
	st.Transfer = g.snaps.transfer(st.Restoring)
	if g.cfg.Arbitrator {
		st.RetainedFrom = g.cache.keepFrom.Load()
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

// backlog is Status's ApplyLag and RecvQueue for st. The lag counts up to
// the leader's index when this member knows a higher one than its own
// commit index, which a follower missing entries cannot advance.
func (g *Group) backlog(st Status) (lag, queued uint64) {
	pending := func(idx uint64) uint64 {
		if d := g.delivered(idx); d > st.AppliedIndex {
			return d - st.AppliedIndex
		}
		return 0
	}
	lag = pending(st.CommitIndex)
	if li := g.leaderIndex.Load(); li > st.AppliedIndex && st.RaftState != raft.Leader.String() {
		lag = max(lag, li-st.AppliedIndex) // the leader's read index counts delivered entries only
	}
	return lag, pending(st.LastIndex)
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

// lastContact is how long ago this member last heard from a leader, or
// led itself; -1 if it never has.
func (g *Group) lastContact() time.Duration {
	lc := g.raft.LastContact()
	if left := g.leftLead.Load(); left != 0 && time.Unix(0, left).After(lc) {
		lc = time.Unix(0, left)
	}
	if lc.IsZero() {
		return -1
	}
	return time.Since(lc)
}

// Restoring reports whether this member is restoring a snapshot it received.
func (g *Group) Restoring() bool { return g.fsm.restoring.Load() }

// leaderIndexInterval is how often a follower asks the leader for its
// index, for ApplyLag.
const leaderIndexInterval = 250 * time.Millisecond

// watchLeaderIndex keeps leaderIndex fresh on a follower: it asks the
// leader for its read index over the forwarding stream every
// leaderIndexInterval (nothing is written to the log).
func (g *Group) watchLeaderIndex() {
	t := time.NewTicker(leaderIndexInterval)
	defer t.Stop()
	for {
		select {
		case <-g.closing:
			return
		case <-t.C:
		}
		if g.raft.State() == raft.Leader {
			continue
		}
		ctx, cancel := context.WithTimeout(g.ctx, g.cfg.NotPrimaryTimeout)
		idx, err := g.readIndexOnce(ctx)
		cancel()
		if err == nil && idx > g.leaderIndex.Load() {
			g.leaderIndex.Store(idx) // only this goroutine stores it
		}
	}
}
