// Package integration tests Galena as operators and clients see it: real
// galena processes on loopback, each with its own data directory and log
// file, driven through package client and the galena command line, while
// faults break them.
//
// The tests stand on four parts, as etcd's tests/robustness does: package
// harness builds the binary and runs the members (start, stop, kill, pause,
// the waits, the CLI); package nemesis puts a proxy on every link between
// them and injects faults, checking that each took effect; package workload
// runs a workload's clients (and the watch workload's watchers of the
// change feed), records their history and takes the members' final state;
// package checker checks the history. This package holds only
// tests: the lifecycle of members, operators' procedures (join, remove,
// restart, crash, quorum loss, arbitrator, state transfer, memory), fault
// scenarios, and TestJepsen, which runs every workload under a nemesis, each
// with its share of the fault kinds.
//
// The flags -jepsen.duration, -jepsen.clients, -jepsen.workloads,
// -jepsen.nemesis, -jepsen.seed and -jepsen.history-dir shape TestJepsen;
// -ops.sst-mb and -ops.figures make the operators' measurements larger.
// Every test that starts galena processes skips under -short.
package integration
