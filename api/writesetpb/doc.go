// Package writesetpb is generated from api/writeset.proto by
// api/generate.sh: the write-set, the message a client sends at commit and
// the replicated log carries. It holds messages only, so that the
// certification rule that reads them links no gRPC.
package writesetpb
