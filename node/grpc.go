package node

import (
	"context"
	"time"

	"github.com/galenadb/galena/node/rpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Limits of the member's gRPC server, for clients and other members alike.
const (
	// grpcMaxConcurrentStreams bounds the calls one client connection has
	// open at once; further calls wait in the client. Commits are bounded
	// per member as well, by Config.MaxInflightCommits.
	grpcMaxConcurrentStreams = 1024
	// grpcKeepaliveMinTime: a client that pings more often is disconnected
	// (GOAWAY "too_many_pings"); pings without calls in flight are allowed.
	grpcKeepaliveMinTime = 10 * time.Second
	// grpcKeepaliveTime and grpcKeepaliveTimeout: a connection idle for
	// grpcKeepaliveTime is pinged and closed if the ping is not answered
	// within grpcKeepaliveTimeout, so vanished clients do not hold
	// connections.
	grpcKeepaliveTime    = 30 * time.Second
	grpcKeepaliveTimeout = 10 * time.Second
	// grpcMessageSlack is what a message may carry beyond the largest
	// write-set: the rest of the request or response.
	grpcMessageSlack = 1 << 20
	// grpcStreamWorkers serve calls on goroutines that are kept, whose
	// stacks have already grown, instead of a new goroutine per call that
	// grows its stack again (about 5% of a member's CPU under load). Beyond
	// that many calls at once, a call gets its own goroutine as before.
	grpcStreamWorkers = 128
	// grpcWindow is the flow-control window of each call and connection.
	// A fixed window turns off gRPC's bandwidth estimation, which pings the
	// peer as data arrives: two extra packets and system calls per burst
	// of small calls on loopback or a LAN.
	grpcWindow = 1 << 20
)

// grpcOptions are the gRPC server's limits and its metrics interceptors.
func (n *Node) grpcOptions() []grpc.ServerOption {
	max := n.cfg.Txn.Limits.MaxWriteSetSize + grpcMessageSlack
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(max), grpc.MaxSendMsgSize(max),
		grpc.MaxConcurrentStreams(grpcMaxConcurrentStreams),
		grpc.NumStreamWorkers(grpcStreamWorkers),
		grpc.InitialWindowSize(grpcWindow), grpc.InitialConnWindowSize(grpcWindow),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: grpcKeepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: grpcKeepaliveTime, Timeout: grpcKeepaliveTimeout}),
		grpc.ChainUnaryInterceptor(n.unaryInterceptors()...),
		grpc.ChainStreamInterceptor(n.grpcMetrics.StreamServerInterceptor()),
	}
}

// unaryInterceptors are what every unary call passes through, outermost
// first, and so every call of a Batch stream (rpc.KV.Intercept): metrics;
// with ClientCertAuth, the caller's role; on a member started failed, the
// refusal of everything but Status.
func (n *Node) unaryInterceptors() []grpc.UnaryServerInterceptor {
	ics := []grpc.UnaryServerInterceptor{n.grpcMetrics.UnaryServerInterceptor()}
	if n.cfg.TLS != nil && n.cfg.ClientCertAuth {
		ics = append(ics, n.authorizeUnary)
	}
	if n.group == nil {
		// Started failed: it answers Status and refuses every other call,
		// as a stopped member does.
		ics = append(ics, rpc.StatusOnly(func() error { return n.serving(true) }))
	}
	return ics
}

// chainUnary is ics as one interceptor, run as grpc.ChainUnaryInterceptor
// runs them: the first outermost.
func chainUnary(ics []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		h := handler
		for i := len(ics) - 1; i >= 0; i-- {
			ic, next := ics[i], h
			h = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, next) }
		}
		return h(ctx, req)
	}
}
