package client

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Status and Digest ask the member named, even one that is not an
// endpoint of the client, and answer with its own report.
func TestProbeAnswers(t *testing.T) {
	nodes := newFakeCluster(t, 2)
	nodes[0].store.advance(6)
	c := newTestClient(t, nodes[0].addr)
	ctx := testCtx(t)
	st, err := c.Status(ctx, nodes[1].addr)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.ID != "n2" || st.Addr != nodes[1].addr || st.ClusterID != fakeClusterID || st.LeaderID != "n1" ||
		st.RaftState != "Follower" || st.AppliedSeqno != 7 || st.State != "SYNCED" || st.LastContact != 12*time.Millisecond {
		t.Fatalf("Status = %+v", st)
	}
	if len(st.Members) != 2 || st.Members[0] != (Member{ID: "n1", Addr: nodes[0].addr, Voter: true}) {
		t.Fatalf("Status members = %+v", st.Members)
	}
	if st, err := c.Status(ctx, nodes[0].addr); err != nil || st.RaftState != "Leader" || st.LastContact >= 0 {
		t.Fatalf("leader's Status = %+v, %v; want a leader that never heard from one", st, err)
	}

	d, err := c.Digest(ctx, nodes[1].addr)
	if err != nil {
		t.Fatalf("Digest: %v", err)
	}
	if d.AppliedSeqno != 7 || !bytes.Equal(d.Digest, fakeDigest(7)) || d.State != "SYNCED" ||
		len(d.Checkpoints) != 1 || d.Checkpoints[0].Seqno != 1 || !bytes.Equal(d.Checkpoints[0].Digest, fakeDigest(1)) {
		t.Fatalf("Digest = %+v", d)
	}
	if n := len(nodes[0].callsOf("Digest")); n != 0 {
		t.Fatalf("the client's endpoint got %d Digest calls; want none: the probe goes to the member named", n)
	}
}

// A member that accepts connections and never answers fails a probe
// within DialTimeout, as unavailable and not connected; one that refuses
// connections fails it at once with the transport's status.
func TestProbeUnreachable(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	cfg := DefaultConfig()
	cfg.Endpoints, cfg.DialTimeout = []string{n.addr}, 300*time.Millisecond
	c := newClientCfg(t, cfg)
	ctx := testCtx(t)

	hung := newHungListener(t)
	began := time.Now()
	_, err := c.Status(ctx, hung.addr())
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not connected within 300ms") {
		t.Fatalf("Status of a hung member = %v; want ErrUnavailable, not connected within 300ms", err)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Fatalf("took %v with DialTimeout 300ms", d)
	}

	_, err = c.Digest(ctx, deadAddr(t))
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || status.Code(err) != codes.Unavailable {
		t.Fatalf("Digest of a dead address = %v; want ErrUnavailable with the transport's status", err)
	}
}

// A member's refusal keeps its status, translated as for any call.
func TestProbeRefusal(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	n.setHooks(func(context.Context, string, proto.Message) error {
		return status.Error(codes.PermissionDenied, "role read may not")
	}, nil)
	c := newTestClient(t, n.addr)
	_, err := c.Digest(testCtx(t), n.addr)
	var se interface{ GRPCStatus() *status.Status }
	if !errors.Is(err, ErrPermissionDenied) || !errors.As(err, &se) || se.GRPCStatus().Message() != "role read may not" {
		t.Fatalf("Digest = %v; want ErrPermissionDenied keeping the member's message", err)
	}
}

func TestProbeArguments(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	ctx := testCtx(t)
	if _, err := c.Status(ctx, ""); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Status of no address = %v; want ErrInvalidArgument", err)
	}
	_ = c.Close()
	if _, err := c.Digest(ctx, n.addr); !errors.Is(err, ErrClosed) {
		t.Fatalf("Digest after Close = %v; want ErrClosed", err)
	}
}
