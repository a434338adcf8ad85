package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/galenadb/galena/security"
	"github.com/soheilhy/cmux"
	"go.uber.org/zap"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// TLS on the member's port: the listener is wrapped in TLS before cmux
// splits it by protocol, so the matchers, groupcomm, gRPC and HTTP all read
// plaintext after the handshake. Which certificate a connection must present
// depends on its protocol, known only after the handshake, so the handshake
// verifies a client certificate only if one is given
// (tls.VerifyClientCertIfGiven) and each protocol checks the role:
// groupcomm's connections (Raft, forwarding) need a member certificate
// (authorizeMember); gRPC calls need a role that allows them when
// Config.ClientCertAuth is set (see auth.go).

// validateTLS checks the TLS section of the configuration.
func (c Config) validateTLS() error {
	switch {
	case c.TLS == nil && c.PeerTLS == nil:
		if c.ClientCertAuth {
			return errors.New("node: client certificate authentication needs TLS")
		}
		return nil
	case c.TLS == nil || c.PeerTLS == nil:
		return errors.New("node: TLS and PeerTLS go together: members that serve TLS dial each other with it")
	case c.TLS.ClientCAs == nil:
		return errors.New("node: TLS.ClientCAs is required: members verify each other's certificates")
	case c.TLS.ClientAuth != tls.VerifyClientCertIfGiven && c.TLS.ClientAuth != tls.RequireAndVerifyClientCert:
		return fmt.Errorf("node: TLS.ClientAuth is %v; it must verify the certificates presented (tls.VerifyClientCertIfGiven)", c.TLS.ClientAuth)
	case c.PeerTLS.InsecureSkipVerify:
		return errors.New("node: PeerTLS must verify the members it dials (InsecureSkipVerify is set)")
	}
	if err := memberCertificate("TLS", c.TLS.Certificates, c.TLS.GetCertificate != nil); err != nil {
		return err
	}
	return memberCertificate("PeerTLS", c.PeerTLS.Certificates, c.PeerTLS.GetClientCertificate != nil)
}

// memberCertificate checks that a configuration presents a certificate
// with the member role that is valid now (or gets one from a callback,
// which it cannot check).
func memberCertificate(field string, certs []tls.Certificate, callback bool) error {
	leaf, err := leafOf(certs)
	switch {
	case err != nil:
		return fmt.Errorf("node: %s certificate: %w", field, err)
	case leaf == nil && callback:
		return nil
	case leaf == nil:
		return fmt.Errorf("node: %s has no certificate: members present theirs to each other", field)
	}
	if r, err := security.RoleOf(leaf); err != nil {
		return fmt.Errorf("node: the %s certificate %q is not a member's: %w", field, leaf.Subject.CommonName, err)
	} else if r != security.RoleMember {
		return fmt.Errorf("node: the %s certificate %q is not a member's (its role is %v): make one with galena cert node", field, leaf.Subject.CommonName, r)
	}
	if err := security.CheckValidity(leaf, time.Now()); err != nil {
		return fmt.Errorf("node: %s: %w", field, err)
	}
	return nil
}

// secure copies the TLS configurations so that later changes by the caller
// have no effect, prepares them (see secured) and makes them the member's
// live pair, which SetTLS replaces.
func (c *Config) secure() {
	if c.TLS == nil {
		return
	}
	c.TLS, c.PeerTLS = secured(c.TLS, c.PeerTLS)
	c.live = new(liveTLS)
	c.live.cur.Store(&tlsPair{server: c.TLS, peer: c.PeerTLS})
}

// secured returns copies of a member's configurations that offer the ALPN
// protocols gRPC and HTTP need, issue no session tickets (a resumed session
// would skip the check of a client's chain against the CAs trusted now; see
// security.ServerConfig), and make this member check that a member it dials
// presents a member certificate.
func secured(server, peer *tls.Config) (*tls.Config, *tls.Config) {
	server = server.Clone()
	server.SessionTicketsDisabled = true
	for _, p := range security.ServerNextProtos {
		if !slices.Contains(server.NextProtos, p) {
			server.NextProtos = append(server.NextProtos, p)
		}
	}
	peer = peer.Clone()
	verify := peer.VerifyConnection
	peer.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := requireMember(cs); err != nil {
			return err
		}
		if verify != nil {
			return verify(cs)
		}
		return nil
	}
	return server, peer
}

// liveTLS is the member's current pair of TLS configurations. SetTLS
// replaces both at once: every connection made afterwards, accepted or
// dialled, uses the new pair; connections already open keep theirs.
type liveTLS struct{ cur atomic.Pointer[tlsPair] }

type tlsPair struct{ server, peer *tls.Config }

func (l *liveTLS) peer() *tls.Config { return l.cur.Load().peer }

// listenerConfig is the configuration of the member's TLS listener: each
// handshake takes the server configuration current when it starts.
func (l *liveTLS) listenerConfig() *tls.Config {
	return &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return l.cur.Load().server, nil
	}}
}

// SetTLS replaces the member's TLS configurations (see Config.TLS and
// Config.PeerTLS) without a restart: a renewed certificate, or a new CA
// bundle while CAs are rotated. Connections accepted or dialled afterwards
// use them; open ones keep what they were made with, except the kept
// connections that ask other members of their progress, which are dropped
// and dialled again. The new pair must pass the checks New makes; a member
// started without TLS cannot turn it on. On error nothing changes.
func (n *Node) SetTLS(server, peer *tls.Config) error {
	if n.cfg.live == nil {
		return errors.New("node: this member serves without TLS; turning TLS on needs a restart")
	}
	if server == nil || peer == nil {
		return errors.New("node: SetTLS needs both configurations")
	}
	if err := (Config{TLS: server, PeerTLS: peer}).validateTLS(); err != nil {
		return err
	}
	server, peer = secured(server, peer)
	n.cfg.live.cur.Store(&tlsPair{server: server, peer: peer})
	n.conns.reset(false)
	n.noteCertificate(server, "TLS configuration replaced")
	return nil
}

// requireMember accepts a TLS peer that presented a verified member
// certificate.
func requireMember(cs tls.ConnectionState) error {
	r, name, err := security.PeerRole(cs)
	switch {
	case err != nil:
		return fmt.Errorf("node: a member certificate is required: %w", err)
	case r != security.RoleMember:
		return fmt.Errorf("node: certificate %q has role %v; a member certificate is required", name, r)
	}
	return nil
}

// authorizeMember admits a groupcomm connection (Raft, forwarding) only
// from a member: the TLS peer's verified certificate has the member role.
func authorizeMember(c net.Conn) error {
	cs, ok := tlsState(c)
	if !ok {
		return errors.New("node: not a TLS connection")
	}
	return requireMember(cs)
}

// tlsState returns the TLS state of a connection the member's listener
// accepted, below cmux's wrapping.
func tlsState(c net.Conn) (tls.ConnectionState, bool) {
	for {
		switch v := c.(type) {
		case *tls.Conn:
			return v.ConnectionState(), true
		case *cmux.MuxConn:
			c = v.Conn
		default:
			return tls.ConnectionState{}, false
		}
	}
}

// peerDialer is how groupcomm dials other members: Config.PeerDial (or
// TCP), then, with TLS, a handshake that presents this member's certificate
// and checks the other's, all within the dial timeout. nil lets groupcomm
// dial TCP.
func (c Config) peerDialer() func(string, time.Duration) (net.Conn, error) {
	dial, live := c.PeerDial, c.live
	if live == nil {
		return dial
	}
	if dial == nil {
		dial = func(addr string, timeout time.Duration) (net.Conn, error) {
			return net.DialTimeout("tcp", addr, timeout)
		}
	}
	return func(addr string, timeout time.Duration) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		raw, err := dial(addr, timeout)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(raw, withServerName(live.peer(), addr))
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("node: TLS handshake with %s: %w", addr, err)
		}
		return tc, nil
	}
}

// withServerName is cfg with the host of addr as the name to verify, unless
// cfg names one.
func withServerName(cfg *tls.Config, addr string) *tls.Config {
	if cfg.ServerName != "" {
		return cfg
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	cfg = cfg.Clone()
	cfg.ServerName = host
	return cfg
}

// peerCredentials are the gRPC credentials of this member's calls to other
// members (membership changes, --join).
func (c Config) peerCredentials() credentials.TransportCredentials {
	if c.live == nil {
		return insecure.NewCredentials()
	}
	return credentials.NewTLS(c.live.peer())
}

// secureListener wraps the member's listener in TLS, when configured,
// before cmux splits it; without TLS it warns, loudly, when the listener can
// be reached from other hosts.
func (n *Node) secureListener() {
	if n.cfg.live != nil {
		n.ln = tls.NewListener(n.ln, n.cfg.live.listenerConfig())
		n.noteCertificate(n.cfg.TLS, "TLS certificate")
		return
	}
	addr, ok := n.ln.Addr().(*net.TCPAddr)
	if !ok || addr.IP.IsLoopback() {
		return
	}
	n.lg.Warn("SERVING WITHOUT TLS on a non-loopback address: Raft, forwarding and client traffic are neither encrypted nor authenticated, and anyone who reaches this port can read and change the data and the membership; start every member with --tls-cert, --tls-key and --tls-ca (see galena cert)",
		zap.String("listen", addr.String()))
}

// CertWarnAhead is how long before a certificate (its own, or a CA's it
// trusts) expires a member logs it as a warning.
const CertWarnAhead = 30 * 24 * time.Hour

// noteCertificate records when the certificate of the member's server
// configuration expires (galena_tls_certificate_expiry_timestamp_seconds)
// and logs msg with it: a warning when that is less than CertWarnAhead away.
func (n *Node) noteCertificate(server *tls.Config, msg string) {
	leaf, err := leafOf(server.Certificates)
	if leaf == nil {
		if err != nil {
			n.lg.Warn("cannot read this member's certificate", zap.Error(err))
		}
		return
	}
	n.certNotAfter.Store(leaf.NotAfter.Unix())
	left := time.Until(leaf.NotAfter)
	log := n.lg.Info
	if left < CertWarnAhead {
		log = n.lg.Warn
	}
	log(msg, zap.String("subject", leaf.Subject.CommonName), zap.String("serial", leaf.SerialNumber.Text(16)),
		zap.Time("expires", leaf.NotAfter), zap.Duration("expires_in", left.Round(time.Hour)))
}

// leafOf is the parsed first certificate of certs; nil, without error, when
// there is none.
func leafOf(certs []tls.Certificate) (*x509.Certificate, error) {
	if len(certs) == 0 || len(certs[0].Certificate) == 0 {
		return nil, nil
	}
	if certs[0].Leaf != nil {
		return certs[0].Leaf, nil
	}
	return x509.ParseCertificate(certs[0].Certificate[0])
}

// tlsTerminated gives gRPC the TLS state of a connection whose handshake
// the member's listener has already made, so that calls can be authorised
// by the certificate (peer.FromContext(ctx).AuthInfo is a
// credentials.TLSInfo).
type tlsTerminated struct{}

func (tlsTerminated) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	cs, ok := tlsState(c)
	if !ok {
		return nil, nil, errors.New("node: not a TLS connection")
	}
	info := credentials.TLSInfo{State: cs, CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}
	return c, info, nil
}

func (tlsTerminated) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("node: tlsTerminated serves only")
}

func (tlsTerminated) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (t tlsTerminated) Clone() credentials.TransportCredentials { return t }

func (tlsTerminated) OverrideServerName(string) error { return nil }
