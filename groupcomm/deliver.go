package groupcomm

import "io"

// Entry is one committed command, in log order: the bytes one Broadcast
// call gave. Several entries may share a log index: the leader puts the
// commands queued together into one log entry (see batch.go), and each
// gets a seqno of its own.
type Entry struct {
	Index uint64 // the log index of the Raft entry that carried it
	Seqno uint64 // its position in the order (see Position)
	Data  []byte // the bytes given to Broadcast; owned by the Deliverer only during Deliver
}

// Position is a point in the order: a log index and the seqno reached
// there. Every Raft entry advances the seqno by the number of commands it
// carries, or by one if it carries one or none, so a log without batched
// entries has seqno = index, and seqno - index only grows. Both are a pure
// function of the log, so every member gives a command the same seqno.
type Position struct {
	Index uint64
	Seqno uint64
}

// Deliverer consumes the totally ordered log. Every member's Deliverer sees the
// same entries in the same order; it must turn them into state
// deterministically. Its methods are called from the one apply goroutine, except
// Snapshot's WriteTo, which runs concurrently with Deliver.
type Deliverer interface {
	// Deliver hands over the commands committed up to and including log
	// position last (Raft's own entries take indexes too, so last may be
	// past the last entry's, and entries may be empty). Entries at or
	// below Applied().Index must be skipped: they were delivered before a
	// restart. Once Deliver returns nil, the Deliverer's position is last.
	// An error stops the member: the state can no longer be trusted to
	// match its peers'.
	Deliver(entries []Entry, last Position) error
	// Applied is the highest position whose delivery is durable.
	Applied() Position
	// Snapshot pins the current state for a state transfer.
	Snapshot() (Snapshot, error)
	// Restore replaces the state with one written by a Snapshot whose Index
	// was index; afterwards Applied().Index must be index.
	Restore(r io.Reader, index uint64) error
}

// Snapshot is a pinned point-in-time state.
type Snapshot interface {
	// Index is the applied log index the state reflects, and Seqno the
	// applied seqno.
	Index() uint64
	Seqno() uint64
	// WriteTo streams the state; it may run while Deliver goes on. When it
	// returns nil, the Deliverer's durable state (what Applied reports, and
	// the least a restart resumes from) must be at or past Index: Raft
	// compacts its log once the snapshot is complete.
	WriteTo(w io.Writer) (int64, error)
	// Release frees the pinned state.
	Release()
}
