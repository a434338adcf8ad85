// Package certification decides commit or abort for totally ordered
// write-sets, and applies the committed ones to storage.
//
// Every member feeds the same ordered write-sets (seqno = Raft log index)
// through the same rule, so every member reaches the same verdicts and the
// same state: the decision is a pure function of the ordered log prefix. There
// is no clock, no randomness and no dependence on map iteration order here.
//
// The rule is first committer wins (snapshot isolation): a write-set read at
// snapshot S and ordered at seqno N commits unless a key it writes was written
// by a committed write-set with a seqno in (S, N). Write-sets that read at a
// snapshot older than N - Window are refused with ErrSnapshotTooOld, and a
// write-set whose id was already ordered within the window is a no-op that
// reports the first outcome, which makes a resend of the same write-set safe.
//
// Certifier holds the rule and an in-memory index of recent writes that falls
// back to the Store for older keys; it does no I/O but through the Store.
// Applier drives a Certifier over batches of ordered entries and applies the
// results to storage; it implements groupcomm's Deliverer.
package certification
