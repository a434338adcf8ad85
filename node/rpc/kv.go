package rpc

import (
	"context"
	"errors"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/certification"
	"github.com/galenadb/galena/txn"
	"google.golang.org/grpc"
)

// KV serves the KV service from a member's transaction service. It is safe
// for concurrent use.
type KV struct {
	galenapb.UnimplementedKVServer
	svc    *txn.Service
	status func() *galenapb.StatusResponse

	// Intercept, if set, is what each call of a Batch stream passes
	// through before its method: the server's unary interceptors, so that
	// a batched call is checked, refused and counted as its unary call is.
	Intercept grpc.UnaryServerInterceptor
	// Closing, once closed, asks the clients of Batch streams to close
	// them, so that a graceful stop does not wait for them.
	Closing <-chan struct{}
}

// NewKV returns the KV service of svc; status reports the member's state.
func NewKV(svc *txn.Service, status func() *galenapb.StatusResponse) *KV {
	return &KV{svc: svc, status: status}
}

// Get reads a key at the snapshot the request names (see txn.ReadAt).
func (s *KV) Get(ctx context.Context, req *galenapb.GetRequest) (*galenapb.GetResponse, error) {
	v, found, at, err := s.svc.Get(ctx, req.GetKey(), readAt(req))
	if err != nil {
		return nil, toStatus(err)
	}
	return &galenapb.GetResponse{Found: found, Value: v, Snapshot: at}, nil
}

// Scan reads a range of keys at the snapshot the request names.
func (s *KV) Scan(ctx context.Context, req *galenapb.ScanRequest) (*galenapb.ScanResponse, error) {
	kvs, more, at, err := s.svc.Scan(ctx, req.GetStart(), req.GetEnd(), int(req.GetLimit()), readAt(req))
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &galenapb.ScanResponse{Snapshot: at, More: more, Kvs: make([]*galenapb.KeyValue, len(kvs))}
	for i, kv := range kvs {
		resp.Kvs[i] = &galenapb.KeyValue{Key: kv.Key, Value: kv.Value}
	}
	return resp, nil
}

// Commit certifies a write-set and answers this member's verdict: a
// conflict is an answer, a write-set too old or invalid is refused.
func (s *KV) Commit(ctx context.Context, req *galenapb.CommitRequest) (*galenapb.CommitResponse, error) {
	o, err := s.svc.Commit(ctx, req.GetWriteSet(), req.GetMinSeqno())
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &galenapb.CommitResponse{Seqno: o.Seqno}
	switch o.Verdict {
	case certification.Commit:
		resp.Outcome = galenapb.Outcome_OUTCOME_COMMITTED
	case certification.Conflict:
		resp.Outcome, resp.ConflictKey, resp.ConflictSeqno = galenapb.Outcome_OUTCOME_CONFLICT, o.Key, o.KeySeqno
	case certification.TooOld:
		return nil, toStatus(txn.ErrSnapshotTooOld)
	default:
		return nil, toStatus(errors.Join(txn.ErrInvalidWriteSet, o.Err()))
	}
	return resp, nil
}

// Status reports the member's state; it is answered whatever that state.
func (s *KV) Status(context.Context, *galenapb.StatusRequest) (*galenapb.StatusResponse, error) {
	return s.status(), nil
}

// readRequest is what Get and Scan requests say of their snapshot.
type readRequest interface {
	GetSnapshot() uint64
	GetMinSeqno() uint64
	GetLinearizable() bool
	GetAllowStale() bool
}

func readAt(r readRequest) txn.ReadAt {
	return txn.ReadAt{Snapshot: r.GetSnapshot(), MinSeqno: r.GetMinSeqno(), Linearizable: r.GetLinearizable(), AllowStale: r.GetAllowStale()}
}

// StatusOnly is the gRPC interceptor of a member that cannot serve (it was
// started after it stopped for good): it answers the KV service's Status
// and refuses every other call with refusal's error, as the services map
// theirs. While refusal returns nil, calls are served.
func StatusOnly(refusal func() error) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if info.FullMethod == galenapb.KV_Status_FullMethodName {
			return handler(ctx, req)
		}
		if err := refusal(); err != nil {
			return nil, toStatus(err)
		}
		return handler(ctx, req)
	}
}
