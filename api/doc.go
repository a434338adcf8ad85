// Package api is the wire contract. Its subpackages are generated:
// galenapb from galena.proto (the KV and Cluster services and their
// messages) and writesetpb from writeset.proto (the write-set, which also
// travels in the replicated log); api/generate.sh regenerates both.
//
// This package holds what is not generated: the error reasons a server
// attaches to a gRPC status, so that a client maps it back to a precise
// sentinel error. A member maps its errors to codes and reasons in one
// table (node/rpc), and the client maps them back in one table of its own.
package api
