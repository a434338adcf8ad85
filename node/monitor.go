package node

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/galenadb/galena/certification"
	"github.com/galenadb/galena/groupcomm"
	"go.uber.org/zap"
)

// monitorInterval is how often a member looks at its own state.
const monitorInterval = 200 * time.Millisecond

// monitor runs for the member's life. It keeps the flag that stops a
// catching-up member from serving, and logs changes of the member's state
// and of the configuration. What the member does about its membership
// (asking to be added or promoted, judging its removal) is groupcomm's
// membership policy.
func (n *Node) monitor() {
	t := time.NewTicker(monitorInterval)
	defer t.Stop()
	var (
		wasMember bool
		state     string
		conf      string
	)
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if n.stopped() != nil {
			return
		}
		st := n.group.Status()
		n.noteMembers(st.Members)
		conf = n.logConfiguration(conf, st.Members)
		wasMember = wasMember || st.Member
		// A member that does not find itself in the configuration serves
		// nothing until it knows where it stands.
		n.joining.Store(st.Restoring || st.WaitingForData || (!st.Member && (wasMember || n.cfg.Join != "")) ||
			(st.Member && !st.Voter && !st.CaughtUp()))
		if s := n.statusOf(st).State; s != state {
			n.lg.Info("member state", zap.String("from", state), zap.String("to", s),
				zap.Uint64("applied_seqno", st.AppliedSeqno), zap.Uint64("applied_index", st.AppliedIndex), zap.Uint64("commit_index", st.CommitIndex))
			state = s
		}
	}
}

// noteMembers records the configuration's ids for isMember.
func (n *Node) noteMembers(ms []groupcomm.Member) {
	ids := make(map[string]bool, len(ms))
	for _, m := range ms {
		ids[m.ID] = true
	}
	n.members.Store(&ids)
}

// logConfiguration logs the cluster configuration when it differs from
// prev, and returns it.
func (n *Node) logConfiguration(prev string, ms []groupcomm.Member) string {
	if len(ms) == 0 {
		return prev
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
		if !m.Voter {
			ids[i] += "(non-voter)"
		}
	}
	slices.Sort(ids)
	conf := strings.Join(ids, ",")
	if conf != prev {
		n.lg.Info("cluster configuration", zap.String("from", prev), zap.String("to", conf))
	}
	return conf
}

// isMember says whether id was in the configuration when monitor last
// looked; the apply loop asks it, so it must not wait on Raft.
func (n *Node) isMember(id string) bool {
	m := n.members.Load()
	return m != nil && (*m)[id]
}

// onCheckpoint hands a recorded checkpoint to announceLoop; it is called on
// the apply goroutine and must not block, so a backlog drops announcements.
func (n *Node) onCheckpoint(cp certification.Checkpoint) {
	select {
	case n.announce <- cp:
	default:
	}
}

// announceLoop announces this member's checkpoints through the log, for the
// others to compare with theirs.
func (n *Node) announceLoop() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case cp := <-n.announce:
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.Txn.CommitTimeout)
			if _, err := n.group.Broadcast(ctx, certification.EncodeCheckpoint(n.cfg.ID, cp)); err != nil {
				n.lg.Debug("checkpoint not announced", zap.Uint64("seqno", cp.Seqno), zap.Error(err))
			}
			cancel()
		}
	}
}
