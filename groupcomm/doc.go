// Package groupcomm gives Galena its total order: every member sees the same
// entries in the same order, each with a unique, increasing seqno. The leader
// puts the entries that arrive together into one Raft log entry (group
// commit); a seqno is a position in the order, derived from the log alone
// (Position), not a log index.
//
// It wraps hashicorp/raft: the transport runs over the member's one listener
// (a cmux sub-listener picked by the first byte of each connection), the log is
// kept in a durable log store, snapshots stream the Deliverer's state, and
// followers forward entries to the leader over one pipelined stream per leader
// rather than one request per entry. Broadcast carries opaque bytes: groupcomm
// knows nothing of write-sets, storage or gRPC.
//
// A follower learns that an entry it forwarded committed from the leader's
// answer, and tells its own Raft at once (a commit notice) rather than
// waiting for the leader's next append, which carries the commit index only
// after CommitTimeout when no entry follows.
//
// Committed entries reach the Deliverer in log order, in batches (raft's
// BatchingFSM), on one goroutine. Broadcast returns once its entry has been
// delivered on the calling member, so a caller that then reads locally sees the
// effect of its own entry.
//
// With Config.Peers, a member also carries out its own part in membership
// changes (the membership policy): it asks to be added through
// Config.Join and to be promoted once caught up, judges its removal by the
// leader's configuration, and, on an arbitrator, keeps the log the data
// members need. It asks other members through Peers, which its owner
// implements: groupcomm knows nothing of how the questions travel.
package groupcomm
