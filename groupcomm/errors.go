package groupcomm

import "errors"

// Errors returned by Group. Broadcast's errors say whether the entry may have
// been ordered: only ErrIndeterminate leaves that open.
var (
	// ErrNotPrimary: no leader could be reached within Config.NotPrimaryTimeout;
	// this member is cut off from the majority. The entry was not ordered.
	ErrNotPrimary = errors.New("groupcomm: not primary: no reachable leader in a majority")
	// ErrIndeterminate: the entry may or may not have been ordered (leadership
	// was lost, the connection to the leader broke, or ctx ended while waiting).
	ErrIndeterminate = errors.New("groupcomm: outcome unknown")
	// ErrClosed: the Group is closed (or closing), or its apply loop has
	// stopped. The entry was not ordered unless Broadcast said
	// ErrIndeterminate.
	ErrClosed = errors.New("groupcomm: closed")
	// ErrHeldBack: flow control held the entry back on the leader until
	// the caller gave up (a member applies too far behind). The entry was
	// not ordered.
	ErrHeldBack = errors.New("groupcomm: held back by flow control")
	// ErrStopped: the apply loop stopped on a fatal error; the member can no
	// longer vouch for its state.
	ErrStopped = errors.New("groupcomm: apply loop stopped")
)
