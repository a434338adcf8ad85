// Package node assembles one Galena member: one listener split by cmux into
// Raft/forwarding (groupcomm), gRPC (the KV and Cluster services of package
// rpc, which the member serves through rpc.Member) and HTTP (health,
// metrics, pprof); storage; certification; the transaction service. New
// starts it, Close stops it in reverse order. The galena binary and the
// in-process test clusters both build members through New.
//
// Config nests each part's own configuration (Group, Txn, Storage, Apply),
// so a setting is declared once, in the package that uses it; the member
// fills in what it owns (its identity, directories, cluster id, loggers,
// dialers and callbacks) and refuses a configuration that sets those in a
// part.
//
// The member reports its state (JOINING, SYNCED, ... and the logs of their
// changes) and announces its checkpoints. What it does about its own
// membership is groupcomm's membership policy; the member answers the
// policy's questions to other members over their Cluster service
// (groupcomm.Peers).
package node
