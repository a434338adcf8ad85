package node

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/certification"
	"github.com/galenadb/galena/groupcomm"
	"go.uber.org/zap"
)

const (
	// monitorInterval is how often a member looks at its own state.
	monitorInterval = 200 * time.Millisecond
	// askInterval spaces a member's requests to be added or promoted, and its
	// checks, while cut off, that it is still a member.
	askInterval = 2 * time.Second
)

// monitor runs for the member's life. It keeps the flag that stops a
// catching-up member from serving, asks for this member to be added (after
// --join) and then promoted to voter once caught up, logs state changes, and
// stops the member once it learns it was removed.
func (n *Node) monitor() {
	t := time.NewTicker(monitorInterval)
	defer t.Stop()
	var (
		wasMember bool
		lastAsk   time.Time
		cutSince  time.Time
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
		caughtUp := st.Primary && !st.Restoring && st.CommitIndex > 0 && st.ApplyLag <= syncedLag
		// A member that does not find itself in the configuration serves
		// nothing until it knows where it stands.
		n.joining.Store(st.Restoring || st.WaitingForData || (!st.Member && (wasMember || n.cfg.Join != "")) ||
			(st.Member && !st.Voter && !caughtUp))
		if s := n.statusOf(st).State; s != state {
			n.lg.Info("member state", zap.String("from", state), zap.String("to", s),
				zap.Uint64("applied", st.Applied), zap.Uint64("commit_index", st.CommitIndex))
			state = s
		}
		now := time.Now()
		if st.Member && !wasMember {
			wasMember, lastAsk = true, time.Time{} // added: promotion may be asked for at once
		}
		if st.Primary || !st.Member {
			cutSince = time.Time{}
		} else if cutSince.IsZero() {
			cutSince = now
		}
		if now.Sub(lastAsk) < askInterval {
			continue
		}
		switch {
		case !st.Member && !wasMember && n.cfg.Join != "":
			lastAsk = now
			n.ask(n.cfg.Join, false)
		case st.Member && !st.Voter && caughtUp:
			lastAsk = now
			n.ask("", true)
		case wasMember && !st.Member && len(st.Members) > 0, !cutSince.IsZero() && now.Sub(cutSince) > 3*n.cfg.Group.NotPrimaryTimeout:
			// The configuration this member holds no longer lists it, or it
			// has been cut off for long. The first may be an old
			// configuration it is catching up through: a member that reuses
			// the id of one removed before it replays that removal, and its
			// own later addition is still to come. So the leader decides.
			lastAsk = now
			if n.removedElsewhere(st.Members) {
				n.removed()
				return
			}
		}
	}
}

// ask asks to add this member as a non-voter (through the member at addr) or
// to promote it to voter (through the leader).
func (n *Node) ask(addr string, voter bool) {
	req := &galenapb.MemberAddRequest{Id: n.cfg.ID, Address: n.addr, Voter: voter, ClusterId: groupcomm.FormatClusterID(n.clusterID)}
	ctx, cancel := context.WithTimeout(n.ctx, joinTimeout)
	defer cancel()
	var err error
	if addr == "" {
		_, err = admin{n: n}.MemberAdd(ctx, req)
	} else {
		err = n.cfg.withCluster(ctx, addr, func(ctx context.Context, cc galenapb.ClusterClient) error {
			_, err := cc.MemberAdd(ctx, req)
			return err
		})
	}
	what := map[bool]string{false: "to be added as a non-voter", true: "to be promoted to voter"}[voter]
	if err != nil {
		n.lg.Warn("asked "+what+"; will ask again", zap.Error(err))
		return
	}
	n.lg.Info("asked " + what)
}

// removedElsewhere asks the leader, through the other members, whether
// this member is still in the configuration: a member removed while it was
// running is not told, and a member catching up through an old
// configuration must not take that one's word. It reports false when no
// leader answers.
func (n *Node) removedElsewhere(members []groupcomm.Member) bool {
	for _, m := range members {
		if m.ID == n.cfg.ID {
			continue
		}
		if ml, ok := n.leaderView(m.Addr); ok {
			return !slices.ContainsFunc(ml.GetMembers(), func(x *galenapb.Member) bool { return x.GetId() == n.cfg.ID })
		}
	}
	return false
}

// leaderView returns the configuration as the leader holds it, asked of the
// member at addr or of the leader it names.
func (n *Node) leaderView(addr string) (*galenapb.MemberListResponse, bool) {
	for range 2 {
		ml, err := n.cfg.memberList(n.ctx, addr)
		leader := ml.GetLeaderId()
		switch {
		case err != nil || ml.GetClusterId() != groupcomm.FormatClusterID(n.clusterID) || leader == "" || leader == n.cfg.ID:
			return nil, false
		case leader == addrID(ml, addr):
			return ml, true
		}
		if addr = leaderAddr(ml); addr == "" {
			return nil, false
		}
	}
	return nil, false
}

// addrID is the id of the member at addr in ml.
func addrID(ml *galenapb.MemberListResponse, addr string) string {
	for _, m := range ml.GetMembers() {
		if m.GetAddress() == addr {
			return m.GetId()
		}
	}
	return ""
}

// leaderAddr is the address of the leader ml names.
func leaderAddr(ml *galenapb.MemberListResponse) string {
	for _, m := range ml.GetMembers() {
		if m.GetId() == ml.GetLeaderId() {
			return m.GetAddress()
		}
	}
	return ""
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
