// Package workload runs Jepsen-style workloads against a cluster and records
// what they did. It reaches the cluster only through the Cluster interface
// and package client and imports no test package, so that a command can run
// its workloads too.
//
// A Workload (Bank, Append, Set, Register; New makes one by name) says how
// the data starts (Setup), what each client does (Step), what is read at the
// end (Final) and how the history is checked (Check, with package checker).
// Run starts concurrent clients of one workload, spread over every member,
// and records each operation's invoke and complete times and outcome: ok;
// fail, definitely not applied; info, unknown (see Classify and NotApplied).
// A Faults injector works meanwhile. Then Run heals, waits for the members
// to converge, takes the final reads and every member's Contents, checks the
// history, compares the contents (DiffContents), writes the history, and
// returns a Report.
package workload
