// Package integration tests Galena as operators and clients see it: real
// galena processes on loopback, each with its own data directory and log
// file, driven through package client and the galena command line.
//
// The harness is the foundation for fault-injection tests (etcd's
// tests/robustness, Jepsen): Build compiles the binary once per test binary,
// NewCluster starts members, each a Member that a test (or a nemesis
// goroutine) can Kill, Stop, Start and Restart, and the wait helpers
// (Leader, WaitReady, WaitConverged) poll the members' Status RPC with a
// deadline. Every method that can fail returns an error instead of failing
// the test, so it may be called from any goroutine; only NewCluster needs
// the test's goroutine.
//
// Faults: Member.Pause and Resume SIGSTOP and SIGCONT a member.
// NewProxiedCluster routes every member-to-member link through a proxy of
// its own (Options.Network: the binary is built with -tags faults, whose
// --peer-route points a member's dials at the proxies), and the Net it
// returns blocks, splits, bridges or delays links. A Nemesis injects one
// fault of a Kind at a time, checks its effect as the kernel and the proxies
// see it (Fault.Effect), and heals it; a Schedule runs a mix of them, at
// random or in turn, in a loop while clients work, recording an Event per
// fault; Nemesis.HealAll undoes whatever is left (Cluster.Revive, the
// processes of it). FaultsFor turns a FaultSpec (-jepsen.nemesis and
// -jepsen.seed) into the Faults of a Jepsen Run.
//
// Operations: AddMember adds a slot whose process joins the running cluster
// (`galena start --join`); Member.SetJoin and Wipe prepare a member's next
// start. Each start runs a Process: its ExpectExit and Wait follow a member
// that stops on its own (removed from the cluster, or diverged); its Log,
// WaitLog and StartedApplied read what it logged; PeakRSS, ResetPeakRSS and
// AnonRSS measure its memory (Linux). RunStart runs a one-off `galena start`
// that must be refused.
//
// Every test that starts galena processes skips under -short.
package integration
