package node

import (
	"context"
	"errors"
	"path"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/security"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// methodRoles is the role each RPC needs when the member verifies clients
// (Config.ClientCertAuth). A method not listed needs the member role.
var methodRoles = map[string]security.Role{
	galenapb.KV_Get_FullMethodName:               security.RoleRead,
	galenapb.KV_Scan_FullMethodName:              security.RoleRead,
	galenapb.KV_Status_FullMethodName:            security.RoleRead,
	galenapb.KV_Batch_FullMethodName:             security.RoleRead, // and each call its own method's role
	galenapb.KV_Watch_FullMethodName:             security.RoleRead,
	galenapb.Cluster_MemberList_FullMethodName:   security.RoleRead,
	galenapb.Cluster_Digest_FullMethodName:       security.RoleRead,
	galenapb.KV_Commit_FullMethodName:            security.RoleWrite,
	galenapb.Cluster_MemberAdd_FullMethodName:    security.RoleAdmin,
	galenapb.Cluster_MemberRemove_FullMethodName: security.RoleAdmin,
	galenapb.Cluster_Backup_FullMethodName:       security.RoleAdmin,
}

// securityOptions are the gRPC server options of TLS: the connection's TLS
// state for every call and, with ClientCertAuth, the check of the caller's
// role. Without TLS there are none.
func (n *Node) securityOptions() []grpc.ServerOption {
	if n.cfg.TLS == nil {
		return nil
	}
	opts := []grpc.ServerOption{grpc.Creds(tlsTerminated{})}
	if n.cfg.ClientCertAuth { // the unary check is in unaryInterceptors
		opts = append(opts, grpc.ChainStreamInterceptor(n.authorizeStream))
	}
	return opts
}

func (n *Node) authorizeUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := n.authorize(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (n *Node) authorizeStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := n.authorize(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}

// authorize admits a call whose caller's certificate has the role the
// method needs; members have every right. A refusal is logged once, as a
// warning, and answered Unauthenticated (no certificate) or
// PermissionDenied.
func (n *Node) authorize(ctx context.Context, method string) error {
	need, ok := methodRoles[method]
	if !ok {
		need = security.RoleMember
	}
	have, name, err := callerRole(ctx)
	if err == nil && have.Allows(need) {
		return nil
	}
	var from string
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		from = p.Addr.String()
	}
	call := path.Base(method)
	n.lg.Warn("denied a call", zap.String("method", call), zap.String("from", from),
		zap.String("certificate", name), zap.Stringer("role", have), zap.Stringer("needs", need), zap.NamedError("reason", err))
	switch {
	case errors.Is(err, security.ErrNoCertificate):
		return status.Errorf(codes.Unauthenticated, "%s needs a client certificate signed by the cluster's CA with role %v or higher: this member verifies clients (--client-cert-auth)", call, need)
	case err != nil:
		return status.Errorf(codes.PermissionDenied, "%s denied: %v", call, err)
	}
	return status.Errorf(codes.PermissionDenied, "%s denied: certificate %q has role %v, and %s needs role %v or higher", call, name, have, call, need)
}

// callerRole is the role of the certificate the caller presented.
func callerRole(ctx context.Context) (security.Role, string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return security.RoleNone, "", security.ErrNoCertificate
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return security.RoleNone, "", security.ErrNoCertificate
	}
	return security.PeerRole(info.State)
}
