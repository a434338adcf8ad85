// Package certification decides commit or abort for totally ordered
// write-sets. It does no I/O except through its Store.
//
// Every member feeds the same ordered write-sets (seqnos as groupcomm numbers them)
// through the same rule, so every member reaches the same verdicts: the
// decision is a pure function of the ordered log prefix. There is no clock,
// no randomness, no goroutine, no networking and no dependence on map
// iteration order here.
//
// The rule is first committer wins (snapshot isolation): a write-set read at
// snapshot S and ordered at seqno N commits unless a key it writes was written
// by a committed write-set with a seqno in (S, N). Write-sets that read at a
// snapshot older than N - Window are refused with ErrSnapshotTooOld, and a
// write-set whose id was already ordered within the window is a no-op that
// reports the first outcome, which makes a resend of the same write-set safe.
// A write-set over the limits in Config (what storage can hold) is refused
// with ErrInvalidWriteSet.
//
// Certifier holds the rule and an in-memory index of recent writes that falls
// back to the Store for older keys and ids. The package also owns the bytes
// the rule reads and records: log entries (EncodeEntry for a write-set,
// EncodeCheckpoint for a checkpoint announcement) and outcomes
// (EncodeOutcome, stored under the write-set's id). Raft logs, snapshots and
// the running digest hold them, so they never change.
//
// Package apply (certification/apply) drives a Certifier over the batches
// groupcomm delivers and applies the results to storage.
package certification
