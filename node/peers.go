package node

import (
	"context"
	"fmt"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/groupcomm"
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

// Applied returns member m's applied log index, and whether it is an
// arbitrator (it has no digest). A member that predates group commit
// answers no index: its seqnos are its log indexes.
func (p clusterPeers) Applied(ctx context.Context, m groupcomm.Member) (uint64, bool, error) {
	var d *galenapb.DigestResponse
	err := p.n.cfg.withCluster(ctx, m.Addr, func(ctx context.Context, cc galenapb.ClusterClient) (err error) {
		d, err = cc.Digest(ctx, &galenapb.DigestRequest{})
		return err
	})
	switch {
	case err != nil:
		return 0, false, err
	case d.GetId() != m.ID:
		return 0, false, fmt.Errorf("node: %s answers as %s, not %s", m.Addr, d.GetId(), m.ID)
	}
	arbitrator := len(d.GetDigest()) == 0
	if d.GetAppliedIndex() == 0 {
		return d.GetAppliedSeqno(), arbitrator, nil
	}
	return d.GetAppliedIndex(), arbitrator, nil
}
