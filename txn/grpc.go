package txn

import (
	"context"
	"errors"

	"github.com/galenadb/galena/api"
	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/certification"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Server adapts a Service to the gRPC KV service.
type Server struct {
	galenapb.UnimplementedKVServer
	svc    *Service
	status func() *galenapb.StatusResponse
}

// NewServer returns the gRPC face of svc; status reports the member's state.
func NewServer(svc *Service, status func() *galenapb.StatusResponse) *Server {
	return &Server{svc: svc, status: status}
}

func (s *Server) Get(ctx context.Context, req *galenapb.GetRequest) (*galenapb.GetResponse, error) {
	v, found, at, err := s.svc.Get(ctx, req.GetKey(), ReadAt{req.GetSnapshot(), req.GetMinSeqno(), req.GetLinearizable(), req.GetAllowStale()})
	if err != nil {
		return nil, ToStatus(err)
	}
	return &galenapb.GetResponse{Found: found, Value: v, Snapshot: at}, nil
}

func (s *Server) Scan(ctx context.Context, req *galenapb.ScanRequest) (*galenapb.ScanResponse, error) {
	kvs, more, at, err := s.svc.Scan(ctx, req.GetStart(), req.GetEnd(), int(req.GetLimit()), ReadAt{req.GetSnapshot(), req.GetMinSeqno(), req.GetLinearizable(), req.GetAllowStale()})
	if err != nil {
		return nil, ToStatus(err)
	}
	resp := &galenapb.ScanResponse{Snapshot: at, More: more, Kvs: make([]*galenapb.KeyValue, len(kvs))}
	for i, kv := range kvs {
		resp.Kvs[i] = &galenapb.KeyValue{Key: kv.Key, Value: kv.Value}
	}
	return resp, nil
}

func (s *Server) Commit(ctx context.Context, req *galenapb.CommitRequest) (*galenapb.CommitResponse, error) {
	o, err := s.svc.Commit(ctx, req.GetWriteSet(), req.GetMinSeqno())
	if err != nil {
		return nil, ToStatus(err)
	}
	resp := &galenapb.CommitResponse{Seqno: o.Seqno}
	switch o.Verdict {
	case certification.Commit:
		resp.Outcome = galenapb.Outcome_OUTCOME_COMMITTED
	case certification.Conflict:
		resp.Outcome, resp.ConflictKey, resp.ConflictSeqno = galenapb.Outcome_OUTCOME_CONFLICT, o.Key, o.KeySeqno
	case certification.TooOld:
		return nil, ToStatus(ErrSnapshotTooOld)
	default:
		return nil, ToStatus(errors.Join(ErrInvalidWriteSet, o.Err()))
	}
	return resp, nil
}

func (s *Server) Status(context.Context, *galenapb.StatusRequest) (*galenapb.StatusResponse, error) {
	return s.status(), nil
}

// statusTable maps each Service error to its code and reason: the one place
// errors meet the wire.
var statusTable = []struct {
	err    error
	code   codes.Code
	reason string
}{
	{ErrInvalidKey, codes.InvalidArgument, api.ReasonInvalidKey},
	{ErrTooLarge, codes.InvalidArgument, api.ReasonTooLarge},
	{ErrInvalidWriteSet, codes.InvalidArgument, api.ReasonInvalidWriteSet},
	{ErrInvalidArgument, codes.InvalidArgument, ""},
	{ErrSnapshotTooOld, codes.FailedPrecondition, api.ReasonSnapshotTooOld},
	{ErrSnapshotUnavailable, codes.FailedPrecondition, api.ReasonSnapshotUnavailable},
	{ErrNotPrimary, codes.Unavailable, api.ReasonNotPrimary},
	{ErrIndeterminate, codes.Unknown, api.ReasonIndeterminate},
	{ErrShuttingDown, codes.Unavailable, api.ReasonShuttingDown},
	{ErrOverloaded, codes.ResourceExhausted, api.ReasonOverloaded},
}

// ToStatus turns a Service error into the gRPC status clients read: the
// code and, for Galena's own errors, the reason (see statusTable).
func ToStatus(err error) error {
	for _, e := range statusTable {
		if !errors.Is(err, e.err) {
			continue
		}
		st := status.New(e.code, err.Error())
		if e.reason == "" {
			return st.Err()
		}
		if d, derr := st.WithDetails(&errdetails.ErrorInfo{Domain: api.ErrorDomain, Reason: e.reason}); derr == nil {
			return d.Err()
		}
		return st.Err()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
