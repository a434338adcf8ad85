package rpc

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/galenadb/galena/api"
	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/certification"
	"github.com/galenadb/galena/groupcomm"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// fakeMember is a member of a group that leads, or knows leaderAddr (""
// for none). Only a leader changes the configuration.
type fakeMember struct {
	leads      bool
	leaderAddr string

	mu      sync.Mutex
	members []groupcomm.Member
	removed bool

	backup []byte // what Backup writes, in one Write
}

func (m *fakeMember) Group() groupcomm.Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return groupcomm.Status{LeaderAddr: m.leaderAddr, Members: append([]groupcomm.Member(nil), m.members...)}
}

func (m *fakeMember) Members() ([]groupcomm.Member, error) { return m.Group().Members, nil }
func (m *fakeMember) Originated() uint64                   { return 7 }

func (m *fakeMember) AddMember(_ context.Context, id, addr string, _ bool) error {
	if !m.leads {
		return groupcomm.ErrNotLeader
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range m.members {
		if x.ID == id || x.Addr == addr {
			return groupcomm.ErrMemberExists
		}
	}
	m.members = append(m.members, groupcomm.Member{ID: id, Addr: addr})
	return nil
}

func (m *fakeMember) RemoveMember(_ context.Context, id string) error {
	if !m.leads {
		return groupcomm.ErrNotLeader
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, x := range m.members {
		if x.ID == id {
			m.members = append(m.members[:i], m.members[i+1:]...)
			return nil
		}
	}
	return groupcomm.ErrUnknownMember
}

func (m *fakeMember) State() string { return "SYNCED" }

func (m *fakeMember) Applied() (groupcomm.Position, [32]byte, bool) {
	return groupcomm.Position{}, [32]byte{}, false
}
func (m *fakeMember) Checkpoints() []certification.Checkpoint { return nil }

func (m *fakeMember) Backup(w io.Writer) (groupcomm.Position, error) {
	if m.backup == nil {
		return groupcomm.Position{}, groupcomm.ErrArbitrator
	}
	_, err := w.Write(m.backup)
	return groupcomm.Position{Index: 7, Seqno: 9}, err
}

func (m *fakeMember) Removed() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.removed = true
}

// newTestCluster is the Cluster service of m, member id of cluster "c1";
// it checks no id or address beyond their presence.
func newTestCluster(t *testing.T, id string, m *fakeMember) *Cluster {
	return NewCluster(ClusterConfig{ID: id, ClusterID: "c1", Dial: dialInsecure,
		CheckMember: func(string, string) error { return nil }, Logger: zaptest.NewLogger(t)}, m)
}

func dialInsecure(ctx context.Context, addr string, fn func(context.Context, galenapb.ClusterClient) error) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(ctx, galenapb.NewClusterClient(conn))
}

// serveCluster serves c on a loopback port until the test ends.
func serveCluster(t *testing.T, c *Cluster) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	galenapb.RegisterClusterServer(srv, c)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String()
}

// Each refusal of a membership change carries its code and reason.
func TestMembershipRefusals(t *testing.T) {
	leader := &fakeMember{leads: true, members: []groupcomm.Member{{ID: "n1", Addr: "h:1"}}}
	c := newTestCluster(t, "n1", leader)
	ctx := t.Context()
	add := func(req *galenapb.MemberAddRequest) error { _, err := c.MemberAdd(ctx, req); return err }
	remove := func(id string) error {
		_, err := c.MemberRemove(ctx, &galenapb.MemberRemoveRequest{Id: id})
		return err
	}
	for _, tc := range []struct {
		name   string
		err    error
		code   codes.Code
		reason string
	}{
		{"add without an address", add(&galenapb.MemberAddRequest{Id: "n2"}), codes.InvalidArgument, ""},
		{"add of another cluster", add(&galenapb.MemberAddRequest{Id: "n2", Address: "h:2", ClusterId: "c2"}), codes.FailedPrecondition, api.ReasonMemberRefused},
		{"add of an id in use", add(&galenapb.MemberAddRequest{Id: "n1", Address: "h:2"}), codes.AlreadyExists, api.ReasonMemberExists},
		{"remove without an id", remove(""), codes.InvalidArgument, ""},
		{"remove of an unknown id", remove("n9"), codes.NotFound, api.ReasonMemberNotFound},
	} {
		if got := status.Code(tc.err); got != tc.code || reasonOf(tc.err) != tc.reason {
			t.Errorf("%s: %v %q (%v); want %v %q", tc.name, got, reasonOf(tc.err), tc.err, tc.code, tc.reason)
		}
	}
}

// A follower passes a change on to the leader, once; a follower that knows
// no leader refuses it as not primary.
func TestMembershipForwarding(t *testing.T) {
	leader := &fakeMember{leads: true, members: []groupcomm.Member{{ID: "n1", Addr: "h:1"}, {ID: "n2", Addr: "h:2"}}}
	follower := &fakeMember{leaderAddr: serveCluster(t, newTestCluster(t, "n1", leader))}
	c := newTestCluster(t, "n2", follower)
	ctx := t.Context()
	if _, err := c.MemberAdd(ctx, &galenapb.MemberAddRequest{Id: "n3", Address: "h:3"}); err != nil {
		t.Fatalf("add through a follower: %v", err)
	}
	if _, err := c.MemberRemove(ctx, &galenapb.MemberRemoveRequest{Id: "n2"}); err != nil {
		t.Fatalf("remove the follower through itself: %v", err)
	}
	if got := leader.Group().Members; len(got) != 2 || got[1].ID != "n3" || !follower.removed {
		t.Fatalf("leader holds %v, follower removed %v; want n1 and n3, and the follower stopped", got, follower.removed)
	}
	fwd := metadata.NewIncomingContext(ctx, metadata.Pairs(forwardedKey, "n9"))
	_, err := c.MemberRemove(fwd, &galenapb.MemberRemoveRequest{Id: "n3"})
	if status.Code(err) != codes.Unavailable || reasonOf(err) != api.ReasonNotPrimary || len(leader.Group().Members) != 2 {
		t.Fatalf("forwarded change on a follower: %v; want NOT_PRIMARY, not passed on", err)
	}
	lost := newTestCluster(t, "n2", &fakeMember{})
	_, err = lost.MemberRemove(ctx, &galenapb.MemberRemoveRequest{Id: "n3"})
	if status.Code(err) != codes.Unavailable || reasonOf(err) != api.ReasonNotPrimary {
		t.Fatalf("change on a follower without a leader: %v; want NOT_PRIMARY", err)
	}
}
