package groupcomm

import "io"

// Entry is one committed command, in log order. Index is its seqno.
type Entry struct {
	Index uint64
	Data  []byte // the bytes given to Broadcast; owned by the Deliverer only during Deliver
}

// Deliverer consumes the totally ordered log. Every member's Deliverer sees the
// same entries in the same order; it must turn them into state
// deterministically. Its methods are called from the one apply goroutine, except
// Snapshot's WriteTo, which runs concurrently with Deliver.
type Deliverer interface {
	// Deliver hands over the commands committed up to and including log index
	// last (Raft's own entries take indexes too, so last may exceed the last
	// entry's Index, and entries may be empty). Entries at or below Applied()
	// must be skipped: they were delivered before a restart. An error stops
	// the member: the state can no longer be trusted to match its peers'.
	Deliver(entries []Entry, last uint64) error
	// Applied is the highest index whose delivery is durable.
	Applied() uint64
	// Snapshot pins the current state for a state transfer.
	Snapshot() (Snapshot, error)
	// Restore replaces the state with one written by a Snapshot whose Index
	// was index; afterwards Applied must be index.
	Restore(r io.Reader, index uint64) error
}

// Snapshot is a pinned point-in-time state.
type Snapshot interface {
	// Index is the applied index the state reflects.
	Index() uint64
	// WriteTo streams the state; it may run while Deliver goes on. When it
	// returns nil, the Deliverer's durable state (what Applied reports, and
	// the least a restart resumes from) must be at or past Index: Raft
	// compacts its log once the snapshot is complete.
	WriteTo(w io.Writer) (int64, error)
	// Release frees the pinned state.
	Release()
}
