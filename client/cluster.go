package client

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	"github.com/galenadb/galena/api/galenapb"
)

// Membership is a cluster's configuration as one member knows it.
type Membership struct {
	ClusterID string
	LeaderID  string // "" when the answering member knows no leader
	Members   []Member
}

// Member is one member of a cluster's configuration.
type Member struct {
	ID    string
	Addr  string // host:port, for peers and clients alike
	Voter bool   // false: a non-voter, catching up before promotion
}

// Members returns the cluster's configuration as the first endpoint that
// answers knows it, failing over like a read. It fails with ErrUnavailable
// when no endpoint answers and with errors.ErrUnsupported when the member
// has no Cluster service.
func (c *Client) Members(ctx context.Context) (Membership, error) {
	if err := c.check(ctx); err != nil {
		return Membership{}, err
	}
	var resp *galenapb.MemberListResponse
	_, err := c.callEndpoints(ctx, c.start(), func(ctx context.Context, ep *endpoint) (err error) {
		resp, err = ep.cluster.MemberList(ctx, &galenapb.MemberListRequest{})
		return err
	})
	if err != nil {
		return Membership{}, err
	}
	m := Membership{ClusterID: resp.GetClusterId(), LeaderID: resp.GetLeaderId()}
	for _, pm := range resp.GetMembers() {
		m.Members = append(m.Members, memberOf(pm))
	}
	return m, nil
}

// AddMember adds a member with id at addr ("host:port") to the cluster as a
// non-voter: it takes part in the cluster once it runs and has caught up.
// Any member takes the request; a follower passes it to the leader.
//
// It fails with ErrMemberExists when the id or the address is in use,
// ErrMemberRefused when the cluster refuses the change in its state, both
// with the server's message; ErrInvalidArgument for an empty id or address,
// without a round trip; and ErrIndeterminate when a member may have received
// the request but no answer came: the change may or may not have been made.
func (c *Client) AddMember(ctx context.Context, id, addr string) error {
	if id == "" || addr == "" {
		return fmt.Errorf("%w: add member: id and address are required", ErrInvalidArgument)
	}
	req := &galenapb.MemberAddRequest{Id: id, Address: addr}
	return c.change(ctx, func(ctx context.Context, cc galenapb.ClusterClient, opt grpc.CallOption) error {
		_, err := cc.MemberAdd(ctx, req, opt)
		return err
	})
}

// RemoveMember removes the member with id from the cluster, whether it is
// running or not. A running member removed stops. Any member takes the
// request; a follower passes it to the leader.
//
// It fails with ErrMemberNotFound for an unknown id, ErrMemberRefused when
// the cluster refuses the change (removing the last voter), both with the
// server's message; ErrInvalidArgument for an empty id, without a round trip;
// and ErrIndeterminate as AddMember does.
func (c *Client) RemoveMember(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("%w: remove member: an id is required", ErrInvalidArgument)
	}
	req := &galenapb.MemberRemoveRequest{Id: id}
	return c.change(ctx, func(ctx context.Context, cc galenapb.ClusterClient, opt grpc.CallOption) error {
		_, err := cc.MemberRemove(ctx, req, opt)
		return err
	})
}

// change sends a membership change to the endpoints in turn, like a read,
// but moves to the next endpoint only while no member can have received it:
// a resent change would be refused as a duplicate (or find its member gone)
// although the first one was made. A change that may have arrived and got no
// answer fails with ErrIndeterminate.
func (c *Client) change(ctx context.Context, fn func(context.Context, galenapb.ClusterClient, grpc.CallOption) error) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	_, err := c.callEndpoints(ctx, c.start(), func(ctx context.Context, ep *endpoint) error {
		var p peer.Peer
		err := fn(ctx, ep.cluster, grpc.Peer(&p))
		if err == nil {
			return nil
		}
		if p.Addr != nil && !refusedUnapplied(err) {
			return fmt.Errorf("%w: membership change sent to %s got no answer: %v", ErrIndeterminate, ep.addr, fromStatus(err))
		}
		return err
	})
	return err
}

func memberOf(m *galenapb.Member) Member {
	return Member{ID: m.GetId(), Addr: m.GetAddress(), Voter: m.GetVoter()}
}
