package rpc

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/galenadb/galena/api/galenapb"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// serveKV serves kv over loopback, with intercept as the server's unary
// interceptor and kv's Intercept, as a member sets them.
func serveKV(t *testing.T, kv *KV, intercept grpc.UnaryServerInterceptor) galenapb.KVClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if intercept != nil {
		opts = append(opts, grpc.UnaryInterceptor(intercept))
		kv.Intercept = intercept
	}
	srv := grpc.NewServer(opts...)
	galenapb.RegisterKVServer(srv, kv)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); srv.Stop(); <-done })
	return galenapb.NewKVClient(conn)
}

// batchedCall sends calls on a new Batch stream, closes its side and
// returns every reply by id once the stream ends.
func batchedCalls(t *testing.T, kv galenapb.KVClient, calls ...*galenapb.BatchCall) map[uint64]*galenapb.BatchReply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := kv.Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&galenapb.BatchRequest{Calls: calls}); err != nil {
		t.Fatal(err)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	out := map[uint64]*galenapb.BatchReply{}
	for {
		resp, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.GetReplies() {
			out[r.GetId()] = r
		}
	}
}

// Every call on a Batch stream gets the answer its unary call gets: the
// same response, or the same status (code, message, reason), through the
// same interceptor.
func TestBatchedCallsAnswerAsUnaryCalls(t *testing.T) {
	st := kvStore(t)
	denyCommits := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if c, ok := req.(*galenapb.CommitRequest); ok && string(c.GetWriteSet().GetId()) == "denied" {
			return nil, status.Error(codes.PermissionDenied, "denied by the interceptor")
		}
		return h(ctx, req)
	}
	srv, _ := kvServer(t, st)
	kv := serveKV(t, srv, denyCommits)
	get := func(r *galenapb.GetRequest) *galenapb.BatchCall {
		return &galenapb.BatchCall{Request: &galenapb.BatchCall_Get{Get: r}}
	}
	scan := func(r *galenapb.ScanRequest) *galenapb.BatchCall {
		return &galenapb.BatchCall{Request: &galenapb.BatchCall_Scan{Scan: r}}
	}
	commit := func(r *galenapb.CommitRequest) *galenapb.BatchCall {
		return &galenapb.BatchCall{Request: &galenapb.BatchCall_Commit{Commit: r}}
	}
	calls := []*galenapb.BatchCall{
		get(&galenapb.GetRequest{Key: []byte("k05")}),
		get(&galenapb.GetRequest{Key: []byte("k05"), Snapshot: kvApplied + 1}),
		get(&galenapb.GetRequest{Key: []byte("k05"), Snapshot: kvMinReadable - 1}),
		get(&galenapb.GetRequest{}),
		scan(&galenapb.ScanRequest{Start: []byte("k1"), Limit: 3}),
		scan(&galenapb.ScanRequest{Start: []byte("b"), End: []byte("a")}),
		commit(commitReq(ws1("ok", kvApplied, put("k", 1)))),
		commit(commitReq(ws1("", 0, put("k", 1)))),
		commit(commitReq(ws1("denied", kvApplied, put("k", 1)))),
		{}, // names no request
	}
	for i, c := range calls {
		c.Id = uint64(i + 1)
	}
	replies := batchedCalls(t, kv, calls...)
	if len(replies) != len(calls) {
		t.Fatalf("%d replies to %d calls", len(replies), len(calls))
	}
	ctx := context.Background()
	for _, c := range calls {
		var want proto.Message
		var err error
		switch r := c.GetRequest().(type) {
		case *galenapb.BatchCall_Get:
			want, err = kv.Get(ctx, r.Get)
		case *galenapb.BatchCall_Scan:
			want, err = kv.Scan(ctx, r.Scan)
		case *galenapb.BatchCall_Commit:
			want, err = kv.Commit(ctx, r.Commit)
		default:
			err = status.Errorf(codes.InvalidArgument, "batched call %d names no request", c.GetId())
		}
		got := replies[c.GetId()]
		if err != nil {
			e := got.GetError()
			if e == nil {
				t.Errorf("call %d: answered %v; the unary call failed with %v", c.GetId(), got, err)
				continue
			}
			gst := status.ErrorProto(&spb.Status{Code: e.GetCode(), Message: e.GetMessage(), Details: e.GetDetails()})
			if status.Code(gst) != status.Code(err) || status.Convert(gst).Message() != status.Convert(err).Message() || reasonOf(gst) != reasonOf(err) {
				t.Errorf("call %d: batched %v (reason %q); unary %v (reason %q)", c.GetId(), gst, reasonOf(gst), err, reasonOf(err))
			}
			continue
		}
		var resp proto.Message
		switch r := got.GetResponse().(type) {
		case *galenapb.BatchReply_Get:
			resp = r.Get
		case *galenapb.BatchReply_Scan:
			resp = r.Scan
		case *galenapb.BatchReply_Commit:
			resp = r.Commit
		}
		if !proto.Equal(resp, want) {
			t.Errorf("call %d: batched %v; unary %v", c.GetId(), got, want)
		}
	}
}

// Once Closing is closed, the member tells a Batch stream's client so;
// the calls the client sent are still answered, and the stream ends when
// the client closes its side.
func TestBatchStreamDrainsOnClosing(t *testing.T) {
	srv, _ := kvServer(t, kvStore(t))
	closing := make(chan struct{})
	srv.Closing = closing
	kv := serveKV(t, srv, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := kv.Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	get := &galenapb.BatchCall{Id: 1, Request: &galenapb.BatchCall_Get{Get: &galenapb.GetRequest{Key: []byte("k05")}}}
	if err := st.Send(&galenapb.BatchRequest{Calls: []*galenapb.BatchCall{get}}); err != nil {
		t.Fatal(err)
	}
	if r, err := st.Recv(); err != nil || len(r.GetReplies()) != 1 || r.GetReplies()[0].GetGet() == nil {
		t.Fatalf("reply before closing: %v, %v", r, err)
	}
	close(closing)
	r, err := st.Recv()
	if err != nil || !r.GetClosing() {
		t.Fatalf("after Closing: %v, %v; want the closing message", r, err)
	}
	get.Id = 2 // sent after the member said it is closing: still answered
	if err := st.Send(&galenapb.BatchRequest{Calls: []*galenapb.BatchCall{get}}); err != nil {
		t.Fatal(err)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if r, err := st.Recv(); err != nil || len(r.GetReplies()) != 1 || r.GetReplies()[0].GetId() != 2 {
		t.Fatalf("reply after closing: %v, %v", r, err)
	}
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream after the client closed its side: %v; want its end", err)
	}
}
