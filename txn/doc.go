// Package txn is the server side of a transaction: snapshot reads from local
// storage, and the commit path (admit → validate → register a waiter for the
// write-set's id → broadcast → wait for this member's own verdict).
//
// Admission bounds the commits in flight on a member, by number
// (Config.MaxInflightCommits) and by the bytes of their write-sets
// (Config.MaxInflightBytes): one more is refused at once with ErrOverloaded
// rather than queued. Before the member stops, Drain refuses new commits
// while those in flight finish.
//
// A server keeps no per-transaction state: the client buffers writes and
// sends them whole at commit, and every read names its snapshot. The first
// read of a transaction fixes the snapshot at the serving member's applied
// seqno, after waiting (bounded) until that is at least the session's
// min_seqno, so a session never reads older state than it already saw.
//
// Service holds the logic and knows no gRPC: the KV service (node/rpc)
// adapts it to the wire and maps its errors to status codes. Outcomes the
// apply loop stored come through Store, decoded.
package txn
