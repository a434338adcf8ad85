package txn

import "errors"

// Errors returned by Service. Each means the call changed nothing, except
// ErrIndeterminate, whose commit may or may not have been applied. The KV
// service (node/rpc) maps each to one gRPC status code and reason.
var (
	ErrInvalidKey          = errors.New("txn: invalid key")
	ErrTooLarge            = errors.New("txn: too large")
	ErrInvalidWriteSet     = errors.New("txn: invalid write-set")
	ErrInvalidArgument     = errors.New("txn: invalid argument")
	ErrSnapshotTooOld      = errors.New("txn: snapshot too old")
	ErrSnapshotUnavailable = errors.New("txn: snapshot not yet applied on this node")
	ErrNotPrimary          = errors.New("txn: node is not primary (cut off from the majority)")
	ErrIndeterminate       = errors.New("txn: commit outcome unknown")
	ErrShuttingDown        = errors.New("txn: node is shutting down")
	// ErrOverloaded: Config.MaxInflightCommits commits, or
	// Config.MaxInflightBytes bytes of write-sets, are already in flight on
	// this node; the commit was refused at once, before anything was sent.
	ErrOverloaded = errors.New("txn: too many commits in flight on this node")
	// ErrNoSpace: the node's data is over its space quota (see
	// Service.SetNoSpace); a write-set that puts anything is refused at
	// once, one that only deletes is not.
	ErrNoSpace = errors.New("txn: node is out of space")
	// ErrWatchBehind: a watch's buffer of events not yet sent filled up
	// (Config.WatchBuffer); the watch was cut rather than let it grow. It
	// may start again after the last progress it was given.
	ErrWatchBehind = errors.New("txn: watch fell behind the commits it follows")
)
