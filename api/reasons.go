// Package api holds the parts of the wire contract that are not generated:
// the error reasons a server attaches to a gRPC status so that a client can
// map it back to a precise sentinel error. The services and their messages
// are in package galenapb, generated from galena.proto; the write-set, which
// also travels in the replicated log, is in package writesetpb, generated
// from writeset.proto.
package api

// ErrorDomain is the domain of every errdetails.ErrorInfo a server sends.
const ErrorDomain = "galena.io"

// Reasons carried in errdetails.ErrorInfo.Reason. A status without one is
// mapped by its code alone.
const (
	ReasonInvalidKey          = "INVALID_KEY"          // InvalidArgument: empty or malformed key
	ReasonTooLarge            = "TOO_LARGE"            // InvalidArgument: key, value or write-set over a limit
	ReasonInvalidWriteSet     = "INVALID_WRITE_SET"    // InvalidArgument: missing id, no writes, ...
	ReasonSnapshotTooOld      = "SNAPSHOT_TOO_OLD"     // FailedPrecondition: below the certification bound
	ReasonSnapshotUnavailable = "SNAPSHOT_UNAVAILABLE" // FailedPrecondition: newer than the node has applied
	ReasonNotPrimary          = "NOT_PRIMARY"          // Unavailable: the node is cut off from the majority
	ReasonIndeterminate       = "INDETERMINATE"        // Unknown: the commit's outcome is not known
	ReasonShuttingDown        = "SHUTTING_DOWN"        // Unavailable: the node is stopping
	ReasonOverloaded          = "OVERLOADED"           // ResourceExhausted: too many commits in flight on the node; retry after a backoff
)
