// Package workload runs Jepsen-style workloads against a cluster and records
// what they did. It reaches the cluster only through the Cluster interface
// and package client and imports no test package, so that a command can run
// its workloads too.
//
// Run runs one workload of Names: bank (transfers between accounts), append
// (Elle-style list appends), set (unique inserts), register (reads, writes
// and compare-and-set) or watch (commits followed by watchers of the change
// feed on every member). A workload says how the data starts, what each
// client does, what is read at the end and how the history is checked (with
// package checker). Run starts concurrent clients of it, spread over every
// member, and records each operation's invoke and complete times and
// outcome: ok; fail, definitely not applied; info, unknown. A Faults
// injector works meanwhile, and so do the watch workload's watchers. Then Run heals, waits for the members to
// converge, takes the final reads and every member's Contents, checks the
// history, compares the contents (DiffContents), writes the history, and
// returns a Report.
package workload
