// Package harness runs real galena processes on loopback for the tests in
// package integration, each member with its own port, data directory and log
// file, and speaks to them as clients and operators do: their Status RPC and
// /status page, package client and the galena command line. It knows nothing
// of faults or workloads.
//
// Build compiles the binary once per test binary (with -tags faults).
// NewCluster starts members that bootstrap one cluster and cleans them up
// when the test ends. A Cluster speaks for the set: addresses, the waits
// (Leader, WaitReady, WaitConverged) that poll the members' Status with a
// deadline, clients and the CLI of every member, AddMember, and Revive,
// which brings every member back up. Each Member controls its own process
// (Start, Stop, Kill, Restart, Pause, Resume, Wipe) and answers for itself
// (Status, CLI, Probe); each start runs a Process, which says what it logged
// (Log, WaitLog, StartedApplied) and how it exited (ExpectExit, Wait,
// ExitState). PeakRSS, ResetPeakRSS, AnonRSS and SampleAnon measure a
// process's memory (Linux); RunCLI and RunStart run the binary once, outside
// any cluster.
//
// Options.Network lets a caller put a network of its own between the members
// (package integration's proxies): the harness passes each member the
// Router's --peer-route.
//
// Every method that can fail returns an error instead of failing the test,
// so it may be called from any goroutine; only NewCluster and Member.Probe,
// which fail the test, need the test's goroutine.
package harness
