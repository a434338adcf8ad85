// Package rpc is a member's gRPC face: the KV service over the transaction
// service (txn), and the Cluster service over the member's group. It is
// the one place errors meet the wire: one table maps every error the
// services return to a gRPC code and, for Galena's own refusals, a reason
// (api.Reason...) that a client maps back to its own sentinel.
//
// The KV service also serves the Get, Scan and Commit calls a client sends
// on one Batch stream per connection, each through the unary call's
// interceptors and method (batch.go).
//
// The package holds no state, and its goroutines are a Batch stream's,
// which end before the stream's call returns. It knows the member
// it serves only through Member, which node implements; node registers the
// services on its gRPC server.
//
// A membership change sent to a follower is passed on, once, to the leader
// the follower knows, marked as forwarded in its metadata: a member that
// lost the lead meanwhile refuses it rather than passing it on again.
package rpc
