// Package nemesis breaks a harness cluster while clients work: it kills,
// pauses and partitions members, checks that each fault took effect, and
// heals it. It knows nothing of workloads or histories.
//
// NewCluster starts a harness cluster whose members reach each other only
// through a Net: a proxy per ordered pair of members (the binary's
// --peer-route points a member's dials at them; harness.Options.Network
// wires it in). The Net blocks and delays links, one direction at a time:
// Isolate, Delay, Heal, and counts what each link carried (Stats).
//
// A Nemesis injects one fault of a Kind at a time: SIGKILL of a member, of
// the leader or of every member; SIGSTOP; an isolated leader, a split, a
// bridge, a one-way link; latency. Each fault must show its effect while it
// lasts, as the kernel and the proxies see it (a killed process exited on
// SIGKILL, a paused one is stopped, cut links dropped bytes, slow ones
// delivered bytes late), or fails. A Schedule runs a mix of kinds, at random
// or in turn, in a loop, and records an Event per fault; Nemesis.HealAll
// undoes whatever is left. A FaultSpec says which faults one Jepsen run
// injects (-jepsen.nemesis, and its share of the kinds when several
// workloads run) and gives its Schedule.
package nemesis
