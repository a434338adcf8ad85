package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/galenadb/galena/api"
	"github.com/galenadb/galena/api/galenapb"
)

// MemberStatus is one member's report of its own state.
type MemberStatus struct {
	ID        string
	Addr      string
	ClusterID string
	// Arbitrator is a member that votes and stores no data.
	Arbitrator bool
	RaftState  string // Leader, Follower, Candidate or Shutdown
	LeaderID   string // "" when the member knows no leader
	// Term is the member's current Raft term. AppliedSeqno is the highest
	// seqno the member applied, AppliedIndex the log index it was reached
	// at; CommitIndex and LastIndex are its Raft log's, and ApplyLag the
	// committed entries it has yet to apply.
	Term, AppliedSeqno, AppliedIndex, CommitIndex, LastIndex, ApplyLag uint64
	// LastContact is how long ago the member last heard from the leader;
	// negative when it never did.
	LastContact time.Duration
	// Commits and CertFailures count the write-sets the member certified
	// as committed and as conflicts.
	Commits, CertFailures uint64
	// State is SYNCED, JOINED, JOINING, DONOR, NON_PRIMARY or FAILED.
	State string
	// Error says why the member stopped (FAILED), or why it cannot catch
	// up by itself.
	Error string
	// Members is the cluster's configuration as the member knows it.
	Members []Member
	// CertExpires is when the member's TLS certificate expires; zero
	// without TLS.
	CertExpires time.Time
	// DataBytes is the size of the member's data directory when it last
	// measured it; Version is its binary's version.
	DataBytes int64
	Version   string
	// Transfer is the state transfer the member takes part in, if any.
	Transfer Transfer
	// FlowControl is, on the leader, whether a member applying too far
	// behind holds commits back.
	FlowControl FlowControl
}

// Transfer is the progress of a state transfer on one member: Phase is
// "sending" (a donor), "receiving" or "restoring" (a joiner), "" when none
// runs; Bytes were sent, received or restored, of Total, the snapshot's
// size (0 while receiving: only the sender knows it).
type Transfer struct {
	Phase        string
	Bytes, Total int64
}

// FlowControl is a leader's flow control: PausedBy is the member whose
// backlog (Backlog log entries) holds new commits back now, "" while they
// flow; Paused is how long they were held back while the member led;
// Lagging are the members that held them back too long, which commits no
// longer wait for until they catch up.
type FlowControl struct {
	PausedBy string
	Backlog  uint64
	Paused   time.Duration
	Lagging  []string
}

// Role is "data" or "arbitrator" (votes, stores no data); "" for a status
// without the member's answer.
func (s MemberStatus) Role() string {
	switch {
	case s.RaftState == "":
		return ""
	case s.Arbitrator:
		return "arbitrator"
	}
	return "data"
}

// MarshalJSON writes s as `galena status --json` prints it and a member's
// /status serves it: snake_case names (id, address, raft_state, term,
// applied_seqno, ...), last_contact_ms in milliseconds (-1: never),
// cert_expires in RFC 3339, role data or arbitrator, and cluster_size, the
// members of the configuration s knows.
func (s MemberStatus) MarshalJSON() ([]byte, error) {
	j := api.StatusView{
		ID: s.ID, Address: s.Addr, ClusterID: s.ClusterID, Role: s.Role(), RaftState: s.RaftState, LeaderID: s.LeaderID,
		Term: s.Term, CommitIndex: s.CommitIndex, LastIndex: s.LastIndex, AppliedIndex: s.AppliedIndex,
		AppliedSeqno: s.AppliedSeqno, ApplyLag: s.ApplyLag, LastContactMs: -1, Commits: s.Commits, CertFailures: s.CertFailures,
		State: s.State, Error: s.Error, ClusterSize: len(s.Members), DataBytes: s.DataBytes, Version: s.Version,
		TransferPhase: s.Transfer.Phase, TransferBytes: s.Transfer.Bytes, TransferTotal: s.Transfer.Total,
		FlowControlPausedBy: s.FlowControl.PausedBy, FlowControlBacklog: s.FlowControl.Backlog,
		FlowControlPausedMs: s.FlowControl.Paused.Milliseconds(), FlowControlLagging: s.FlowControl.Lagging,
	}
	if s.LastContact >= 0 {
		j.LastContactMs = s.LastContact.Milliseconds()
	}
	if !s.CertExpires.IsZero() {
		j.CertExpires = s.CertExpires.Format(time.RFC3339)
	}
	return json.Marshal(j)
}

// StatusOf is the MemberStatus of a member's Status answer.
func StatusOf(r *galenapb.StatusResponse) MemberStatus {
	s := MemberStatus{
		ID: r.GetId(), Addr: r.GetAddress(), ClusterID: r.GetClusterId(), Arbitrator: r.GetArbitrator(),
		RaftState: r.GetRaftState(), LeaderID: r.GetLeaderId(), Term: r.GetTerm(),
		AppliedSeqno: r.GetAppliedSeqno(), AppliedIndex: r.GetAppliedIndex(), CommitIndex: r.GetCommitIndex(),
		LastIndex: r.GetLastIndex(), ApplyLag: r.GetApplyLag(),
		LastContact: -1, Commits: r.GetCommits(), CertFailures: r.GetCertFailures(), State: r.GetState(), Error: r.GetError(),
		DataBytes: r.GetDataBytes(), Version: r.GetVersion(),
		Transfer: Transfer{Phase: r.GetTransferPhase(), Bytes: r.GetTransferBytes(), Total: r.GetTransferTotal()},
		FlowControl: FlowControl{PausedBy: r.GetFlowControlPausedBy(), Backlog: r.GetFlowControlBacklog(),
			Paused: time.Duration(r.GetFlowControlPausedMs()) * time.Millisecond, Lagging: r.GetFlowControlLagging()},
	}
	if ms := r.GetLastContactMs(); ms >= 0 {
		s.LastContact = time.Duration(ms) * time.Millisecond
	}
	if u := r.GetCertExpiryUnix(); u != 0 {
		s.CertExpires = time.Unix(u, 0).UTC()
	}
	for _, m := range r.GetMembers() {
		s.Members = append(s.Members, memberOf(m))
	}
	return s
}

// MemberDigest is one member's running digest of what it applied: equal
// digests at equal seqnos mean the members applied the same history.
type MemberDigest struct {
	ID    string
	State string
	// AppliedSeqno is the highest seqno the member applied; Digest is the
	// digest there, empty for a member that keeps none (an arbitrator).
	AppliedSeqno uint64
	Digest       []byte
	// Checkpoints are the digests the member kept at recent seqnos.
	Checkpoints []Checkpoint
}

// Checkpoint is a member's digest at one seqno.
type Checkpoint struct {
	Seqno  uint64
	Digest []byte
}

// Status asks the member at addr ("host:port") for its own status. The
// member need not be one of Config.Endpoints: Status probes it on a
// connection of its own, as Digest does.
//
// A probe connects with the client's TLS and waits at most
// Config.DialTimeout for the connection; the call itself is bounded by ctx
// alone. It does not fail over: the answer is that member's. It fails with
// ErrUnavailable when the connection is not made within DialTimeout (the
// error then wraps context.DeadlineExceeded too) or fails (wrapping the
// transport's gRPC status, whose message says why); with ctx's error when
// ctx ends while it connects; with ErrClosed after Close, which does not
// interrupt a probe in flight; and with ErrInvalidArgument for an empty or
// malformed addr. An error the member returns is translated as for any
// call, and keeps the member's gRPC status.
func (c *Client) Status(ctx context.Context, addr string) (MemberStatus, error) {
	var resp *galenapb.StatusResponse
	err := c.probe(ctx, addr, func(ctx context.Context, conn *grpc.ClientConn) (err error) {
		resp, err = galenapb.NewKVClient(conn).Status(ctx, &galenapb.StatusRequest{})
		return err
	})
	if err != nil {
		return MemberStatus{}, err
	}
	return StatusOf(resp), nil
}

// Digest asks the member at addr for its digest and recent checkpoints,
// probing it as Status does.
func (c *Client) Digest(ctx context.Context, addr string) (MemberDigest, error) {
	var resp *galenapb.DigestResponse
	err := c.probe(ctx, addr, func(ctx context.Context, conn *grpc.ClientConn) (err error) {
		resp, err = galenapb.NewClusterClient(conn).Digest(ctx, &galenapb.DigestRequest{})
		return err
	})
	if err != nil {
		return MemberDigest{}, err
	}
	d := MemberDigest{ID: resp.GetId(), State: resp.GetState(), AppliedSeqno: resp.GetAppliedSeqno(), Digest: resp.GetDigest()}
	for _, cp := range resp.GetCheckpoints() {
		d.Checkpoints = append(d.Checkpoints, Checkpoint{Seqno: cp.GetSeqno(), Digest: cp.GetDigest()})
	}
	return d, nil
}

// probe runs fn on a connection of its own to the member at addr, once it
// is connected (see connect), and closes the connection.
func (c *Client) probe(ctx context.Context, addr string, fn func(context.Context, *grpc.ClientConn) error) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	if addr == "" {
		return fmt.Errorf("%w: probe: a member address is required", ErrInvalidArgument)
	}
	// gRPC's own connect timeout (20 s) is longer than the wait in connect,
	// so a connection that hangs is always reported as not connected.
	conn, err := grpc.NewClient(addr, connOptions(c.cfg)...)
	if err != nil {
		return fmt.Errorf("%w: member %q: %v", ErrInvalidArgument, addr, err)
	}
	defer conn.Close()
	if err := c.connect(ctx, conn, addr); err != nil {
		return err
	}
	if err := fn(ctx, conn); err != nil {
		return probeError(addr, err)
	}
	return nil
}

// connect waits until conn is ready or has failed, at most DialTimeout, so
// that a member that accepts connections but never answers (a process
// stopped with SIGSTOP) fails within it rather than at ctx's deadline. A
// failed connection is left to the call, which then fails at once with the
// transport's error.
func (c *Client) connect(ctx context.Context, conn *grpc.ClientConn, addr string) error {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	conn.Connect()
	for s := conn.GetState(); s != connectivity.Ready && s != connectivity.TransientFailure; s = conn.GetState() {
		if !conn.WaitForStateChange(dctx, s) {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fmt.Errorf("%w: %s not connected within %v: %w", ErrUnavailable, addr, c.cfg.DialTimeout, context.DeadlineExceeded)
		}
	}
	return nil
}

// probeError translates the error of a probe's call into the client's
// errors, as fromStatus does, and keeps its gRPC status: the member's or
// the transport's own words.
func probeError(addr string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	if sentinel := sentinelOf(st); sentinel != nil {
		return fmt.Errorf("%w: %s: %w", sentinel, addr, err)
	}
	return fmt.Errorf("client: %s: %w", addr, err)
}
