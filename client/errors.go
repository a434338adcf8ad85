package client

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/galenadb/galena/api"
)

// Errors returned by the client. Match them with errors.Is: most are wrapped
// with the server's message or with the endpoints tried.
var (
	// ErrNotFound is returned by Get when the key has no value at the
	// transaction's snapshot (or the transaction itself deleted it).
	ErrNotFound = errors.New("client: key not found")
	// ErrConflict means a commit was certified as a conflict: it was
	// definitely not applied. The error is a *ConflictError. Update retries it.
	ErrConflict = errors.New("client: conflict")
	// ErrIndeterminate means no answer was received for a commit (deadline,
	// connection lost after sending, or the server could not tell): it may or
	// may not have been applied. Check it before any other error of a commit.
	// Update never retries it. A membership change (AddMember, RemoveMember)
	// without an answer fails with it too: check with Members.
	ErrIndeterminate = errors.New("client: outcome indeterminate")
	// ErrNotPrimary means the node is cut off from the cluster majority, or
	// the cluster has no leader. A client of several endpoints returns it
	// only when every endpoint still refused once the context ended (see
	// Elections in the package documentation).
	ErrNotPrimary = errors.New("client: node is not primary")
	// ErrTooLarge means a key, value, write-set or message is over a limit
	// (the server's, or Config.MaxCallSize).
	ErrTooLarge = errors.New("client: too large")
	// ErrInvalidKey means a key is empty or malformed.
	ErrInvalidKey = errors.New("client: invalid key")
	// ErrInvalidArgument is any other invalid request or configuration.
	ErrInvalidArgument = errors.New("client: invalid argument")
	// ErrSnapshotTooOld means the transaction's snapshot is below the
	// server's certification bound. Update retries it.
	ErrSnapshotTooOld = errors.New("client: snapshot too old")
	// ErrSnapshotUnavailable means the snapshot (or the session's min seqno)
	// is newer than the serving node has applied within its wait bound.
	ErrSnapshotUnavailable = errors.New("client: snapshot unavailable")
	// ErrOverloaded means the member had too many commits in flight and
	// refused this one at once: it was not applied. Update retries it after
	// a backoff; a caller of Commit should back off too.
	ErrOverloaded = errors.New("client: server overloaded")
	// ErrNoSpace means the member's data is over its space quota: it
	// refused the commit at once (nothing was applied), as it refuses every
	// commit that puts a value until space is freed; commits that only
	// delete, and reads, are served. The error's text says what to do. It
	// is not retried.
	ErrNoSpace = errors.New("client: server out of space")
	// ErrUnavailable means no endpoint could serve the call.
	ErrUnavailable = errors.New("client: unavailable")
	// ErrWatchBehind: a member cut a watch that read slower than the
	// commits it follows. A Watcher handles it itself (it watches again
	// from its progress); other calls never see it.
	ErrWatchBehind = errors.New("client: watch fell behind")
	// ErrUnauthenticated means the member verifies clients and the client
	// presented no certificate (Config.TLS): nothing was done.
	ErrUnauthenticated = errors.New("client: unauthenticated")
	// ErrPermissionDenied means the role of the client's certificate does
	// not allow the call (a read-only certificate committing, say): nothing
	// was done.
	ErrPermissionDenied = errors.New("client: permission denied")
	// ErrReadOnly is returned by Put and Delete inside View.
	ErrReadOnly = errors.New("client: write in read-only transaction")
	// ErrTxnDone is returned by a transaction after Commit or Rollback.
	ErrTxnDone = errors.New("client: transaction already committed or rolled back")
	// ErrClosed is returned by every call after Client.Close.
	ErrClosed = errors.New("client: closed")
	// ErrMemberNotFound means a membership change names a member the
	// cluster does not have.
	ErrMemberNotFound = errors.New("client: member not found")
	// ErrMemberExists means AddMember names an id or address already in use.
	ErrMemberExists = errors.New("client: member already exists")
	// ErrMemberRefused means the cluster refused a membership change in its
	// current state: removing the last voter, adding a member of another
	// cluster, and the like. The server's message says which.
	ErrMemberRefused = errors.New("client: membership change refused")
)

// ConflictError is the error of a commit certified as a conflict: another
// write-set, committed at Seqno after this transaction's snapshot, wrote Key.
// errors.Is(err, ErrConflict) holds for it.
type ConflictError struct {
	Key   []byte
	Seqno uint64
	// Read is set when this serializable transaction did not write Key but
	// read it, or scanned Range, which holds it.
	Read  bool
	Range *KeyRange // the range scanned, or nil
}

// KeyRange is the keys in [Start, End); a nil End means no upper bound.
type KeyRange struct {
	Start, End []byte
}

// Error implements error.
func (e *ConflictError) Error() string {
	switch {
	case e.Range != nil:
		return fmt.Sprintf("client: conflict: key %q, in the range [%q, %q) this transaction scanned, was written at seqno %d",
			e.Key, e.Range.Start, e.Range.End, e.Seqno)
	case e.Read:
		return fmt.Sprintf("client: conflict: key %q, which this transaction read, was written at seqno %d", e.Key, e.Seqno)
	}
	return fmt.Sprintf("client: conflict on key %q written at seqno %d", e.Key, e.Seqno)
}

// Is reports whether target is ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// statusErrors is the one table mapping a server's gRPC status back to a
// sentinel, for the KV and the Cluster service alike. A row with a reason
// matches an ErrorInfo of api.ErrorDomain with that reason, whatever the
// code (code documents what servers send with it); rows without a reason
// match by code alone and are consulted only when no reason row matched:
// statuses that gRPC, a server without the Cluster service
// (Unimplemented) or the check of a client's certificate answer.
var statusErrors = []struct {
	code   codes.Code
	reason string
	err    error
}{
	{codes.InvalidArgument, api.ReasonInvalidKey, ErrInvalidKey},
	{codes.InvalidArgument, api.ReasonTooLarge, ErrTooLarge},
	{codes.InvalidArgument, api.ReasonInvalidWriteSet, ErrInvalidArgument},
	{codes.FailedPrecondition, api.ReasonSnapshotTooOld, ErrSnapshotTooOld},
	{codes.FailedPrecondition, api.ReasonSnapshotUnavailable, ErrSnapshotUnavailable},
	{codes.Unavailable, api.ReasonNotPrimary, ErrNotPrimary},
	{codes.Unknown, api.ReasonIndeterminate, ErrIndeterminate},
	{codes.Unavailable, api.ReasonShuttingDown, ErrUnavailable},
	{codes.ResourceExhausted, api.ReasonOverloaded, ErrOverloaded},
	{codes.ResourceExhausted, api.ReasonNoSpace, ErrNoSpace},
	{codes.ResourceExhausted, api.ReasonWatchBehind, ErrWatchBehind},
	{codes.AlreadyExists, api.ReasonMemberExists, ErrMemberExists},
	{codes.NotFound, api.ReasonMemberNotFound, ErrMemberNotFound},
	{codes.FailedPrecondition, api.ReasonMemberRefused, ErrMemberRefused},
	{codes.FailedPrecondition, api.ReasonNoData, ErrInvalidArgument}, // back up a data member instead

	{codes.InvalidArgument, "", ErrInvalidArgument},
	{codes.ResourceExhausted, "", ErrTooLarge},
	{codes.Unavailable, "", ErrUnavailable},
	{codes.NotFound, "", ErrNotFound},
	{codes.DeadlineExceeded, "", context.DeadlineExceeded},
	{codes.Canceled, "", context.Canceled},
	{codes.Unimplemented, "", errors.ErrUnsupported},
	{codes.Unauthenticated, "", ErrUnauthenticated},
	{codes.PermissionDenied, "", ErrPermissionDenied},
}

// reasonOf returns the Galena reason attached to st, or "".
func reasonOf(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == api.ErrorDomain {
			return info.GetReason()
		}
	}
	return ""
}

// sentinelOf returns the sentinel for st, or nil when the table has none.
func sentinelOf(st *status.Status) error {
	if reason := reasonOf(st); reason != "" {
		for _, row := range statusErrors {
			if row.reason == reason {
				return row.err
			}
		}
	}
	for _, row := range statusErrors {
		if row.reason == "" && row.code == st.Code() {
			return row.err
		}
	}
	return nil
}

// fromStatus translates an error of a gRPC call into the client's errors,
// keeping the server's message. Errors that are not statuses, and statuses
// the table does not know, are returned wrapped but otherwise unchanged.
func fromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	if sentinel := sentinelOf(st); sentinel != nil {
		return fmt.Errorf("%w: %s", sentinel, st.Message())
	}
	return fmt.Errorf("client: %w", err)
}

// shouldFailover reports whether a call that failed with err may be sent to
// another endpoint: the transport failed or the node cannot serve.
func shouldFailover(err error) bool {
	return leaderless(err) || status.Code(err) == codes.Unavailable
}

// leaderless reports a refusal for want of a leader: the member is not
// primary (an election, or it is cut off) or is shutting down. Either
// refusal means the call was not served.
func leaderless(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	switch reasonOf(st) {
	case api.ReasonNotPrimary, api.ReasonShuttingDown:
		return true
	}
	return false
}
