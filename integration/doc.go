// Package integration tests Galena as operators and clients see it: real
// galena processes on loopback, each with its own data directory and log
// file, driven through package client and the galena command line.
//
// Package harness builds the binary and starts, stops and waits for the
// members (see its documentation); this package adds faults and workloads on
// top and holds the tests.
//
// Faults: harness.Member.Pause and Resume SIGSTOP and SIGCONT a member.
// NewProxiedCluster routes every member-to-member link through a proxy of
// its own (harness.Options.Network: the binary is built with -tags faults,
// whose --peer-route points a member's dials at the proxies), and the Net it
// returns blocks, splits, bridges or delays links. A Nemesis injects one
// fault of a Kind at a time, checks its effect as the kernel and the proxies
// see it (Fault.Effect), and heals it; a Schedule runs a mix of them, at
// random or in turn, in a loop while clients work, recording an Event per
// fault; Nemesis.HealAll undoes whatever is left (harness.Cluster.Revive,
// the processes of it). FaultsFor turns a FaultSpec (-jepsen.nemesis and
// -jepsen.seed) into the Faults of a Jepsen Run.
//
// Every test that starts galena processes skips under -short.
package integration
