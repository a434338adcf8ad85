package rpc

import (
	"context"
	"errors"

	"github.com/galenadb/galena/api"
	"github.com/galenadb/galena/groupcomm"
	"github.com/galenadb/galena/txn"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Refusals of the Cluster service's own, made before the group is asked.
var (
	// errInvalidChange: a membership change without an id or an address,
	// or with one no member could start with.
	errInvalidChange = errors.New("rpc: invalid membership change")
	// errOtherCluster: a member of another cluster asked to be added.
	errOtherCluster = errors.New("rpc: member of another cluster")
)

// statusTable maps each error the services return to its code and reason:
// the one place errors meet the wire. Rows are tried in order with
// errors.Is. A row without a reason is a status the client maps by code
// alone.
var statusTable = []struct {
	err    error
	code   codes.Code
	reason string
}{
	{txn.ErrInvalidKey, codes.InvalidArgument, api.ReasonInvalidKey},
	{txn.ErrTooLarge, codes.InvalidArgument, api.ReasonTooLarge},
	{txn.ErrInvalidWriteSet, codes.InvalidArgument, api.ReasonInvalidWriteSet},
	{txn.ErrInvalidArgument, codes.InvalidArgument, ""},
	{txn.ErrSnapshotTooOld, codes.FailedPrecondition, api.ReasonSnapshotTooOld},
	{txn.ErrSnapshotUnavailable, codes.FailedPrecondition, api.ReasonSnapshotUnavailable},
	{txn.ErrNotPrimary, codes.Unavailable, api.ReasonNotPrimary},
	{txn.ErrIndeterminate, codes.Unknown, api.ReasonIndeterminate},
	{txn.ErrShuttingDown, codes.Unavailable, api.ReasonShuttingDown},
	{txn.ErrOverloaded, codes.ResourceExhausted, api.ReasonOverloaded},
	{txn.ErrNoSpace, codes.ResourceExhausted, api.ReasonNoSpace},
	{txn.ErrWatchBehind, codes.ResourceExhausted, api.ReasonWatchBehind},

	{groupcomm.ErrMemberExists, codes.AlreadyExists, api.ReasonMemberExists},
	{groupcomm.ErrUnknownMember, codes.NotFound, api.ReasonMemberNotFound},
	{groupcomm.ErrLastVoter, codes.FailedPrecondition, api.ReasonMemberRefused},
	{errOtherCluster, codes.FailedPrecondition, api.ReasonMemberRefused},
	{errInvalidChange, codes.InvalidArgument, ""},
	{errDuplicateWatch, codes.InvalidArgument, ""},
	// A forwarded change that reached a member no longer leading, or a
	// follower that knows no leader: the change was not made.
	{groupcomm.ErrNotLeader, codes.Unavailable, api.ReasonNotPrimary},
	{groupcomm.ErrNotPrimary, codes.Unavailable, api.ReasonNotPrimary},
	// A change appended by a leader that lost the lead before it
	// committed: the next leader may commit it.
	{groupcomm.ErrIndeterminate, codes.Unknown, api.ReasonIndeterminate},
	// A backup asked of an arbitrator: it has no data to copy.
	{groupcomm.ErrArbitrator, codes.FailedPrecondition, api.ReasonNoData},
	// The group closed under a change, which may have been made: no
	// refusal reason, so the client does not take it for one.
	{groupcomm.ErrClosed, codes.Unavailable, ""},

	{context.DeadlineExceeded, codes.DeadlineExceeded, ""},
	{context.Canceled, codes.Canceled, ""},
}

// toStatus turns a service error into the gRPC status clients read: the
// code and, for Galena's own refusals, the reason (see statusTable). An
// error the table does not know is Internal.
func toStatus(err error) error { return statusOr(err, codes.Internal) }

// statusOr is toStatus, with code for an error the table does not know.
func statusOr(err error, code codes.Code) error {
	if err == nil {
		return nil
	}
	for _, row := range statusTable {
		if errors.Is(err, row.err) {
			return withReason(status.New(row.code, err.Error()), row.reason)
		}
	}
	return status.Error(code, err.Error())
}

// withReason is st, carrying reason in an errdetails.ErrorInfo of
// api.ErrorDomain unless reason is "".
func withReason(st *status.Status, reason string) error {
	if reason == "" {
		return st.Err()
	}
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Domain: api.ErrorDomain, Reason: reason}); err == nil {
		return d.Err()
	}
	return st.Err()
}
