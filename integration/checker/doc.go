// Package checker decides whether recorded histories of Galena's Jepsen-style
// workloads show anomalies. It does no I/O except reading and writing
// histories through the io.Reader and io.Writer it is given, and owns no
// goroutines (porcupine, which CheckRegister calls, runs and stops its own).
//
// A history is a slice of Op, one per client operation, in any order. Each Op
// carries one workload payload (BankOp, TxnOp, SetOp, RegOp or WatchOp) and
// one of three outcomes, matching Galena's three commit outcomes: TypeOK
// (completed and applied), TypeFail (definitely not applied, such as a
// certification conflict) and TypeInfo (unknown: the client got no answer,
// so it may or may not have been applied). Histories are stored as JSON
// lines by WriteHistory and read back by ReadHistory.
//
// There is one checker per workload:
//
//   - CheckBank: snapshot reads of all accounts keep the total and never see a
//     negative balance; the members' final reads agree.
//   - CheckSet: the final read holds every acknowledged add, no failed add and
//     nothing never attempted.
//   - CheckListAppend: an Elle-style dependency-graph checker for transactions
//     of appends to and reads of lists. It reports the anomalies snapshot
//     isolation forbids (G0, G1a, G1b, G1c, G-single, lost appends, internal
//     inconsistencies) and lists G2 cycles, which snapshot isolation allows,
//     separately.
//   - CheckRegister: per-key linearizability of reads, writes and
//     compare-and-sets, through porcupine.
//   - CheckWatch: every watcher of the change feed returned exactly the
//     committed write-sets of its range, in seqno order, without gap,
//     duplicate or phantom, as the other watchers saw them, and its events
//     replay to the final contents.
//
// Each returns a Result: Valid when it found no anomaly. Checkers return an
// error only when they could not decide, for a malformed history
// (ErrMalformed), a set history without a final read (ErrNoFinalRead) or a
// linearizability search that ran out of time (ErrTimeout).
//
// Every function in this package is safe for concurrent use; none modifies
// the history it is given.
package checker
