// Package client is the Go client of a Galena cluster: transactions with
// snapshot isolation or, on request, serializable, over gRPC, automatic
// retry of conflicts, endpoint failover and session causality. It depends
// only on the wire contract in package api.
//
// # Transactions
//
// A transaction reads at one snapshot, chosen by the server that answers its
// first read; its writes are buffered in the client and sent at Commit as one
// write-set, which every member certifies identically (first committer wins).
// Servers keep no per-transaction state: Begin and Rollback make no round
// trip, and a transaction's reads see its own buffered writes.
//
// Update runs a function in a transaction and commits it, running it again
// (after a backoff) when the commit conflicts with a concurrent one. View runs
// a read-only function. Get, Put and Delete are one-shot helpers.
//
//	err := c.Update(ctx, func(tx *client.Txn) error {
//		v, err := tx.Get(ctx, []byte("k"))
//		if err != nil && !errors.Is(err, client.ErrNotFound) {
//			return err
//		}
//		return tx.Put([]byte("k"), append(v, '!'))
//	})
//
// # Isolation
//
// By default a transaction runs under snapshot isolation: its commit fails
// only when a key it writes was written after its snapshot. That still
// allows write skew: two transactions each read what the other writes and
// both commit, as two on-call doctors who each check the other is on call
// before going off. With Serializable (per transaction) or
// Config.Serializable (the client's default), the write-set also carries
// the keys the transaction read and the ranges it scanned, and its commit
// fails with ErrConflict when any of them was written after its snapshot
// too; the *ConflictError says whether the key was written, read
// (ConflictError.Read) or in a scanned range (ConflictError.Range).
// Serializable transactions then behave as if each ran alone at its commit's
// seqno; one that writes nothing needs no certification, its snapshot being
// a point of that order. SnapshotIsolation overrides the client's default.
//
//	err := c.Update(ctx, func(tx *client.Txn) error {
//		v, err := tx.Get(ctx, []byte("oncall/bob"))
//		if err != nil || string(v) != "on" {
//			return err
//		}
//		return tx.Put([]byte("oncall/alice"), []byte("off"))
//	}, client.Serializable())
//
// # Commit outcomes
//
// A commit has three outcomes: nil (applied), ErrConflict (a *ConflictError
// naming the key and the seqno that wrote it; definitely not applied) and
// ErrIndeterminate (no answer; it may or may not have been applied). Update
// retries only conflicts (and ErrSnapshotTooOld). When the connection to a
// member fails during a commit, the client resends the same write-set, with
// the same id, to the next member: the cluster applies an id at most once.
//
// # Failover and causality
//
// The client connects to every endpoint as soon as it is created and keeps
// one connection per endpoint. A call tries the endpoints whose connection is
// ready first, starting with the one that last answered; when none is ready,
// it first waits, at most Config.DialTimeout, for one to be. So an endpoint
// that is down, or that accepts connections but never answers (a process
// stopped with SIGSTOP), costs a call nothing while another one is connected,
// and at most about DialTimeout otherwise. A transaction stays on the endpoint
// of its first read; when that endpoint is unavailable (or not primary) its
// reads move to the next one at the same snapshot. When no endpoint answers,
// calls fail with ErrUnavailable.
//
// The client remembers the highest seqno it has seen (snapshots read and
// commits) and asks every new transaction's first read and every commit to
// wait until the serving member has applied it, so a session never observes
// the cluster going backwards, even across members. Seen and Observe carry
// a session from one Client to another (a user moving between regions).
//
// # Elections
//
// While the cluster elects a leader (after the leader failed, say), members
// refuse commits, membership changes and linearizable reads with
// ErrNotPrimary. When every endpoint fails and at least one of them refused
// for want of a leader (not primary, or shutting down), the client pauses, a
// jittered backoff from 50 ms doubling up to 1 s, and tries the endpoints
// again, until the call's context ends. Those refusals are definite, and a
// commit is resent with the same write-set id, so it is applied at most once.
// When the context ends first, a commit fails with ErrIndeterminate if any
// attempt may have reached a member, else with the last refusal
// (ErrNotPrimary, wrapped in ErrUnavailable); a refusal of the write-set
// itself (ErrInvalidArgument, ErrTooLarge, ...) is returned at once. A client
// of a single endpoint waits too: its member may be the only survivor the
// caller knows of. Config.NoLeaderWait turns the waiting off, for a probe
// that wants a member's own answer: a member cut off from the majority
// refuses within its not-primary timeout.
//
// # Membership
//
// Members lists the cluster's configuration; AddMember adds a member as a
// non-voter, which the cluster promotes once it has caught up; RemoveMember
// removes a member, running or not. Any member takes a change and passes it
// to the leader. Refusals come back as ErrMemberExists, ErrMemberNotFound or
// ErrMemberRefused with the server's message. A change is sent to another
// endpoint only while no member can have received it; one that may have
// arrived without an answer fails with ErrIndeterminate.
//
// # Concurrency
//
// A Client is safe for concurrent use and starts no goroutines of its own; a
// Txn is not safe for concurrent use.
package client
