package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
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
	var from string
	var cs *tls.ConnectionState
	if p, ok := peer.FromContext(ctx); ok {
		if p.Addr != nil {
			from = p.Addr.String()
		}
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			cs = &info.State
		}
	}
	if r := n.admit(path.Base(method), need, from, cs); r != nil {
		return status.Error(r.code, r.msg)
	}
	return nil
}

// refusal is why a caller may not make a call: it presented no
// certificate (Unauthenticated) or one without the role (PermissionDenied).
type refusal struct {
	code codes.Code
	msg  string
}

// admit checks that the certificate of a caller at from, on a connection
// whose TLS state is cs (nil: not TLS), has the role need for call; a
// refusal is logged once, as a warning.
func (n *Node) admit(call string, need security.Role, from string, cs *tls.ConnectionState) *refusal {
	have, name, err := security.RoleNone, "", security.ErrNoCertificate
	if cs != nil {
		have, name, err = security.PeerRole(*cs)
	}
	if err == nil && have.Allows(need) {
		return nil
	}
	n.lg.Warn("denied a call", zap.String("method", call), zap.String("from", from),
		zap.String("certificate", name), zap.Stringer("role", have), zap.Stringer("needs", need), zap.NamedError("reason", err))
	switch {
	case errors.Is(err, security.ErrNoCertificate):
		return &refusal{codes.Unauthenticated, fmt.Sprintf("%s needs a client certificate signed by the cluster's CA with role %v or higher: this member verifies clients (--client-cert-auth)", call, need)}
	case err != nil:
		return &refusal{codes.PermissionDenied, fmt.Sprintf("%s denied: %v", call, err)}
	}
	return &refusal{codes.PermissionDenied, fmt.Sprintf("%s denied: certificate %q has role %v, and %s needs role %v or higher", call, name, have, call, need)}
}
