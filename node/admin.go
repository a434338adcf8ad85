package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/groupcomm"
	"github.com/galenadb/galena/txn"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// forwardedKey marks a membership request a member passed on to the leader;
// the leader does not pass it on again.
const forwardedKey = "galena-forwarded"

// admin serves the Cluster service.
type admin struct {
	galenapb.UnimplementedClusterServer
	n *Node
}

func (a admin) MemberList(context.Context, *galenapb.MemberListRequest) (*galenapb.MemberListResponse, error) {
	st := a.n.group.Status()
	return &galenapb.MemberListResponse{
		ClusterId: groupcomm.FormatClusterID(st.ClusterID), LeaderId: st.LeaderID, Members: membersProto(st.Members),
	}, nil
}

func (a admin) MemberAdd(ctx context.Context, req *galenapb.MemberAddRequest) (*galenapb.MemberAddResponse, error) {
	switch {
	case req.GetId() == "" || req.GetAddress() == "":
		return nil, status.Error(codes.InvalidArgument, "member add: an id and an address are required")
	case req.GetClusterId() != "" && req.GetClusterId() != a.clusterID():
		return nil, status.Errorf(codes.FailedPrecondition, "member add: %s belongs to cluster %s, this is cluster %s", req.GetId(), req.GetClusterId(), a.clusterID())
	}
	if err := (Config{ID: req.GetId(), Addr: req.GetAddress()}).validateIdentity(); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	err := a.onLeader(ctx, func(ctx context.Context) error {
		return a.n.group.AddMember(ctx, req.GetId(), req.GetAddress(), req.GetVoter())
	}, func(ctx context.Context, cc galenapb.ClusterClient) error {
		_, err := cc.MemberAdd(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &galenapb.MemberAddResponse{ClusterId: a.clusterID(), Members: a.members()}, nil
}

func (a admin) MemberRemove(ctx context.Context, req *galenapb.MemberRemoveRequest) (*galenapb.MemberRemoveResponse, error) {
	if req.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "member remove: an id is required")
	}
	err := a.onLeader(ctx, func(ctx context.Context) error {
		return a.n.group.RemoveMember(ctx, req.GetId())
	}, func(ctx context.Context, cc galenapb.ClusterClient) error {
		_, err := cc.MemberRemove(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	a.n.lg.Info("member removed", zap.String("member", req.GetId()))
	if req.GetId() == a.n.cfg.ID {
		a.n.removed() // a follower is not told; it asked, so it knows
	}
	return &galenapb.MemberRemoveResponse{Members: a.members()}, nil
}

func (a admin) Digest(context.Context, *galenapb.DigestRequest) (*galenapb.DigestResponse, error) {
	resp := &galenapb.DigestResponse{Id: a.n.cfg.ID, State: a.n.Status().State}
	if a.n.applier == nil {
		return resp, nil // an arbitrator has no data to digest
	}
	seqno, d := a.n.applier.Digest()
	resp.AppliedSeqno, resp.Digest = seqno, d[:]
	for _, cp := range a.n.applier.Checkpoints() {
		resp.Checkpoints = append(resp.Checkpoints, &galenapb.Checkpoint{Seqno: cp.Seqno, Digest: append([]byte(nil), cp.Digest[:]...)})
	}
	return resp, nil
}

// members is the configuration after a change that was made: a failure to
// read it back does not undo the change, so it is logged and the list left
// empty rather than the call failed.
func (a admin) members() []*galenapb.Member {
	ms, err := a.n.group.Members()
	if err != nil {
		a.n.lg.Warn("membership changed, but the new configuration could not be read back", zap.Error(err))
	}
	return membersProto(ms)
}

func (a admin) clusterID() string { return groupcomm.FormatClusterID(a.n.clusterID) }

// onLeader runs local if this member leads, or else remote against the
// leader, once: a forwarded request is not forwarded again.
func (a admin) onLeader(ctx context.Context, local func(context.Context) error, remote func(context.Context, galenapb.ClusterClient) error) error {
	err := local(ctx)
	if !errors.Is(err, groupcomm.ErrNotLeader) {
		return membershipStatus(err)
	}
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get(forwardedKey)) > 0 {
		return txn.ToStatus(fmt.Errorf("%w: membership change: this member no longer leads; retry", txn.ErrNotPrimary))
	}
	leader, err := a.leaderAddr(ctx)
	if err != nil {
		return err
	}
	return a.n.cfg.withCluster(ctx, leader, func(ctx context.Context, cc galenapb.ClusterClient) error {
		ctx = metadata.AppendToOutgoingContext(ctx, forwardedKey, a.n.cfg.ID)
		err := remote(ctx, cc)
		if _, ok := status.FromError(err); !ok && err != nil {
			return status.Errorf(codes.Unavailable, "membership change: leader %s: %v", leader, err)
		}
		return err
	})
}

// leaderAddr waits, within NotPrimaryTimeout, for this member to know a
// leader.
func (a admin) leaderAddr(ctx context.Context) (string, error) {
	t := time.NewTicker(monitorInterval / 4)
	defer t.Stop()
	deadline := time.Now().Add(a.n.cfg.Group.NotPrimaryTimeout)
	for {
		if addr := a.n.group.Status().LeaderAddr; addr != "" {
			return addr, nil
		}
		if time.Now().After(deadline) {
			return "", txn.ToStatus(fmt.Errorf("%w: membership change: no leader; retry", txn.ErrNotPrimary))
		}
		select {
		case <-ctx.Done():
			return "", status.FromContextError(ctx.Err()).Err()
		case <-t.C:
		}
	}
}

// membershipStatus maps groupcomm's membership errors to gRPC statuses.
func membershipStatus(err error) error {
	var code codes.Code
	switch {
	case err == nil:
		return nil
	case errors.Is(err, groupcomm.ErrMemberExists):
		code = codes.AlreadyExists
	case errors.Is(err, groupcomm.ErrUnknownMember):
		code = codes.NotFound
	case errors.Is(err, groupcomm.ErrLastVoter):
		code = codes.FailedPrecondition
	case errors.Is(err, groupcomm.ErrClosed):
		code = codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	default:
		code = codes.Unavailable
	}
	return status.Error(code, fmt.Sprint(err))
}

func membersProto(ms []groupcomm.Member) []*galenapb.Member {
	out := make([]*galenapb.Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, &galenapb.Member{Id: m.ID, Address: m.Addr, Voter: m.Voter})
	}
	return out
}
