// Command galena runs and operates a Galena cluster: `start` runs a member,
// `demo` runs a three-member cluster in this process under the bank
// workload, and `bench` measures a cluster under kvbench's workloads;
// `get`, `put`, `del`, `scan` and `status` talk to a running cluster,
// `member` lists, adds and removes members, `check` compares the members'
// digests of what they applied, and `backup` copies a member's state into a
// file, from which `restore` seeds the members of a new cluster. `cert`
// makes a development CA and the certificates of members and clients, for
// TLS.
//
// The command parses flags and prints. It starts members through package
// node (node/local for the clusters of demo and bench --local) and does
// everything a client does through package client; the bank workload is
// integration/workload/bank's, the one the fault tests run.
//
// Exit codes: 0 on success, 1 when a command fails, 2 on a usage error (bad
// flags or arguments; nothing was done).
package main
