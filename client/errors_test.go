package client

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/galenadb/galena/api"
)

// statusCases lists what servers send and the sentinel each must become.
var statusCases = []struct {
	code   codes.Code
	reason string
	want   error
}{
	{codes.InvalidArgument, api.ReasonInvalidKey, ErrInvalidKey},
	{codes.InvalidArgument, api.ReasonTooLarge, ErrTooLarge},
	{codes.InvalidArgument, api.ReasonInvalidWriteSet, ErrInvalidArgument},
	{codes.FailedPrecondition, api.ReasonSnapshotTooOld, ErrSnapshotTooOld},
	{codes.FailedPrecondition, api.ReasonSnapshotUnavailable, ErrSnapshotUnavailable},
	{codes.Unavailable, api.ReasonNotPrimary, ErrNotPrimary},
	{codes.Unknown, api.ReasonIndeterminate, ErrIndeterminate},
	{codes.Unavailable, api.ReasonShuttingDown, ErrUnavailable},
	{codes.ResourceExhausted, api.ReasonOverloaded, ErrOverloaded}, // not ErrTooLarge
	{codes.ResourceExhausted, api.ReasonNoSpace, ErrNoSpace},
	{codes.FailedPrecondition, api.ReasonNoData, ErrInvalidArgument},
	{codes.AlreadyExists, api.ReasonMemberExists, ErrMemberExists},
	{codes.NotFound, api.ReasonMemberNotFound, ErrMemberNotFound}, // a member, not a key
	{codes.FailedPrecondition, api.ReasonMemberRefused, ErrMemberRefused},
	{codes.FailedPrecondition, api.ReasonNotPrimary, ErrNotPrimary}, // reason wins over code
	{codes.InvalidArgument, "", ErrInvalidArgument},
	{codes.ResourceExhausted, "", ErrTooLarge},
	{codes.Unavailable, "", ErrUnavailable},
	{codes.NotFound, "", ErrNotFound},
	{codes.DeadlineExceeded, "", context.DeadlineExceeded},
	{codes.Canceled, "", context.Canceled},
	{codes.Unauthenticated, "", ErrUnauthenticated},
	{codes.PermissionDenied, "", ErrPermissionDenied},
	{codes.Unimplemented, "", errors.ErrUnsupported}, // a server without the Cluster service
}

func statusErr(code codes.Code, reason, msg string) error {
	if reason == "" {
		return status.Error(code, msg)
	}
	return reasonErr(code, reason, msg)
}

func TestStatusMapsToSentinel(t *testing.T) {
	for _, tc := range statusCases {
		t.Run(tc.code.String()+"/"+tc.reason, func(t *testing.T) {
			err := fromStatus(statusErr(tc.code, tc.reason, "server says why"))
			if !errors.Is(err, tc.want) {
				t.Fatalf("fromStatus = %v; want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), "server says why") {
				t.Fatalf("error %q lost the server's message", err)
			}
		})
	}
}

func TestUnknownStatusKeepsCode(t *testing.T) {
	err := fromStatus(status.Error(codes.Internal, "boom"))
	if status.Code(err) != codes.Internal || !strings.HasPrefix(err.Error(), "client: ") {
		t.Fatalf("fromStatus = %v (code %v)", err, status.Code(err))
	}
	plain := errors.New("plain")
	if got := fromStatus(plain); got != plain {
		t.Fatalf("fromStatus(plain) = %v", got)
	}
	// A reason of another domain is ignored.
	st, _ := status.New(codes.InvalidArgument, "x").WithDetails(
		&errdetails.ErrorInfo{Domain: "example.com", Reason: api.ReasonNotPrimary})
	if err := fromStatus(st.Err()); !errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrNotPrimary) {
		t.Fatalf("fromStatus = %v; want ErrInvalidArgument only", err)
	}
}

// Each server error reaches the caller of a read as its sentinel, and
// errors that another endpoint might not have end in ErrUnavailable.
func TestServerErrorsReachCaller(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	cfg := DefaultConfig()
	cfg.Endpoints, cfg.Logger, cfg.NoLeaderWait = []string{n.addr}, zaptest.NewLogger(t), true // the refusals themselves
	c := newClientCfg(t, cfg)
	for _, tc := range statusCases {
		t.Run(tc.code.String()+"/"+tc.reason, func(t *testing.T) {
			n.setHooks(func(context.Context, string, proto.Message) error {
				return statusErr(tc.code, tc.reason, "server says why")
			}, nil)
			defer n.setHooks(nil, nil)
			_, err := c.Get(testCtx(t), []byte("k"))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "server says why") {
				t.Fatalf("Get = %v; want %v with the server's message", err, tc.want)
			}
			if shouldFailover(statusErr(tc.code, tc.reason, "")) && !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Get = %v; want ErrUnavailable after trying every endpoint", err)
			}
		})
	}
}

func TestConflictError(t *testing.T) {
	var err error = &ConflictError{Key: []byte("k"), Seqno: 42}
	if got, want := err.Error(), `client: conflict on key "k" written at seqno 42`; got != want {
		t.Fatalf("Error() = %q; want %q", got, want)
	}
	wrapped := errors.Join(errors.New("ctx"), err)
	var ce *ConflictError
	if !errors.Is(wrapped, ErrConflict) || !errors.As(wrapped, &ce) || ce.Seqno != 42 {
		t.Fatalf("wrapped conflict not matched: %v", wrapped)
	}
	if errors.Is(err, ErrIndeterminate) {
		t.Fatal("conflict matches ErrIndeterminate")
	}
}
