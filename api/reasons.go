package api

// ErrorDomain is the domain of every errdetails.ErrorInfo a server sends.
const ErrorDomain = "galena.io"

// Reasons carried in errdetails.ErrorInfo.Reason, by the KV and the Cluster
// service alike: every refusal of Galena's own carries one. A status without
// one (an invalid argument of another kind, a deadline, what gRPC or the
// authorization of a call answers itself) is mapped by its code alone.
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
	ReasonNoSpace             = "NO_SPACE"             // ResourceExhausted: the node's data is over its space quota; only deletes are taken
	ReasonWatchBehind         = "WATCH_BEHIND"         // ResourceExhausted: a watch read slower than the commits it follows; watch again from its progress
	ReasonMemberExists        = "MEMBER_EXISTS"        // AlreadyExists: the id or the address of a member to add is in use
	ReasonMemberNotFound      = "MEMBER_NOT_FOUND"     // NotFound: no member has the id a membership change names
	ReasonMemberRefused       = "MEMBER_REFUSED"       // FailedPrecondition: removing the last voter, adding a member of another cluster
	ReasonNoData              = "NO_DATA"              // FailedPrecondition: a backup asked of an arbitrator, which keeps no data
)
