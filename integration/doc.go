// Package integration tests Galena as operators and clients see it: real
// galena processes on loopback, each with its own data directory and log
// file, driven through package client and the galena command line.
//
// Package harness builds the binary and starts, stops and waits for the
// members; package nemesis injects faults into them (see their
// documentation). This package drives workloads under a nemesis (Run,
// Workload, Recorder), reads and compares the members' contents, and holds
// the tests.
//
// Every test that starts galena processes skips under -short.
package integration
