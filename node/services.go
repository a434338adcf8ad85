package node

import (
	"context"
	"io"
	"math"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/certification"
	"github.com/galenadb/galena/groupcomm"
	"github.com/galenadb/galena/node/rpc"
	"github.com/galenadb/galena/storage"
	"github.com/galenadb/galena/txn"
	"google.golang.org/grpc"
)

// registerServices registers the KV and Cluster services (package rpc) on
// srv.
func (n *Node) registerServices(srv *grpc.Server) {
	kv := rpc.NewKV(n.svc, n.statusProto)
	kv.Intercept, kv.Closing = chainUnary(n.unaryInterceptors()), n.ctx.Done()
	galenapb.RegisterKVServer(srv, kv)
	galenapb.RegisterClusterServer(srv, rpc.NewCluster(rpc.ClusterConfig{
		ID: n.cfg.ID, ClusterID: groupcomm.FormatClusterID(n.clusterID), LeaderWait: n.cfg.Group.NotPrimaryTimeout,
		Dial: n.cfg.withCluster, CheckMember: checkMember, Logger: n.lg,
	}, clusterMember{n}))
}

// checkMember checks the id and address of a member to add as the
// member's own configuration would be checked.
func checkMember(id, addr string) error { return Config{ID: id, Addr: addr}.validateIdentity() }

// clusterMember is the member as its Cluster service sees it. The group is
// reached at each call: a member started failed has none, and serves no
// Cluster call (rpc.StatusOnly).
type clusterMember struct{ n *Node }

var _ rpc.Member = clusterMember{}

func (m clusterMember) Group() groupcomm.Status              { return m.n.group.Status() }
func (m clusterMember) Members() ([]groupcomm.Member, error) { return m.n.group.Members() }
func (m clusterMember) Originated() uint64                   { return m.n.group.Originated() }
func (m clusterMember) AddMember(ctx context.Context, id, addr string, voter bool) error {
	return m.n.group.AddMember(ctx, id, addr, voter)
}
func (m clusterMember) RemoveMember(ctx context.Context, id string) error {
	return m.n.group.RemoveMember(ctx, id)
}
func (m clusterMember) State() string { return m.n.Status().State }
func (m clusterMember) Backup(w io.Writer) (groupcomm.Position, error) {
	return m.n.group.Backup(w)
}
func (m clusterMember) Removed() { m.n.removed() }

// Applied is the applier's position and digest; an arbitrator has none.
func (m clusterMember) Applied() (groupcomm.Position, [32]byte, bool) {
	if m.n.applier == nil {
		return groupcomm.Position{}, [32]byte{}, false
	}
	at, d := m.n.applier.Digest()
	return at, d, true
}

// Checkpoints are the applier's recent checkpoints; an arbitrator has none.
func (m clusterMember) Checkpoints() []certification.Checkpoint {
	if m.n.applier == nil {
		return nil
	}
	return m.n.applier.Checkpoints()
}

// txnStore is storage as the txn service reads it: the outcome stored
// under a write-set id comes decoded.
type txnStore struct{ *storage.Store }

var _ txn.Store = txnStore{}

// Outcome returns the outcome stored for write-set id, if any.
func (s txnStore) Outcome(id []byte) (certification.Outcome, bool, error) {
	raw, _, ok, err := s.LookupID(id, math.MaxUint64)
	if err != nil || !ok {
		return certification.Outcome{}, false, err
	}
	o, err := certification.DecodeOutcome(raw)
	return o, err == nil, err
}
