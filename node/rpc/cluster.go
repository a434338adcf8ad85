package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/certification"
	"github.com/galenadb/galena/groupcomm"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// forwardedKey marks a membership request a member passed on to the leader;
// the leader does not pass it on again.
const forwardedKey = "galena-forwarded"

// leaderPoll is how often a follower looks for a leader to pass a change to.
const leaderPoll = 50 * time.Millisecond

// Member is the member a Cluster service speaks for: its group's
// configuration, and its applied state. node implements it; its methods
// must be safe for concurrent use.
type Member interface {
	// Group is the configuration and the leader as this member knows them.
	Group() groupcomm.Status
	// Members, AddMember and RemoveMember read and change the
	// configuration as groupcomm.Group's methods of those names do.
	Members() ([]groupcomm.Member, error)
	AddMember(ctx context.Context, id, addr string, voter bool) error
	RemoveMember(ctx context.Context, id string) error
	// State is the member's state (SYNCED, JOINING, ...).
	State() string
	// Applied is the applied position (log index and seqno) and the
	// running digest of the outcomes up to it; ok is false on an
	// arbitrator, which has no data.
	Applied() (at groupcomm.Position, digest [32]byte, ok bool)
	// Checkpoints are the recent checkpoints, oldest first.
	Checkpoints() []certification.Checkpoint
	// Originated counts the commands the member has ordered since it
	// started (groupcomm.Group.Originated).
	Originated() uint64
	// Removed stops the member: a change it served removed it.
	Removed()
	// Backup writes a consistent copy of the member's state to w, as
	// groupcomm.Group.Backup does, and returns its position.
	Backup(w io.Writer) (groupcomm.Position, error)
}

// ClusterConfig is what a Cluster service knows of its member that does
// not change while it serves.
type ClusterConfig struct {
	ID        string // the member's
	ClusterID string // as groupcomm.FormatClusterID writes it
	// LeaderWait bounds how long a follower waits to learn a leader to pass
	// a change to (groupcomm.Config.NotPrimaryTimeout).
	LeaderWait time.Duration
	// Dial runs fn against the Cluster service of the member at addr, as
	// this member (with TLS, presenting its certificate).
	Dial func(ctx context.Context, addr string, fn func(context.Context, galenapb.ClusterClient) error) error
	// CheckMember reports an id or an address no member could start with.
	CheckMember func(id, addr string) error
	Logger      *zap.Logger // nil: none
}

// Cluster serves the Cluster service: the configuration, changes to it
// (passed on to the leader by a follower) and the member's digest. It is
// safe for concurrent use.
type Cluster struct {
	galenapb.UnimplementedClusterServer
	cfg ClusterConfig
	m   Member
}

// NewCluster returns the Cluster service of m.
func NewCluster(cfg ClusterConfig, m Member) *Cluster {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Cluster{cfg: cfg, m: m}
}

// MemberList answers the configuration and the leader this member knows.
func (c *Cluster) MemberList(context.Context, *galenapb.MemberListRequest) (*galenapb.MemberListResponse, error) {
	st := c.m.Group()
	return &galenapb.MemberListResponse{
		ClusterId: groupcomm.FormatClusterID(st.ClusterID), LeaderId: st.LeaderID, Members: MembersProto(st.Members),
	}, nil
}

// MemberAdd adds a member as a non-voter, or promotes one to voter.
func (c *Cluster) MemberAdd(ctx context.Context, req *galenapb.MemberAddRequest) (*galenapb.MemberAddResponse, error) {
	if err := c.checkAdd(req); err != nil {
		return nil, toStatus(err)
	}
	err := c.onLeader(ctx, func(ctx context.Context) error {
		return c.m.AddMember(ctx, req.GetId(), req.GetAddress(), req.GetVoter())
	}, func(ctx context.Context, cc galenapb.ClusterClient) error {
		_, err := cc.MemberAdd(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &galenapb.MemberAddResponse{ClusterId: c.cfg.ClusterID, Members: c.members()}, nil
}

// checkAdd refuses a request to add a member before the group is asked.
func (c *Cluster) checkAdd(req *galenapb.MemberAddRequest) error {
	switch {
	case req.GetId() == "" || req.GetAddress() == "":
		return fmt.Errorf("%w: member add: an id and an address are required", errInvalidChange)
	case req.GetClusterId() != "" && req.GetClusterId() != c.cfg.ClusterID:
		return fmt.Errorf("%w: member add: %s belongs to cluster %s, this is cluster %s", errOtherCluster, req.GetId(), req.GetClusterId(), c.cfg.ClusterID)
	}
	if err := c.cfg.CheckMember(req.GetId(), req.GetAddress()); err != nil {
		return fmt.Errorf("%w: %v", errInvalidChange, err)
	}
	return nil
}

// MemberRemove removes a member, running or not; this member stops if it
// is the one removed.
func (c *Cluster) MemberRemove(ctx context.Context, req *galenapb.MemberRemoveRequest) (*galenapb.MemberRemoveResponse, error) {
	if req.GetId() == "" {
		return nil, toStatus(fmt.Errorf("%w: member remove: an id is required", errInvalidChange))
	}
	err := c.onLeader(ctx, func(ctx context.Context) error {
		return c.m.RemoveMember(ctx, req.GetId())
	}, func(ctx context.Context, cc galenapb.ClusterClient) error {
		_, err := cc.MemberRemove(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	c.cfg.Logger.Info("member removed", zap.String("member", req.GetId()))
	if req.GetId() == c.cfg.ID {
		c.m.Removed() // a follower is not told; it asked, so it knows
	}
	return &galenapb.MemberRemoveResponse{Members: c.members()}, nil
}

// Digest answers the member's applied seqno, running digest, the commands
// it originated, its state and recent checkpoints (not the last two when
// asked for the position only); an arbitrator answers no position.
func (c *Cluster) Digest(_ context.Context, req *galenapb.DigestRequest) (*galenapb.DigestResponse, error) {
	resp := &galenapb.DigestResponse{Id: c.cfg.ID, Originated: c.m.Originated()}
	if !req.GetPositionOnly() {
		resp.State = c.m.State()
	}
	at, d, ok := c.m.Applied()
	if !ok {
		return resp, nil
	}
	resp.AppliedSeqno, resp.AppliedIndex, resp.Digest = at.Seqno, at.Index, d[:]
	if req.GetPositionOnly() {
		return resp, nil
	}
	for _, cp := range c.m.Checkpoints() {
		resp.Checkpoints = append(resp.Checkpoints, &galenapb.Checkpoint{Seqno: cp.Seqno, Digest: append([]byte(nil), cp.Digest[:]...)})
	}
	return resp, nil
}

// members is the configuration after a change that was made: a failure to
// read it back does not undo the change, so it is logged and the list left
// empty rather than the call failed.
func (c *Cluster) members() []*galenapb.Member {
	ms, err := c.m.Members()
	if err != nil {
		c.cfg.Logger.Warn("membership changed, but the new configuration could not be read back", zap.Error(err))
	}
	return MembersProto(ms)
}

// onLeader runs local if this member leads, or else remote against the
// leader, once: a forwarded request is not forwarded again. It returns a
// gRPC status. An error of the group the table does not know (raft's own)
// is Unavailable: the change may or may not have been made.
func (c *Cluster) onLeader(ctx context.Context, local func(context.Context) error, remote func(context.Context, galenapb.ClusterClient) error) error {
	err := local(ctx)
	if !errors.Is(err, groupcomm.ErrNotLeader) {
		return statusOr(err, codes.Unavailable)
	}
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get(forwardedKey)) > 0 {
		return toStatus(fmt.Errorf("%w: membership change: this member no longer leads; retry", groupcomm.ErrNotLeader))
	}
	leader, err := c.leaderAddr(ctx)
	if err != nil {
		return toStatus(err)
	}
	return c.cfg.Dial(ctx, leader, func(ctx context.Context, cc galenapb.ClusterClient) error {
		ctx = metadata.AppendToOutgoingContext(ctx, forwardedKey, c.cfg.ID)
		err := remote(ctx, cc)
		if _, ok := status.FromError(err); !ok && err != nil {
			return statusOr(fmt.Errorf("membership change: leader %s: %v", leader, err), codes.Unavailable)
		}
		return err
	})
}

// leaderAddr waits, within LeaderWait, for this member to know a leader.
func (c *Cluster) leaderAddr(ctx context.Context) (string, error) {
	t := time.NewTicker(leaderPoll)
	defer t.Stop()
	deadline := time.Now().Add(c.cfg.LeaderWait)
	for {
		if addr := c.m.Group().LeaderAddr; addr != "" {
			return addr, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%w: membership change: no leader; retry", groupcomm.ErrNotPrimary)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-t.C:
		}
	}
}

// MembersProto is the wire form of a configuration.
func MembersProto(ms []groupcomm.Member) []*galenapb.Member {
	out := make([]*galenapb.Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, &galenapb.Member{Id: m.ID, Address: m.Addr, Voter: m.Voter})
	}
	return out
}
