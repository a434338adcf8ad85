package client

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/galenadb/galena/api/galenapb"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// One message of a Batch stream carries at most maxBatchCalls calls and,
// unless one call is larger, maxBatchBytes of them. callFraming bounds what
// a call adds to a message beyond its own size (its field tag and length),
// with room to spare.
const (
	maxBatchCalls = 256
	maxBatchBytes = 1 << 20
	callFraming   = 32
)

// errUnary sends a call back to its unary method: the member has no Batch
// stream, or answered the call before it was sent.
var errUnary = errors.New("client: call not batched")

// batchKV is an endpoint's KV service as the client calls it. Get, Scan and
// Commit travel on one long-lived Batch stream, as many calls per message
// as are queued together, answered by id in any order; Status, and every
// call to a member that answers Batch Unimplemented (one that predates
// it), go as unary calls. A call on the stream is answered exactly as its
// unary call would be: the member sends back the same status.
type batchKV struct {
	galenapb.KVClient // the unary calls
	conn              *grpc.ClientConn
	addr              peerAddr
	maxMsg            int // the largest message the connection sends

	wg sync.WaitGroup // every stream's goroutines

	mu     sync.Mutex
	stream *batchStream // nil: none open
	unary  bool         // the member has no Batch stream
	closed bool
}

func newBatchKV(conn *grpc.ClientConn, addr string, maxMsg int) *batchKV {
	return &batchKV{KVClient: galenapb.NewKVClient(conn), conn: conn, addr: peerAddr(addr), maxMsg: maxMsg}
}

// peerAddr names the member a batched call was sent to, for grpc.Peer.
type peerAddr string

func (peerAddr) Network() string  { return "tcp" }
func (a peerAddr) String() string { return string(a) }

func (b *batchKV) Get(ctx context.Context, req *galenapb.GetRequest, opts ...grpc.CallOption) (*galenapb.GetResponse, error) {
	return batched(b, ctx, &galenapb.BatchCall{Request: &galenapb.BatchCall_Get{Get: req}}, opts,
		(*galenapb.BatchReply).GetGet, func() (*galenapb.GetResponse, error) { return b.KVClient.Get(ctx, req, opts...) })
}

func (b *batchKV) Scan(ctx context.Context, req *galenapb.ScanRequest, opts ...grpc.CallOption) (*galenapb.ScanResponse, error) {
	return batched(b, ctx, &galenapb.BatchCall{Request: &galenapb.BatchCall_Scan{Scan: req}}, opts,
		(*galenapb.BatchReply).GetScan, func() (*galenapb.ScanResponse, error) { return b.KVClient.Scan(ctx, req, opts...) })
}

func (b *batchKV) Commit(ctx context.Context, req *galenapb.CommitRequest, opts ...grpc.CallOption) (*galenapb.CommitResponse, error) {
	return batched(b, ctx, &galenapb.BatchCall{Request: &galenapb.BatchCall_Commit{Commit: req}}, opts,
		(*galenapb.BatchReply).GetCommit, func() (*galenapb.CommitResponse, error) { return b.KVClient.Commit(ctx, req, opts...) })
}

// batched makes call c on the stream and returns the response answer
// finds in its reply, or makes the unary call when c cannot go on the
// stream.
func batched[Resp proto.Message](b *batchKV, ctx context.Context, c *galenapb.BatchCall, opts []grpc.CallOption,
	answer func(*galenapb.BatchReply) Resp, unary func() (Resp, error)) (Resp, error) {
	var zero Resp
	r, err := b.call(ctx, c, opts)
	switch {
	case errors.Is(err, errUnary):
		return unary()
	case err != nil:
		return zero, err
	}
	if resp := answer(r); resp.ProtoReflect().IsValid() {
		return resp, nil
	}
	return zero, mismatched(r)
}

// mismatched is the error of a reply that does not answer its call's
// request: the member broke the protocol, and the call may have been served.
func mismatched(r *galenapb.BatchReply) error {
	return status.Errorf(codes.Internal, "batched call %d answered with %T", r.GetId(), r.GetResponse())
}

// call sends c on the stream and returns its reply, or the status error
// its unary call would have returned. errUnary: c was not sent, use the
// unary call. grpc.Peer options in opts learn the member's address once c
// may have reached it, as for a unary call that was sent.
func (b *batchKV) call(ctx context.Context, c *galenapb.BatchCall, opts []grpc.CallOption) (*galenapb.BatchReply, error) {
	s, err := b.open()
	if err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		c.TimeoutUs = max(time.Until(d).Microseconds(), 1)
	}
	p, err := s.queue(ctx, c)
	if err != nil {
		return nil, err
	}
	var r callResult
	select {
	case r = <-p.reply:
	case <-ctx.Done():
		s.forget(c.Id)
		r.err = status.FromContextError(ctx.Err()).Err()
	}
	if errors.Is(r.err, errUnary) {
		return nil, r.err
	}
	for _, o := range opts {
		if po, ok := o.(grpc.PeerCallOption); ok {
			*po.PeerAddr = peer.Peer{Addr: b.addr}
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if e := r.reply.GetError(); e != nil {
		return nil, callErr(e)
	}
	return r.reply, nil
}

// callErr is the gRPC status error a member sent as a call's error on a
// stream.
func callErr(e *galenapb.CallError) error {
	return status.ErrorProto(&spb.Status{Code: e.GetCode(), Message: e.GetMessage(), Details: e.GetDetails()})
}

// open returns the stream, opening one if none is open. While the
// connection is not ready, calls go unary: they then wait for it within
// their own deadlines, as before.
func (b *batchKV) open() (*batchStream, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.unary, b.closed:
		return nil, errUnary
	case b.stream != nil:
		return b.stream, nil
	case b.conn.GetState() != connectivity.Ready:
		return nil, errUnary
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := b.KVClient.Batch(ctx)
	if err != nil {
		cancel()
		return nil, errUnary
	}
	b.stream = newBatchStream(b, st, cancel)
	return b.stream, nil
}

// detach makes s no longer the stream new calls use.
func (b *batchKV) detach(s *batchStream, unary bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stream == s {
		b.stream = nil
	}
	b.unary = b.unary || unary
}

// close stops the stream and waits for the goroutines of every stream,
// those replaced earlier included. Call it once the connection is closed:
// a stream still draining ends with it.
func (b *batchKV) close() {
	b.mu.Lock()
	b.closed = true
	s := b.stream
	b.mu.Unlock()
	if s != nil {
		s.fail(status.Error(codes.Canceled, "client: closed"))
	}
	b.wg.Wait()
}

// batchStream is one open Batch stream: a writer goroutine sends the calls
// queued together in one message, a reader goroutine hands each reply to
// its caller. A broken stream fails every call in flight with its status;
// a call not yet sent goes back to its unary call. When the member says it
// is closing, the writer sends nothing more and closes the client's side,
// and the reader waits for the replies still due.
type batchStream struct {
	kv       *batchKV
	st       galenapb.KV_BatchClient
	cancel   context.CancelFunc
	sendq    chan *galenapb.BatchCall
	draining chan struct{} // closed when the member said it is closing
	done     chan struct{} // closed when the stream is over

	mu      sync.Mutex
	pending map[uint64]*pendingCall
	next    uint64
	drained bool  // draining is closed
	err     error // why the stream is over
}

type pendingCall struct {
	reply chan callResult
	sent  bool // handed to the stream; under batchStream.mu
}

type callResult struct {
	reply *galenapb.BatchReply
	err   error
}

func newBatchStream(b *batchKV, st galenapb.KV_BatchClient, cancel context.CancelFunc) *batchStream {
	s := &batchStream{kv: b, st: st, cancel: cancel, sendq: make(chan *galenapb.BatchCall, maxBatchCalls),
		draining: make(chan struct{}), done: make(chan struct{}), pending: map[uint64]*pendingCall{}}
	b.wg.Add(2)
	go func() { defer b.wg.Done(); s.writeLoop() }()
	go func() { defer b.wg.Done(); s.readLoop() }()
	return s
}

// queue registers c under a new id and queues it for the writer.
func (s *batchStream) queue(ctx context.Context, c *galenapb.BatchCall) (*pendingCall, error) {
	p := &pendingCall{reply: make(chan callResult, 1)}
	s.mu.Lock()
	if s.err != nil || s.drained {
		s.mu.Unlock()
		return nil, errUnary // a new stream, or the unary call, next
	}
	s.next++
	c.Id = s.next
	s.pending[c.Id] = p
	s.mu.Unlock()
	select {
	case s.sendq <- c:
		return p, nil
	case <-s.done:
		return p, nil // fail answered it
	case <-ctx.Done():
		s.forget(c.Id)
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// forget drops a call whose caller stopped waiting; its reply, if one
// comes, is dropped.
func (s *batchStream) forget(id uint64) {
	s.mu.Lock()
	delete(s.pending, id)
	s.mu.Unlock()
}

// take marks the calls in req sent, and leaves out those their callers
// forgot; it reports whether any is left.
func (s *batchStream) take(req *galenapb.BatchRequest) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	calls := req.Calls[:0]
	for _, c := range req.Calls {
		if p := s.pending[c.Id]; p != nil {
			p.sent = true
			calls = append(calls, c)
		}
	}
	req.Calls = calls
	return len(calls) > 0
}

// unmark undoes take for calls that were not sent after all.
func (s *batchStream) unmark(req *galenapb.BatchRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range req.Calls {
		if p := s.pending[c.Id]; p != nil {
			p.sent = false
		}
	}
}

// writeLoop sends the queued calls, as many per message as are queued,
// up to maxBatchCalls and, unless one call is larger, maxBatchBytes (or
// the connection's largest message, if smaller). A
// call too large for a message of its own (its unary call would just fit)
// goes back to its unary call.
func (s *batchStream) writeLoop() {
	var next *galenapb.BatchCall // taken from sendq, for the next message
	for {
		if next == nil {
			select {
			case next = <-s.sendq:
			case <-s.draining:
				s.unsend()
				s.st.CloseSend()
				return
			case <-s.done:
				return
			}
		}
		req, size, limit := &galenapb.BatchRequest{}, 0, min(maxBatchBytes, s.kv.maxMsg)
		for next != nil {
			n := proto.Size(next) + callFraming
			if len(req.Calls) > 0 && (len(req.Calls) == maxBatchCalls || size+n > limit) {
				break
			}
			if n > s.kv.maxMsg {
				s.unsendCall(next)
			} else {
				req.Calls, size = append(req.Calls, next), size+n
			}
			next = nil
			if len(s.sendq) > 0 {
				next = <-s.sendq
			}
		}
		if !s.take(req) {
			continue
		}
		if err := s.st.Send(req); err != nil {
			// The stream was over before req went out: its calls go back
			// to their unary calls; the reader learns why from Recv.
			s.unmark(req)
			return
		}
	}
}

// unsend sends the calls still queued back to their unary calls.
func (s *batchStream) unsend() {
	for {
		select {
		case c := <-s.sendq:
			s.unsendCall(c)
		default:
			return
		}
	}
}

// unsendCall sends c, not sent, back to its unary call.
func (s *batchStream) unsendCall(c *galenapb.BatchCall) {
	s.mu.Lock()
	p := s.pending[c.Id]
	delete(s.pending, c.Id)
	s.mu.Unlock()
	if p != nil {
		p.reply <- callResult{err: errUnary}
	}
}

func (s *batchStream) readLoop() {
	for {
		resp, err := s.st.Recv()
		if err != nil {
			s.fail(err)
			return
		}
		if resp.GetClosing() {
			s.drain()
		}
		for _, r := range resp.GetReplies() {
			s.mu.Lock()
			p := s.pending[r.GetId()]
			delete(s.pending, r.GetId())
			s.mu.Unlock()
			if p != nil {
				p.reply <- callResult{reply: r}
			}
		}
	}
}

// drain stops new calls on the stream; the member answers the ones sent.
func (s *batchStream) drain() {
	s.mu.Lock()
	if !s.drained {
		s.drained = true
		close(s.draining)
	}
	s.mu.Unlock()
	s.kv.detach(s, false)
}

// fail ends the stream once: every call in flight fails with err's status,
// a call not yet sent goes back to its unary call, and so does every later
// call if the member has no Batch stream.
func (s *batchStream) fail(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	unimplemented := status.Code(err) == codes.Unimplemented
	if _, ok := status.FromError(err); !ok { // io.EOF: the member ended the stream
		err = status.Errorf(codes.Unavailable, "client: batch stream ended: %v", err)
	}
	s.err = err
	pending := s.pending
	s.pending = nil
	close(s.done)
	s.mu.Unlock()
	s.cancel()
	s.kv.detach(s, unimplemented)
	for _, p := range pending {
		if p.sent && !unimplemented {
			p.reply <- callResult{err: err}
		} else {
			p.reply <- callResult{err: errUnary}
		}
	}
}
