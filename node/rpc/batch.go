package rpc

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/galenadb/galena/api/galenapb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// maxBatchInflight bounds the calls of one Batch stream being served at
// once; the member reads no more of the stream until one is answered.
const maxBatchInflight = 1024

// Batch serves the stream of batched calls: each call on a goroutine of its
// own, through the interceptors and the method of its unary call (call).
// The goroutines are the stream's workers: one that has answered its call
// waits for the next, so a stream's calls reuse stacks already grown
// rather than growing a new one each (a tenth of a loaded member's CPU went
// to growing stacks). Replies go back as they are ready, as many per
// message as are ready together. Once Closing is closed, the member tells
// the client to send no more calls on the stream; when the client closes
// its side, the calls in flight are answered and the stream ends.
func (s *KV) Batch(stream galenapb.KV_BatchServer) error {
	ctx := stream.Context()
	replies := make(chan *galenapb.BatchReply, maxBatchInflight)
	slots := make(chan struct{}, maxBatchInflight)
	sent := make(chan error, 1)
	go func() { sent <- sendReplies(stream, replies, s.Closing) }()
	var (
		workers sync.WaitGroup
		work    = make(chan *galenapb.BatchCall) // to a worker waiting for a call
		err     error
	)
	serve := func(c *galenapb.BatchCall) {
		replies <- s.call(ctx, c)
		<-slots
	}
recv:
	for {
		var req *galenapb.BatchRequest
		if req, err = stream.Recv(); err != nil {
			break
		}
		for _, c := range req.GetCalls() {
			select {
			case slots <- struct{}{}: // at most maxBatchInflight calls at once
			case <-ctx.Done():
				err = ctx.Err()
				break recv
			}
			select {
			case work <- c:
			default: // every worker is busy: one more
				workers.Go(func() {
					serve(c)
					for c := range work {
						serve(c)
					}
				})
			}
		}
	}
	close(work)
	workers.Wait() // every call answered: each is a worker's until then
	close(replies)
	serr := <-sent
	if errors.Is(err, io.EOF) {
		return serr
	}
	return err
}

// sendReplies sends replies until the channel closes, each message with
// every reply ready by then, and a message saying so once closing is
// closed. After a failed send it only drains.
func sendReplies(stream galenapb.KV_BatchServer, replies <-chan *galenapb.BatchReply, closing <-chan struct{}) error {
	var err error
	send := func(m *galenapb.BatchResponse) {
		if err == nil {
			err = stream.Send(m)
		}
	}
	for {
		var batch []*galenapb.BatchReply // new for each message: gRPC may read a sent one later
		select {
		case <-closing:
			closing = nil
			send(&galenapb.BatchResponse{Closing: true})
			continue
		case r, ok := <-replies:
			if !ok {
				return err
			}
			batch = append(make([]*galenapb.BatchReply, 0, 1+len(replies)), r)
		}
	drain:
		for len(batch) < maxBatchInflight {
			select {
			case r, ok := <-replies:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		send(&galenapb.BatchResponse{Replies: batch})
	}
}

// call serves one batched call as its unary call would be served: through
// the member's interceptors (Intercept), then the unary method.
func (s *KV) call(ctx context.Context, c *galenapb.BatchCall) *galenapb.BatchReply {
	if t := c.GetTimeoutUs(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Microsecond)
		defer cancel()
	}
	var (
		resp any
		err  error
	)
	switch req := c.GetRequest().(type) {
	case *galenapb.BatchCall_Get:
		resp, err = s.intercept(ctx, galenapb.KV_Get_FullMethodName, req.Get, func(ctx context.Context, r any) (any, error) {
			return s.Get(ctx, r.(*galenapb.GetRequest))
		})
	case *galenapb.BatchCall_Scan:
		resp, err = s.intercept(ctx, galenapb.KV_Scan_FullMethodName, req.Scan, func(ctx context.Context, r any) (any, error) {
			return s.Scan(ctx, r.(*galenapb.ScanRequest))
		})
	case *galenapb.BatchCall_Commit:
		resp, err = s.intercept(ctx, galenapb.KV_Commit_FullMethodName, req.Commit, func(ctx context.Context, r any) (any, error) {
			return s.Commit(ctx, r.(*galenapb.CommitRequest))
		})
	default:
		err = status.Errorf(codes.InvalidArgument, "batched call %d names no request", c.GetId())
	}
	r := &galenapb.BatchReply{Id: c.GetId()}
	switch resp := resp.(type) {
	case *galenapb.GetResponse:
		r.Response = &galenapb.BatchReply_Get{Get: resp}
	case *galenapb.ScanResponse:
		r.Response = &galenapb.BatchReply_Scan{Scan: resp}
	case *galenapb.CommitResponse:
		r.Response = &galenapb.BatchReply_Commit{Commit: resp}
	}
	if err != nil {
		r.Response = &galenapb.BatchReply_Error{Error: CallError(err)}
	}
	return r
}

// intercept runs handler for the unary method through Intercept, if set.
func (s *KV) intercept(ctx context.Context, method string, req any, handler grpc.UnaryHandler) (any, error) {
	if s.Intercept == nil {
		return handler(ctx, req)
	}
	return s.Intercept(ctx, req, &grpc.UnaryServerInfo{Server: s, FullMethod: method}, handler)
}

// CallError is the wire form of a call's error, as gRPC would send it for
// a unary call: its status, or for a context error Canceled or
// DeadlineExceeded, or else Unknown.
func CallError(err error) *galenapb.CallError {
	st, ok := status.FromError(err)
	if !ok {
		st = status.FromContextError(err)
	}
	p := st.Proto()
	return &galenapb.CallError{Code: p.GetCode(), Message: p.GetMessage(), Details: p.GetDetails()}
}
