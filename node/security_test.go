package node_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/groupcomm"
	"github.com/galenadb/galena/node"
	"github.com/galenadb/galena/node/nodetest"
	"github.com/galenadb/galena/security"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// testPKI is a CA and the certificates a test gives its members and
// clients.
type testPKI struct {
	t  *testing.T
	ca *security.CA
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	ca, err := security.NewCA(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{t: t, ca: ca}
}

func (p *testPKI) cert(l security.Leaf) tls.Certificate {
	p.t.Helper()
	pair, err := p.ca.Issue(l)
	if err != nil {
		p.t.Fatal(err)
	}
	c, err := pair.TLS()
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// member sets cfg's TLS to a member certificate for loopback.
func (p *testPKI) member(cfg *node.Config, clientCertAuth bool) {
	p.memberFor(cfg, clientCertAuth, 0)
}

// memberFor is member, with a certificate valid for validFor (0: the
// default).
func (p *testPKI) memberFor(cfg *node.Config, clientCertAuth bool, validFor time.Duration) {
	c := p.cert(security.Leaf{Name: cfg.ID, Role: security.RoleMember, Hosts: []string{"127.0.0.1"}, ValidFor: validFor})
	cfg.TLS, cfg.PeerTLS = security.ServerConfig(c, p.ca.Pool()), security.PeerConfig(c, p.ca.Pool())
	cfg.ClientCertAuth = clientCertAuth
}

// client is the TLS configuration of a client with role r that trusts
// this CA; RoleNone presents no certificate.
func (p *testPKI) client(name string, r security.Role) *tls.Config {
	if r == security.RoleNone {
		return security.ClientConfig(nil, p.ca.Pool())
	}
	c := p.cert(security.Leaf{Name: name, Role: r})
	return security.ClientConfig(&c, p.ca.Pool())
}

func tlsClient(t *testing.T, cfg *tls.Config, eps ...string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Endpoints: eps, TLS: cfg, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// teeWarnings tees lg into an observer of warnings.
func teeWarnings(lg *zap.Logger, obs zapcore.Core) *zap.Logger {
	return zap.New(zapcore.NewTee(lg.Core(), obs))
}

// TestTLSCluster runs a cluster whose members verify clients: traffic
// between members (Raft, forwarding, membership calls, a join) works over
// TLS, and clients may do what their certificate's role allows.
func TestTLSCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	pki := newTestPKI(t)
	obs, logs := observer.New(zap.WarnLevel)
	c := nodetest.MakeClusterWith(t, 3, func(_ int, cfg *node.Config) {
		pki.member(cfg, true)
		cfg.Logger = teeWarnings(cfg.Logger, obs)
	})
	leader := c.Leader()
	follower := (leader + 1) % 3
	eps := c.Endpoints()
	ctx := ctxT(t)
	admin := tlsClient(t, pki.client("root", security.RoleAdmin), eps[follower])

	t.Run("commit and read through every member", func(t *testing.T) {
		for i, ep := range eps { // followers forward their commits to the leader
			if err := tlsClient(t, pki.client("w", security.RoleWrite), ep).Put(ctx, []byte{'k', byte('0' + i)}, []byte(ep)); err != nil {
				t.Fatalf("put through %s: %v", ep, err)
			}
		}
		c.EnsureSame()
		for i, ep := range eps {
			v, err := tlsClient(t, pki.client("r", security.RoleRead), eps[(i+1)%3]).Get(ctx, []byte{'k', byte('0' + i)})
			if err != nil || string(v) != ep {
				t.Fatalf("get k%d = %q, %v; want %q", i, v, err, ep)
			}
		}
		if m, err := admin.Members(ctx); err != nil || len(m.Members) != 3 || m.LeaderID == "" {
			t.Fatalf("members: %+v, %v", m, err)
		}
	})

	t.Run("refused clients", func(t *testing.T) {
		other := newTestPKI(t)
		for _, tc := range []struct {
			name string
			cfg  *tls.Config
			want error
		}{
			{"plaintext", nil, client.ErrUnavailable},
			{"trusts another CA", other.client("x", security.RoleAdmin), client.ErrUnavailable},
			{"certificate of another CA", func() *tls.Config {
				cfg := other.client("x", security.RoleAdmin)
				cfg.RootCAs = pki.ca.Pool()
				return cfg
			}(), client.ErrUnavailable},
			{"no certificate", pki.client("", security.RoleNone), client.ErrUnauthenticated},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := tlsClient(t, tc.cfg, eps...).Get(ctx, []byte("k0"))
				if !errors.Is(err, tc.want) {
					t.Fatalf("get: %v; want %v", err, tc.want)
				}
			})
		}
	})

	t.Run("roles", func(t *testing.T) {
		reader := tlsClient(t, pki.client("reader", security.RoleRead), eps[leader])
		if _, err := reader.Get(ctx, []byte("k0")); err != nil {
			t.Fatalf("read role: get: %v", err)
		}
		denied := func() int { return logs.FilterMessage("denied a call").Len() }
		before := denied()
		if err := reader.Put(ctx, []byte("k0"), []byte("no")); !errors.Is(err, client.ErrPermissionDenied) {
			t.Fatalf("read role: put: %v; want ErrPermissionDenied", err)
		}
		if n := denied() - before; n != 1 {
			t.Fatalf("%d warnings for one denied commit; want 1", n)
		}
		writer := tlsClient(t, pki.client("writer", security.RoleWrite), eps[follower])
		if err := writer.RemoveMember(ctx, "n3"); !errors.Is(err, client.ErrPermissionDenied) {
			t.Fatalf("write role: remove member: %v; want ErrPermissionDenied", err)
		}
		if v, err := writer.Get(ctx, []byte("k0")); err != nil || string(v) != eps[0] {
			t.Fatalf("after the refusals k0 = %q, %v", v, err)
		}
	})

	t.Run("member connections need a member certificate", func(t *testing.T) {
		m, err := admin.Members(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cluster, err := groupcomm.ParseClusterID(m.ClusterID)
		if err != nil {
			t.Fatal(err)
		}
		cfg := pki.client("root", security.RoleAdmin)
		cfg.ServerName = "127.0.0.1"
		conn, err := tls.Dial("tcp", eps[leader], cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var hs [9]byte
		hs[0] = 0xA1 // Raft, with the right cluster id: only the certificate is wrong
		binary.BigEndian.PutUint64(hs[1:], cluster)
		if _, err := conn.Write(hs[:]); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("read after the handshake: %v; want the member to close the connection", err)
		}
		if logs.FilterMessage("refused a connection from a non-member").Len() == 0 {
			t.Fatal("no warning of the refused connection")
		}
	})

	t.Run("HTTP over TLS", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: pki.client("", security.RoleNone), ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + eps[0] + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// A client offering h2 and HTTP/1.1 gets HTTP/1.1: the port's HTTP/2
		// is gRPC's.
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 1 {
			t.Fatalf("GET /healthz: %s over %s", resp.Status, resp.Proto)
		}
	})

	t.Run("a member of another CA cannot join", func(t *testing.T) {
		other := newTestPKI(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cfg := nodetest.Config(t, "n9", filepath.Join(t.TempDir(), "n9"))
		cfg.Addr, cfg.Listener, cfg.Join = ln.Addr().String(), ln, eps[follower]
		other.member(&cfg, true)
		nd, err := node.New(cfg)
		if err == nil {
			nd.Close()
			t.Fatal("a member with another CA's certificate joined")
		}
		if !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("join refused with %v; want a certificate error", err)
		}
	})

	t.Run("join and remove", func(t *testing.T) {
		j := c.Join(follower, func(cfg *node.Config) { pki.member(cfg, true) }) // added through a follower
		c.WaitFor(30*time.Second, "n4 to be a voter", func() bool {
			m, err := admin.Members(ctx)
			return err == nil && len(m.Members) == 4 && m.Members[3].Voter
		})
		c.EnsureSame()
		if v, err := tlsClient(t, pki.client("r", security.RoleRead), eps[0], c.Endpoints()[j]).Get(ctx, []byte("k1")); err != nil || string(v) != eps[1] {
			t.Fatalf("get on n4: %q, %v", v, err)
		}
		if err := admin.RemoveMember(ctx, "n4"); err != nil { // through a follower
			t.Fatal(err)
		}
		select {
		case err := <-c.Nodes[j].Fatal():
			if !errors.Is(err, node.ErrRemoved) {
				t.Fatalf("n4 stopped with %v", err)
			}
		case <-ctx.Done():
			t.Fatal("n4 did not learn it was removed")
		}
	})
}

// TestPlaintextWarning: a member without TLS warns when it listens on an
// address other hosts can reach, and only then.
func TestPlaintextWarning(t *testing.T) {
	if testing.Short() {
		t.Skip("starts members")
	}
	for _, tc := range []struct {
		listen string
		warns  bool
	}{{"127.0.0.1:0", false}, {"0.0.0.0:0", true}} {
		t.Run(tc.listen, func(t *testing.T) {
			ln, err := net.Listen("tcp", tc.listen)
			if err != nil {
				t.Skipf("cannot listen on %s: %v", tc.listen, err)
			}
			obs, logs := observer.New(zap.WarnLevel)
			cfg := nodetest.Config(t, "n1", t.TempDir())
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
			cfg.Addr, cfg.Listener = addr, ln
			cfg.InitialCluster = []node.Peer{{ID: "n1", Addr: addr}}
			cfg.Logger = teeWarnings(cfg.Logger, obs)
			nd, err := node.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer nd.Close()
			if got := logs.FilterMessageSnippet("WITHOUT TLS").Len(); got != map[bool]int{false: 0, true: 1}[tc.warns] {
				t.Fatalf("%d warnings of plaintext", got)
			}
		})
	}
}

func TestTLSConfigValidation(t *testing.T) {
	pki := newTestPKI(t)
	memberCert := pki.cert(security.Leaf{Name: "n1", Role: security.RoleMember, Hosts: []string{"127.0.0.1"}})
	clientCert := pki.cert(security.Leaf{Name: "alice", Role: security.RoleAdmin})
	server := func() *tls.Config { return security.ServerConfig(memberCert, pki.ca.Pool()) }
	peer := security.PeerConfig(memberCert, pki.ca.Pool())
	tests := []struct {
		name string
		edit func(*node.Config)
		want string
	}{
		{"client auth without TLS", func(c *node.Config) { c.ClientCertAuth = true }, "needs TLS"},
		{"TLS without PeerTLS", func(c *node.Config) { c.TLS = server() }, "go together"},
		{"PeerTLS without TLS", func(c *node.Config) { c.PeerTLS = peer }, "go together"},
		{"no ClientCAs", func(c *node.Config) { c.TLS, c.PeerTLS = server(), peer; c.TLS.ClientCAs = nil }, "ClientCAs"},
		{"no client verification", func(c *node.Config) { c.TLS, c.PeerTLS = server(), peer; c.TLS.ClientAuth = tls.RequestClientCert }, "ClientAuth"},
		{"skip verify", func(c *node.Config) { c.TLS, c.PeerTLS = server(), peer.Clone(); c.PeerTLS.InsecureSkipVerify = true }, "InsecureSkipVerify"},
		{"client certificate", func(c *node.Config) {
			c.TLS, c.PeerTLS = security.ServerConfig(clientCert, pki.ca.Pool()), peer
		}, "not a member's"},
		{"no certificate", func(c *node.Config) { c.TLS, c.PeerTLS = server(), security.ClientConfig(nil, pki.ca.Pool()) }, "no certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := node.DefaultConfig()
			cfg.ID, cfg.Addr, cfg.DataDir = "n1", "127.0.0.1:7001", t.TempDir()
			tt.edit(&cfg)
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v; want an error containing %q", err, tt.want)
			}
		})
	}
	cfg := node.DefaultConfig()
	cfg.ID, cfg.Addr, cfg.DataDir = "n1", "127.0.0.1:7001", t.TempDir()
	cfg.TLS, cfg.PeerTLS, cfg.ClientCertAuth = server(), peer, true
	if err := cfg.Validate(); err != nil {
		t.Fatalf("a valid TLS configuration: %v", err)
	}
}

// TestSetTLS replaces a running member's certificate: connections made
// afterwards get the new one and the member's status shows its expiry;
// configurations New would refuse (a client's certificate, an expired one)
// change nothing; a member without TLS cannot turn it on.
func TestSetTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	pki := newTestPKI(t)
	c := nodetest.MakeClusterWith(t, 1, func(_ int, cfg *node.Config) { pki.member(cfg, false) })
	c.Leader()
	n, ep := c.Nodes[0], c.Endpoints()[0]
	ctx := ctxT(t)
	presented := func() *x509.Certificate {
		t.Helper()
		conn, err := tls.Dial("tcp", ep, pki.client("probe", security.RoleNone))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0]
	}
	member := func(validFor time.Duration) tls.Certificate {
		return pki.cert(security.Leaf{Name: "n1", Role: security.RoleMember, Hosts: []string{"127.0.0.1"}, ValidFor: validFor})
	}
	old := presented()

	renewed := member(30 * time.Minute)
	if err := n.SetTLS(security.ServerConfig(renewed, pki.ca.Pool()), security.PeerConfig(renewed, pki.ca.Pool())); err != nil {
		t.Fatal(err)
	}
	if got := presented(); got.SerialNumber.Cmp(renewed.Leaf.SerialNumber) != 0 || got.SerialNumber.Cmp(old.SerialNumber) == 0 {
		t.Fatalf("after SetTLS the member presents serial %x; want the renewed %x", got.SerialNumber, renewed.Leaf.SerialNumber)
	}
	st, err := tlsClient(t, pki.client("r", security.RoleRead), ep).Status(ctx, ep)
	if err != nil || !st.CertExpires.Equal(renewed.Leaf.NotAfter.Truncate(time.Second)) {
		t.Fatalf("status: cert expires %v (%v); want %v", st.CertExpires, err, renewed.Leaf.NotAfter.Truncate(time.Second))
	}
	if err := tlsClient(t, pki.client("w", security.RoleWrite), ep).Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatalf("put after SetTLS: %v", err)
	}

	clientCert := pki.cert(security.Leaf{Name: "alice", Role: security.RoleAdmin})
	expired := member(time.Nanosecond)
	for _, tc := range []struct {
		name         string
		server, peer *tls.Config
		want         string
	}{
		{"a client's certificate", security.ServerConfig(clientCert, pki.ca.Pool()), security.PeerConfig(clientCert, pki.ca.Pool()), "not a member's"},
		{"an expired certificate", security.ServerConfig(expired, pki.ca.Pool()), security.PeerConfig(expired, pki.ca.Pool()), "expired at"},
		{"no peer configuration", security.ServerConfig(renewed, pki.ca.Pool()), nil, "needs both"},
	} {
		if err := n.SetTLS(tc.server, tc.peer); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetTLS with %s = %v; want an error containing %q", tc.name, err, tc.want)
		}
	}
	if got := presented(); got.SerialNumber.Cmp(renewed.Leaf.SerialNumber) != 0 {
		t.Fatalf("a refused SetTLS changed the certificate presented to serial %x", got.SerialNumber)
	}

	plain := nodetest.MakeCluster(t, 1)
	if err := plain.Nodes[0].SetTLS(security.ServerConfig(renewed, pki.ca.Pool()), security.PeerConfig(renewed, pki.ca.Pool())); err == nil || !strings.Contains(err.Error(), "needs a restart") {
		t.Fatalf("SetTLS on a member without TLS = %v; want a refusal", err)
	}
}
