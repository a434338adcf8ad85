package client

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/galenadb/galena/api"
	"github.com/galenadb/galena/api/galenapb"
)

func mustMembers(t *testing.T, c *Client) Membership {
	t.Helper()
	m, err := c.Members(testCtx(t))
	if err != nil {
		t.Fatalf("Members: %v", err)
	}
	return m
}

func memberByID(m Membership, id string) (Member, bool) {
	for _, mb := range m.Members {
		if mb.ID == id {
			return mb, true
		}
	}
	return Member{}, false
}

func TestMembers(t *testing.T) {
	nodes := newFakeCluster(t, 2)
	c := newTestClient(t, deadAddr(t), nodes[1].addr)
	m := mustMembers(t, c)
	want := Membership{ClusterID: fakeClusterID, LeaderID: "n1", Members: []Member{
		{ID: "n1", Addr: nodes[0].addr, Voter: true},
		{ID: "n2", Addr: nodes[1].addr, Voter: true},
	}}
	if m.ClusterID != want.ClusterID || m.LeaderID != want.LeaderID || len(m.Members) != 2 ||
		m.Members[0] != want.Members[0] || m.Members[1] != want.Members[1] {
		t.Fatalf("Members = %+v; want %+v", m, want)
	}
	if got := c.start(); got != 1 {
		t.Fatalf("preferred endpoint = %d; want 1 (the live one)", got)
	}
}

func TestAddAndRemoveMember(t *testing.T) {
	nodes := newFakeCluster(t, 3)
	c := newTestClient(t, nodes[2].addr) // a follower: the fake leader is n1
	ctx := testCtx(t)
	if err := c.AddMember(ctx, "n4", "127.0.0.1:7004"); err != nil {
		t.Fatalf("AddMember: %v", err)
	}
	req := lastReq[*galenapb.MemberAddRequest](t, nodes[2], "MemberAdd")
	if req.Id != "n4" || req.Address != "127.0.0.1:7004" || req.Voter || req.ClusterId != "" {
		t.Fatalf("MemberAdd request %v; want n4 at 127.0.0.1:7004 as a non-voter", req)
	}
	if m, ok := memberByID(mustMembers(t, c), "n4"); !ok || m.Voter || m.Addr != "127.0.0.1:7004" {
		t.Fatalf("after AddMember, n4 = %+v (listed %v); want a non-voter at 127.0.0.1:7004", m, ok)
	}
	if err := c.RemoveMember(ctx, "n4"); err != nil {
		t.Fatalf("RemoveMember(n4): %v", err)
	}
	if err := c.RemoveMember(ctx, "n1"); err != nil {
		t.Fatalf("RemoveMember(n1): %v", err)
	}
	m := mustMembers(t, c)
	if _, ok := memberByID(m, "n4"); ok || len(m.Members) != 2 {
		t.Fatalf("after removing n4 and n1, members %+v", m.Members)
	}
}

// Each refusal comes back as its sentinel with the server's message.
func TestMembershipRefusals(t *testing.T) {
	nodes := newFakeCluster(t, 2)
	c := newTestClient(t, addrsOf(nodes)...)
	ctx := testCtx(t)
	if err := c.RemoveMember(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		want error
		msg  string
	}{
		{"id in use", func() error { return c.AddMember(ctx, "n1", "127.0.0.1:9") }, ErrMemberExists, "id n1 is in use by " + nodes[0].addr},
		{"address in use", func() error { return c.AddMember(ctx, "n9", nodes[0].addr) }, ErrMemberExists, "address " + nodes[0].addr + " is in use"},
		{"unknown id", func() error { return c.RemoveMember(ctx, "n7") }, ErrMemberNotFound, "no member n7"},
		{"last voter", func() error { return c.RemoveMember(ctx, "n1") }, ErrMemberRefused, "n1 is the last voter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v; want %v with %q", err, tt.want, tt.msg)
			}
			if errors.Is(err, ErrNotFound) || errors.Is(err, ErrIndeterminate) {
				t.Fatalf("got %v; a refusal is neither a missing key nor indeterminate", err)
			}
		})
	}
	if n := len(nodes[1].callsOf("MemberAdd")) + len(nodes[1].callsOf("MemberRemove")); n != 0 {
		t.Fatalf("the second endpoint received %d changes; refusals must not fail over", n)
	}
}

func TestMembershipArgumentsCheckedLocally(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	ctx := testCtx(t)
	for name, err := range map[string]error{
		"add without id":      c.AddMember(ctx, "", "127.0.0.1:1"),
		"add without address": c.AddMember(ctx, "n2", ""),
		"remove without id":   c.RemoveMember(ctx, ""),
	} {
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s = %v; want ErrInvalidArgument", name, err)
		}
	}
	if got := len(n.callsOf("MemberAdd")) + len(n.callsOf("MemberRemove")); got != 0 {
		t.Fatalf("server received %d calls; want none", got)
	}
}

// A change that surely reached no member moves to the next endpoint: the
// endpoint is down, or the member refused it as not primary.
func TestMembershipChangeFailsOver(t *testing.T) {
	nodes := newFakeCluster(t, 2)
	nodes[0].setHooks(func(context.Context, string, proto.Message) error {
		return reasonErr(codes.Unavailable, api.ReasonNotPrimary, "cut off")
	}, nil)
	c := newTestClient(t, deadAddr(t), nodes[0].addr, nodes[1].addr)
	if err := c.AddMember(testCtx(t), "n3", "127.0.0.1:7003"); err != nil {
		t.Fatalf("AddMember: %v", err)
	}
	if got := len(nodes[1].callsOf("MemberAdd")); got != 1 {
		t.Fatalf("the primary member received %d MemberAdd; want 1", got)
	}
	if got := c.start(); got != 2 {
		t.Fatalf("preferred endpoint = %d; want 2", got)
	}
}

// A change whose answer is lost after it was made is not resent, which
// would be refused as a duplicate: the outcome is indeterminate.
func TestMembershipChangeWithoutAnswerIsIndeterminate(t *testing.T) {
	nodes := newFakeCluster(t, 2)
	nodes[0].setHooks(nil, func(context.Context, string, proto.Message) error {
		return status.Error(codes.Unavailable, "connection reset after the change")
	})
	c := newTestClient(t, addrsOf(nodes)...)
	ctx := testCtx(t)
	err := c.AddMember(ctx, "n3", "127.0.0.1:7003")
	if !errors.Is(err, ErrIndeterminate) || !strings.Contains(err.Error(), "connection reset after the change") {
		t.Fatalf("AddMember = %v; want ErrIndeterminate with the cause", err)
	}
	if errors.Is(err, ErrUnavailable) {
		t.Fatalf("AddMember = %v; an indeterminate change must not look unavailable", err)
	}
	if got := len(nodes[1].callsOf("MemberAdd")); got != 0 {
		t.Fatalf("the change was resent to the next endpoint (%d calls)", got)
	}
	if m, _ := nodes[1].store.memberList(nil); len(m.Members) != 3 {
		t.Fatalf("the fake did not make the change: members %v", m.Members)
	}
	err = c.RemoveMember(ctx, "n3")
	if !errors.Is(err, ErrIndeterminate) {
		t.Fatalf("RemoveMember = %v; want ErrIndeterminate", err)
	}
}

func TestMembershipWithoutClusterService(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	n.setHooks(func(context.Context, string, proto.Message) error {
		return status.Error(codes.Unimplemented, "unknown service galena.v1.Cluster")
	}, nil)
	c := newTestClient(t, n.addr)
	ctx := testCtx(t)
	if _, err := c.Members(ctx); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Members = %v; want errors.ErrUnsupported", err)
	}
	if err := c.AddMember(ctx, "n2", "127.0.0.1:7002"); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("AddMember = %v; want errors.ErrUnsupported", err)
	}
}

func TestMembershipUnavailable(t *testing.T) {
	c := newTestClient(t, deadAddr(t), deadAddr(t))
	ctx := testCtx(t)
	if _, err := c.Members(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Members = %v; want ErrUnavailable", err)
	}
	// Never sent: definitely not made.
	if err := c.RemoveMember(ctx, "n1"); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrIndeterminate) {
		t.Fatalf("RemoveMember = %v; want ErrUnavailable only", err)
	}
}

func TestMembershipAfterClose(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	_ = c.Close()
	ctx := testCtx(t)
	_, errMembers := c.Members(ctx)
	for name, err := range map[string]error{
		"Members":      errMembers,
		"AddMember":    c.AddMember(ctx, "n2", "127.0.0.1:7002"),
		"RemoveMember": c.RemoveMember(ctx, "n1"),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v; want ErrClosed", name, err)
		}
	}
}
