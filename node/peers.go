package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/groupcomm"
	"google.golang.org/grpc"
)

// clusterPeers answers the questions groupcomm's membership policy asks of
// other members, over their Cluster service, as a member: with TLS, it
// presents this member's certificate.
type clusterPeers struct{ n *Node }

var _ groupcomm.Peers = clusterPeers{}

// AskAdd asks the member at addr to add m, or to promote it.
func (p clusterPeers) AskAdd(ctx context.Context, addr string, m groupcomm.Member) error {
	req := &galenapb.MemberAddRequest{Id: m.ID, Address: m.Addr, Voter: m.Voter, ClusterId: groupcomm.FormatClusterID(p.n.clusterID)}
	return p.n.cfg.withCluster(ctx, addr, func(ctx context.Context, cc galenapb.ClusterClient) error {
		_, err := cc.MemberAdd(ctx, req)
		return err
	})
}

// Configuration returns the configuration the member at addr holds, and
// the leader it knows; a member of another cluster is an error.
func (p clusterPeers) Configuration(ctx context.Context, addr string) ([]groupcomm.Member, string, error) {
	ml, err := p.n.cfg.memberList(ctx, addr)
	if err != nil {
		return nil, "", err
	}
	if want := groupcomm.FormatClusterID(p.n.clusterID); ml.GetClusterId() != want {
		return nil, "", fmt.Errorf("node: %s is a member of cluster %s, not %s", addr, ml.GetClusterId(), want)
	}
	ms := make([]groupcomm.Member, 0, len(ml.GetMembers()))
	for _, m := range ml.GetMembers() {
		ms = append(ms, groupcomm.Member{ID: m.GetId(), Addr: m.GetAddress(), Voter: m.GetVoter()})
	}
	return ms, ml.GetLeaderId(), nil
}

// Applied returns member m's applied log index, whether it is an
// arbitrator (it has no digest) and the commands it has ordered. A member
// that predates group commit answers no index: its seqnos are its log
// indexes.
func (p clusterPeers) Applied(ctx context.Context, m groupcomm.Member) (groupcomm.PeerState, error) {
	var d *galenapb.DigestResponse
	cc, err := p.n.conns.get(&p.n.cfg, m.Addr)
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, joinTimeout)
		defer cancel()
		d, err = galenapb.NewClusterClient(cc).Digest(ctx, &galenapb.DigestRequest{PositionOnly: true})
	}
	switch {
	case err != nil:
		return groupcomm.PeerState{}, err
	case d.GetId() != m.ID:
		return groupcomm.PeerState{}, fmt.Errorf("node: %s answers as %s, not %s", m.Addr, d.GetId(), m.ID)
	}
	st := groupcomm.PeerState{Applied: d.GetAppliedIndex(), Arbitrator: len(d.GetDigest()) == 0, Originated: d.GetOriginated()}
	if st.Applied == 0 {
		st.Applied = d.GetAppliedSeqno()
	}
	return st, nil
}

// peerConns keeps a gRPC connection per member address for Applied, which
// flow control asks of every member ten times a second: a connection per
// question would cost a handshake (several round trips across regions)
// each time. SetTLS drops them, so that the next question dials with the
// new pair.
type peerConns struct {
	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

var errPeerConnsClosed = errors.New("node: closed")

// get returns the connection to addr, made by cfg.dialMember.
func (p *peerConns) get(cfg *Config, addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errPeerConnsClosed
	}
	if cc := p.conns[addr]; cc != nil {
		return cc, nil
	}
	cc, err := cfg.dialMember(addr)
	if err != nil {
		return nil, err
	}
	if p.conns == nil {
		p.conns = map[string]*grpc.ClientConn{}
	}
	p.conns[addr] = cc
	return cc, nil
}

// dialMember returns a gRPC connection to the member at addr, as a member:
// through PeerDial if set, and with TLS presenting this member's
// certificate.
func (c *Config) dialMember(addr string) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(c.peerCredentials())}
	if dial := c.PeerDial; dial != nil {
		timeout := c.Group.DialTimeout
		opts = append(opts, grpc.WithContextDialer(func(_ context.Context, addr string) (net.Conn, error) {
			return dial(addr, timeout)
		}))
	}
	return grpc.NewClient("passthrough:///"+addr, opts...) // the dialer gets addr as the member named it
}

// reset closes every connection; with closing, for good.
func (p *peerConns) reset(closing bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cc := range p.conns {
		cc.Close()
	}
	p.conns, p.closed = nil, p.closed || closing
}
