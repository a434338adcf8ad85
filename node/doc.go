// Package node assembles one Galena member: one listener split by cmux into
// Raft/forwarding (groupcomm), gRPC (the KV service) and HTTP (health,
// metrics, pprof); storage; certification; the transaction service. New
// starts it, Close stops it in reverse order. The galena binary and the
// in-process test clusters both build members through New.
package node
