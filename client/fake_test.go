package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/galenadb/galena/api"
	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/api/writesetpb"
	noderpc "github.com/galenadb/galena/node/rpc"
)

// version is one committed value of a key in the fake store.
type version struct {
	seq   uint64
	value []byte
	del   bool
}

// fakeStore is the replicated state of a fake cluster: every fakeNode
// sharing it has applied everything. It keeps every version, certifies
// first-committer-wins and remembers each write-set id's outcome.
type fakeStore struct {
	mu       sync.Mutex
	seq      uint64
	data     map[string][]version
	outcomes map[string]*galenapb.CommitResponse
	members  []*galenapb.Member // the configuration; fakeNodes add themselves
}

// newFakeStore returns an empty store at seqno 1: like a Raft log, whose
// first entry is the cluster configuration, it never serves snapshot 0 (which
// the wire contract reserves for "no snapshot yet").
func newFakeStore() *fakeStore {
	return &fakeStore{seq: 1, data: map[string][]version{}, outcomes: map[string]*galenapb.CommitResponse{}}
}

// advance moves the store on by n seqnos, as if others had committed.
func (s *fakeStore) advance(n uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq += n
}

func (s *fakeStore) appliedSeqno() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

// snapshotLocked picks the snapshot of a read.
func (s *fakeStore) snapshotLocked(snap, minSeqno uint64) (uint64, error) {
	switch {
	case snap == 0 && minSeqno > s.seq, snap > s.seq:
		return 0, reasonErr(codes.FailedPrecondition, api.ReasonSnapshotUnavailable, "not applied yet")
	case snap == 0:
		return s.seq, nil
	}
	return snap, nil
}

// visibleLocked returns the version of key at snap, if any and not deleted.
func (s *fakeStore) visibleLocked(key string, snap uint64) (version, bool) {
	vs := s.data[key]
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].seq <= snap {
			return vs[i], !vs[i].del
		}
	}
	return version{}, false
}

func (s *fakeStore) get(req *galenapb.GetRequest) (*galenapb.GetResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, err := s.snapshotLocked(req.Snapshot, req.MinSeqno)
	if err != nil {
		return nil, err
	}
	v, ok := s.visibleLocked(string(req.Key), snap)
	return &galenapb.GetResponse{Found: ok, Value: v.value, Snapshot: snap}, nil
}

func (s *fakeStore) scan(req *galenapb.ScanRequest, pageCap int) (*galenapb.ScanResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, err := s.snapshotLocked(req.Snapshot, req.MinSeqno)
	if err != nil {
		return nil, err
	}
	resp := &galenapb.ScanResponse{Snapshot: snap}
	for _, k := range s.keysLocked(req.Start, req.End, snap) {
		if req.Limit > 0 && len(resp.Kvs) == int(req.Limit) {
			break
		}
		if pageCap > 0 && len(resp.Kvs) == pageCap {
			resp.More = true
			break
		}
		v, _ := s.visibleLocked(k, snap)
		resp.Kvs = append(resp.Kvs, &galenapb.KeyValue{Key: []byte(k), Value: v.value})
	}
	return resp, nil
}

// keysLocked returns the keys visible at snap in [start, end), sorted.
func (s *fakeStore) keysLocked(start, end []byte, snap uint64) []string {
	var keys []string
	for k := range s.data {
		kb := []byte(k)
		if bytes.Compare(kb, start) < 0 || (len(end) > 0 && bytes.Compare(kb, end) >= 0) {
			continue
		}
		if _, ok := s.visibleLocked(k, snap); ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func (s *fakeStore) commit(ws *writesetpb.WriteSet) (*galenapb.CommitResponse, error) {
	if len(ws.GetId()) == 0 || len(ws.GetWrites()) == 0 {
		return nil, reasonErr(codes.InvalidArgument, api.ReasonInvalidWriteSet, "no id or no writes")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if out, ok := s.outcomes[string(ws.Id)]; ok {
		return out, nil
	}
	snap := ws.Snapshot
	if snap == 0 {
		snap = s.seq
	}
	s.seq++
	out := &galenapb.CommitResponse{Outcome: galenapb.Outcome_OUTCOME_COMMITTED, Seqno: s.seq}
	for _, w := range ws.Writes {
		vs := s.data[string(w.Key)]
		if n := len(vs); n > 0 && vs[n-1].seq > snap {
			out = &galenapb.CommitResponse{Outcome: galenapb.Outcome_OUTCOME_CONFLICT, Seqno: s.seq,
				ConflictKey: w.Key, ConflictSeqno: vs[n-1].seq}
			break
		}
	}
	if out.Outcome == galenapb.Outcome_OUTCOME_COMMITTED {
		for _, w := range ws.Writes {
			s.data[string(w.Key)] = append(s.data[string(w.Key)], version{seq: s.seq, value: w.Value, del: w.Delete})
		}
	}
	s.outcomes[string(ws.Id)] = out
	return out, nil
}

// reasonErr is a status as a Galena server sends it.
func reasonErr(code codes.Code, reason, msg string) error {
	st, err := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{Domain: api.ErrorDomain, Reason: reason})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// hook may fail a call: a non-nil error is returned to the client instead of
// the answer. before runs before the call is served, after once it was
// served (a commit is then applied).
type hook func(ctx context.Context, method string, req proto.Message) error

// call is a request a fakeNode received.
type call struct {
	method  string
	req     proto.Message
	batched bool // on a Batch stream
}

// fakeNode serves galenapb.KVServer, and galenapb.ClusterServer through
// fakeCluster, over a real loopback listener.
type fakeNode struct {
	galenapb.UnimplementedKVServer
	store   *fakeStore
	addr    string
	srv     *grpc.Server
	lis     *trackingListener
	pageCap int  // max keys per scan response; 0 = none
	noBatch bool // play a member without the Batch stream

	streams atomic.Int32 // Batch streams opened

	mu     sync.Mutex
	calls  []call
	before hook
	after  hook
}

func newFakeNode(t testing.TB, store *fakeStore) *fakeNode {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &fakeNode{store: store, addr: lis.Addr().String(), srv: grpc.NewServer(),
		lis: &trackingListener{Listener: lis, conns: map[net.Conn]struct{}{}}}
	galenapb.RegisterKVServer(n.srv, n)
	galenapb.RegisterClusterServer(n.srv, fakeCluster{n: n})
	store.addSelf(n.addr)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = n.srv.Serve(n.lis)
	}()
	t.Cleanup(func() {
		n.srv.Stop()
		<-done
	})
	return n
}

// newFakeCluster starts n nodes sharing one store.
func newFakeCluster(t testing.TB, n int) []*fakeNode {
	store := newFakeStore()
	nodes := make([]*fakeNode, n)
	for i := range nodes {
		nodes[i] = newFakeNode(t, store)
	}
	return nodes
}

// stop stops the node; its address then refuses connections.
func (n *fakeNode) stop() { n.srv.Stop() }

// dropConns closes every connection the node accepted, abruptly.
func (n *fakeNode) dropConns() { n.lis.closeAll() }

func (n *fakeNode) setHooks(before, after hook) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.before, n.after = before, after
}

// callsOf returns the requests of method the node received, in order.
func (n *fakeNode) callsOf(method string) []proto.Message {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []proto.Message
	for _, c := range n.calls {
		if c.method == method {
			out = append(out, c.req)
		}
	}
	return out
}

// batchedCalls returns how many calls of method came on a Batch stream
// and how many as unary calls.
func (n *fakeNode) batchedCalls(method string) (batched, unary int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.calls {
		switch {
		case c.method != method:
		case c.batched:
			batched++
		default:
			unary++
		}
	}
	return batched, unary
}

func (n *fakeNode) enter(ctx context.Context, method string, req proto.Message) error {
	n.mu.Lock()
	n.calls = append(n.calls, call{method: method, req: proto.Clone(req), batched: ctx.Value(batchedKey{}) != nil})
	h := n.before
	n.mu.Unlock()
	if h == nil {
		return nil
	}
	return h(ctx, method, req)
}

func (n *fakeNode) leave(ctx context.Context, method string, req proto.Message) error {
	n.mu.Lock()
	h := n.after
	n.mu.Unlock()
	if h == nil {
		return nil
	}
	return h(ctx, method, req)
}

// serve runs one call between the hooks.
func serve[Req proto.Message, Resp any](n *fakeNode, ctx context.Context, method string, req Req, do func(Req) (Resp, error)) (Resp, error) {
	var zero Resp
	if err := n.enter(ctx, method, req); err != nil {
		return zero, err
	}
	resp, err := do(req)
	if err != nil {
		return zero, err
	}
	if err := n.leave(ctx, method, req); err != nil {
		return zero, err
	}
	return resp, nil
}

// Status answers as a member does whatever its state: the hooks, which
// play a member's refusals, do not apply.
func (n *fakeNode) Status(context.Context, *galenapb.StatusRequest) (*galenapb.StatusResponse, error) {
	ml, _ := n.store.memberList(nil)
	resp := &galenapb.StatusResponse{Address: n.addr, AppliedSeqno: n.store.appliedSeqno(), ClusterId: ml.ClusterId,
		LeaderId: ml.LeaderId, State: "SYNCED", RaftState: "Follower", LastContactMs: 12, Members: ml.Members}
	for _, m := range ml.Members {
		if m.Address == n.addr {
			resp.Id = m.Id
		}
	}
	if resp.Id == ml.LeaderId {
		resp.RaftState, resp.LastContactMs = "Leader", -1
	}
	return resp, nil
}

func (n *fakeNode) Get(ctx context.Context, req *galenapb.GetRequest) (*galenapb.GetResponse, error) {
	return serve(n, ctx, "Get", req, n.store.get)
}

func (n *fakeNode) Scan(ctx context.Context, req *galenapb.ScanRequest) (*galenapb.ScanResponse, error) {
	return serve(n, ctx, "Scan", req, func(r *galenapb.ScanRequest) (*galenapb.ScanResponse, error) {
		return n.store.scan(r, n.pageCap)
	})
}

func (n *fakeNode) Commit(ctx context.Context, req *galenapb.CommitRequest) (*galenapb.CommitResponse, error) {
	return serve(n, ctx, "Commit", req, func(r *galenapb.CommitRequest) (*galenapb.CommitResponse, error) {
		ws := r.GetWriteSet()
		switch {
		case r.MinSeqno > n.store.appliedSeqno() || ws.GetOrigin() > n.store.appliedSeqno():
			return nil, reasonErr(codes.FailedPrecondition, api.ReasonSnapshotUnavailable, "min seqno not applied")
		case ws.GetSnapshot() == 0 && ws.GetOrigin() == 0:
			return nil, reasonErr(codes.InvalidArgument, api.ReasonInvalidWriteSet, "a write-set without a snapshot needs an origin")
		}
		return n.store.commit(ws)
	})
}

type batchedKey struct{}

// Batch serves the Batch stream as a member does, each call on a goroutine
// of its own through the fake's unary method (hooks included), and answers
// Unimplemented when the node plays one that predates it.
func (n *fakeNode) Batch(stream galenapb.KV_BatchServer) error {
	n.streams.Add(1)
	if n.noBatch {
		return status.Error(codes.Unimplemented, "unknown method Batch")
	}
	ctx := context.WithValue(stream.Context(), batchedKey{}, true)
	var (
		wg   sync.WaitGroup
		send sync.Mutex
	)
	defer wg.Wait()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, c := range req.GetCalls() {
			wg.Go(func() {
				ctx := ctx
				if t := c.GetTimeoutUs(); t > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Microsecond)
					defer cancel()
				}
				r := &galenapb.BatchReply{Id: c.GetId()}
				var err error
				switch q := c.GetRequest().(type) {
				case *galenapb.BatchCall_Get:
					var resp *galenapb.GetResponse
					resp, err = n.Get(ctx, q.Get)
					r.Response = &galenapb.BatchReply_Get{Get: resp}
				case *galenapb.BatchCall_Scan:
					var resp *galenapb.ScanResponse
					resp, err = n.Scan(ctx, q.Scan)
					r.Response = &galenapb.BatchReply_Scan{Scan: resp}
				case *galenapb.BatchCall_Commit:
					var resp *galenapb.CommitResponse
					resp, err = n.Commit(ctx, q.Commit)
					r.Response = &galenapb.BatchReply_Commit{Commit: resp}
				}
				if err != nil {
					r.Response = &galenapb.BatchReply_Error{Error: noderpc.CallError(err)}
				}
				send.Lock()
				defer send.Unlock()
				stream.Send(&galenapb.BatchResponse{Replies: []*galenapb.BatchReply{r}})
			})
		}
	}
}

// trackingListener remembers accepted connections so a test can drop them.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns[c] = struct{}{}
		l.mu.Unlock()
	}
	return c, err
}

func (l *trackingListener) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		_ = c.Close()
		delete(l.conns, c)
	}
}

// fakeClusterID is the cluster id of every fake cluster.
const fakeClusterID = "fake-cluster"

// addSelf lists a new fakeNode as a voter n1, n2, ... of the configuration.
func (s *fakeStore) addSelf(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := fmt.Sprintf("n%d", len(s.members)+1)
	s.members = append(s.members, &galenapb.Member{Id: id, Address: addr, Voter: true})
}

// leaderLocked is the first voter: the fake has no elections.
func (s *fakeStore) leaderLocked() string {
	for _, m := range s.members {
		if m.Voter {
			return m.Id
		}
	}
	return ""
}

func (s *fakeStore) memberList(*galenapb.MemberListRequest) (*galenapb.MemberListResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &galenapb.MemberListResponse{ClusterId: fakeClusterID, LeaderId: s.leaderLocked(), Members: s.cloneMembersLocked()}, nil
}

func (s *fakeStore) cloneMembersLocked() []*galenapb.Member {
	out := make([]*galenapb.Member, len(s.members))
	for i, m := range s.members {
		out[i] = proto.Clone(m).(*galenapb.Member)
	}
	return out
}

// memberAdd refuses as a Galena server does, with its reasons:
// MEMBER_EXISTS for an id or address in use or promoting a voter,
// MEMBER_REFUSED for another cluster, MEMBER_NOT_FOUND for promoting an
// unknown member.
func (s *fakeStore) memberAdd(req *galenapb.MemberAddRequest) (*galenapb.MemberAddResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.ClusterId != "" && req.ClusterId != fakeClusterID {
		return nil, reasonErr(codes.FailedPrecondition, api.ReasonMemberRefused, fmt.Sprintf("member of cluster %s, this is %s", req.ClusterId, fakeClusterID))
	}
	i := slices.IndexFunc(s.members, func(m *galenapb.Member) bool { return m.Id == req.Id })
	switch {
	case req.Voter && i < 0:
		return nil, reasonErr(codes.NotFound, api.ReasonMemberNotFound, fmt.Sprintf("no member %s to promote", req.Id))
	case req.Voter && s.members[i].Voter:
		return nil, reasonErr(codes.AlreadyExists, api.ReasonMemberExists, fmt.Sprintf("%s is a voter already", req.Id))
	case req.Voter:
		s.members[i].Voter = true
	case i >= 0:
		return nil, reasonErr(codes.AlreadyExists, api.ReasonMemberExists, fmt.Sprintf("id %s is in use by %s", req.Id, s.members[i].Address))
	case slices.ContainsFunc(s.members, func(m *galenapb.Member) bool { return m.Address == req.Address }):
		return nil, reasonErr(codes.AlreadyExists, api.ReasonMemberExists, fmt.Sprintf("address %s is in use", req.Address))
	default:
		s.members = append(s.members, &galenapb.Member{Id: req.Id, Address: req.Address})
	}
	return &galenapb.MemberAddResponse{ClusterId: fakeClusterID, Members: s.cloneMembersLocked()}, nil
}

// memberRemove refuses an unknown id (NotFound, MEMBER_NOT_FOUND) and the
// last voter (FailedPrecondition, MEMBER_REFUSED).
func (s *fakeStore) memberRemove(req *galenapb.MemberRemoveRequest) (*galenapb.MemberRemoveResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.members, func(m *galenapb.Member) bool { return m.Id == req.Id })
	voters := 0
	for _, m := range s.members {
		if m.Voter {
			voters++
		}
	}
	switch {
	case i < 0:
		return nil, reasonErr(codes.NotFound, api.ReasonMemberNotFound, fmt.Sprintf("no member %s", req.Id))
	case s.members[i].Voter && voters == 1:
		return nil, reasonErr(codes.FailedPrecondition, api.ReasonMemberRefused, fmt.Sprintf("%s is the last voter", req.Id))
	}
	s.members = slices.Delete(s.members, i, i+1)
	return &galenapb.MemberRemoveResponse{Members: s.cloneMembersLocked()}, nil
}

// fakeCluster serves galenapb.ClusterServer for a fakeNode, through the
// node's hooks.
type fakeCluster struct {
	galenapb.UnimplementedClusterServer
	n *fakeNode
}

func (f fakeCluster) MemberList(ctx context.Context, req *galenapb.MemberListRequest) (*galenapb.MemberListResponse, error) {
	return serve(f.n, ctx, "MemberList", req, f.n.store.memberList)
}

func (f fakeCluster) MemberAdd(ctx context.Context, req *galenapb.MemberAddRequest) (*galenapb.MemberAddResponse, error) {
	return serve(f.n, ctx, "MemberAdd", req, f.n.store.memberAdd)
}

// Digest reports the store's applied seqno with a digest of it, and one
// checkpoint at seqno 1.
func (f fakeCluster) Digest(ctx context.Context, req *galenapb.DigestRequest) (*galenapb.DigestResponse, error) {
	return serve(f.n, ctx, "Digest", req, func(*galenapb.DigestRequest) (*galenapb.DigestResponse, error) {
		seq := f.n.store.appliedSeqno()
		return &galenapb.DigestResponse{AppliedSeqno: seq, Digest: fakeDigest(seq), State: "SYNCED",
			Checkpoints: []*galenapb.Checkpoint{{Seqno: 1, Digest: fakeDigest(1)}}}, nil
	})
}

// fakeDigest is the fake's digest at seqno seq.
func fakeDigest(seq uint64) []byte { return bytes.Repeat([]byte{byte(seq)}, 32) }

func (f fakeCluster) MemberRemove(ctx context.Context, req *galenapb.MemberRemoveRequest) (*galenapb.MemberRemoveResponse, error) {
	return serve(f.n, ctx, "MemberRemove", req, f.n.store.memberRemove)
}

// hungListener accepts connections and never answers, as a member stopped
// with SIGSTOP does: the kernel completes the handshakes, but no HTTP/2
// preface ever comes.
type hungListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

// newHungListener starts a hungListener, closed with its connections when
// the test ends.
func newHungListener(t *testing.T) *hungListener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hungListener{Listener: lis}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = lis.Close()
		<-done
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range h.conns {
			_ = c.Close()
		}
	})
	return h
}

func (h *hungListener) addr() string { return h.Addr().String() }

// accepted is how many connections the listener took.
func (h *hungListener) accepted() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}
