package security

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func newCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA(0)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t *testing.T, ca *CA, l Leaf) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	p, err := ca.Issue(l)
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.TLS()
	if err != nil {
		t.Fatal(err)
	}
	return c, c.Leaf
}

func TestIssueMember(t *testing.T) {
	ca := newCA(t)
	_, leaf := issue(t, ca, Leaf{Name: "n1", Role: RoleMember, Hosts: []string{"127.0.0.1", "::1", "localhost", "db1.example.org"}})
	if leaf.Subject.CommonName != "n1" {
		t.Errorf("common name %q", leaf.Subject.CommonName)
	}
	if r, err := RoleOf(leaf); r != RoleMember || err != nil {
		t.Errorf("role %v, %v", r, err)
	}
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if !slices.Equal(leaf.DNSNames, []string{"localhost", "db1.example.org"}) || len(leaf.IPAddresses) != 2 {
		t.Errorf("SANs: DNS %v, IP %v", leaf.DNSNames, leaf.IPAddresses)
	}
	// A member's certificate serves and dials: both usages verify.
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "db1.example.org", KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("verify for %v: %v", usage, err)
		}
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if leaf.NotAfter.Sub(leaf.NotBefore) < DefaultCertValidity {
		t.Errorf("valid %v..%v", leaf.NotBefore, leaf.NotAfter)
	}
}

func TestIssueClient(t *testing.T) {
	ca := newCA(t)
	for _, r := range []Role{RoleRead, RoleWrite, RoleAdmin} {
		_, leaf := issue(t, ca, Leaf{Name: "alice", Role: r, ValidFor: time.Hour})
		if got, err := RoleOf(leaf); got != r || err != nil {
			t.Errorf("role %v: got %v, %v", r, got, err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("verify as a client: %v", err)
		}
		// A client certificate cannot serve: it must not pass for a member's.
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
			t.Errorf("a %v client certificate verifies for server authentication", r)
		}
	}
}

func TestIssueRefusesBadInput(t *testing.T) {
	ca := newCA(t)
	for _, l := range []Leaf{
		{Role: RoleRead},
		{Name: "x", Role: RoleNone},
		{Name: "x", Role: Role(9)},
		{Name: "n1", Role: RoleMember},
		{Name: "n1", Role: RoleMember, Hosts: []string{"bad host"}},
		{Name: "n1", Role: RoleMember, Hosts: []string{""}},
	} {
		if _, err := ca.Issue(l); err == nil {
			t.Errorf("Issue(%+v) succeeded", l)
		}
	}
}

func TestOtherCADoesNotVerify(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	_, leaf := issue(t, other, Leaf{Name: "n1", Role: RoleMember, Hosts: []string{"127.0.0.1"}})
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool()}); err == nil {
		t.Fatal("a certificate from another CA verified")
	}
}

func TestWritePairAndLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	ca := newCA(t)
	if _, _, err := WritePair(dir, CAName, ca.Pair(), false); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{"ca.crt": 0o644, "ca.key": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", name, fi.Mode().Perm(), err, want)
		}
	}
	// No overwrite without force; the file is unchanged.
	other := newCA(t)
	if _, _, err := WritePair(dir, CAName, other.Pair(), false); !errors.Is(err, ErrExists) {
		t.Fatalf("second write: %v, want ErrExists", err)
	}
	loaded, err := LoadCA(dir)
	if err != nil || !loaded.cert.Equal(ca.cert) {
		t.Fatalf("LoadCA: %v (same CA: %v)", err, err == nil && loaded.cert.Equal(ca.cert))
	}
	if _, _, err := WritePair(dir, CAName, other.Pair(), true); err != nil {
		t.Fatalf("forced write: %v", err)
	}
	if loaded, err = LoadCA(dir); err != nil || !loaded.cert.Equal(other.cert) {
		t.Fatalf("after force: %v", err)
	}
	if fi, _ := os.Stat(KeyPath(dir, CAName)); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode after force %v", fi.Mode().Perm())
	}
	if _, err := LoadCA(t.TempDir()); !errors.Is(err, ErrNoCA) {
		t.Fatalf("LoadCA of an empty directory: %v, want ErrNoCA", err)
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	if _, _, err := WritePair(dir, CAName, ca.Pair(), false); err != nil {
		t.Fatal(err)
	}
	write := func(name string, l Leaf) Files {
		p, err := ca.Issue(l)
		if err != nil {
			t.Fatal(err)
		}
		c, k, err := WritePair(dir, name, p, false)
		if err != nil {
			t.Fatal(err)
		}
		return Files{Cert: c, Key: k, CA: CertPath(dir, CAName)}
	}
	member := write("n1", Leaf{Name: "n1", Role: RoleMember, Hosts: []string{"127.0.0.1"}})
	client := write("alice", Leaf{Name: "alice", Role: RoleRead})
	srv, peer, cas, err := member.Member()
	if err != nil {
		t.Fatal(err)
	}
	if len(cas) != 1 || !cas[0].IsCA {
		t.Fatalf("trusted CAs: %v", cas)
	}
	if srv.ClientAuth != tls.VerifyClientCertIfGiven || !slices.Contains(srv.NextProtos, "h2") || peer.RootCAs == nil || len(peer.Certificates) != 1 {
		t.Fatalf("member configs: %+v %+v", srv, peer)
	}
	if _, _, _, err := client.Member(); err == nil {
		t.Fatal("a client certificate loaded as a member's")
	}
	if c, err := client.Client(); err != nil || len(c.Certificates) != 1 {
		t.Fatalf("client: %v", err)
	}
	if c, err := (Files{CA: member.CA}).Client(); err != nil || len(c.Certificates) != 0 || c.RootCAs == nil {
		t.Fatalf("CA only: %v", err)
	}
	for _, f := range []Files{{}, {Cert: member.Cert, CA: member.CA}, {CA: filepath.Join(dir, "nope")}, {CA: member.Key}} {
		if _, err := f.Client(); err == nil {
			t.Errorf("Client(%+v) succeeded", f)
		}
	}
}

// tcpPair is a connected pair of loopback TCP connections: unlike
// net.Pipe, they buffer, so an alert written after a TLS 1.3 client has
// finished its handshake does not block.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestHandshake checks the configurations against each other over a pipe:
// the server verifies a client certificate only if one is given.
func TestHandshake(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	mc, _ := issue(t, ca, Leaf{Name: "n1", Role: RoleMember, Hosts: []string{"127.0.0.1"}})
	cc, _ := issue(t, ca, Leaf{Name: "alice", Role: RoleAdmin})
	fc, _ := issue(t, other, Leaf{Name: "mallory", Role: RoleAdmin})
	tests := []struct {
		name     string
		client   *tls.Config
		wantRole Role
		wantErr  error
		fails    bool
	}{
		{"member", PeerConfig(mc, ca.Pool()), RoleMember, nil, false},
		{"client", ClientConfig(&cc, ca.Pool()), RoleAdmin, nil, false},
		{"no certificate", ClientConfig(nil, ca.Pool()), RoleNone, ErrNoCertificate, false},
		{"other CA", ClientConfig(&fc, ca.Pool()), RoleNone, nil, true},
		{"client distrusts", ClientConfig(&cc, other.Pool()), RoleNone, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := tcpPair(t)
			srv := tls.Server(a, ServerConfig(mc, ca.Pool()))
			cfg := tt.client.Clone()
			cfg.ServerName = "127.0.0.1"
			errc := make(chan error, 1)
			go func() {
				err := tls.Client(b, cfg).Handshake()
				if err != nil {
					b.Close()
				}
				errc <- err
			}()
			err := srv.Handshake()
			if err != nil {
				a.Close()
			}
			cerr := <-errc
			if tt.fails {
				if err == nil && cerr == nil {
					t.Fatal("handshake succeeded")
				}
				return
			}
			if err != nil || cerr != nil {
				t.Fatalf("handshake: server %v, client %v", err, cerr)
			}
			r, _, err := PeerRole(srv.ConnectionState())
			if r != tt.wantRole || !errors.Is(err, tt.wantErr) {
				t.Fatalf("PeerRole = %v, %v; want %v, %v", r, err, tt.wantRole, tt.wantErr)
			}
		})
	}
}

// A CA file may hold several CAs (while one replaces another); one that
// holds none, or a certificate that does not parse, is refused.
func TestReadCAs(t *testing.T) {
	a, b := newCA(t), newCA(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cas, err := ReadCAs(write("bundle.crt", append(slices.Clone(a.Pair().Cert), b.Pair().Cert...)))
	if err != nil || len(cas) != 2 || !cas[0].Equal(a.cert) || !cas[1].Equal(b.cert) {
		t.Fatalf("ReadCAs of a bundle of two = %d certificates, %v; want both CAs in order", len(cas), err)
	}
	if _, err := ReadCAs(write("key.pem", a.Pair().Key)); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Fatalf("ReadCAs of a key = %v; want no certificate", err)
	}
	if _, err := ReadCAs(write("bad.crt", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))); err == nil {
		t.Fatal("ReadCAs of a certificate that does not parse succeeded")
	}
}

func TestCheckValidity(t *testing.T) {
	c := newCA(t).cert
	if err := CheckValidity(c, c.NotBefore.Add(time.Minute)); err != nil {
		t.Fatalf("within its validity: %v", err)
	}
	if err := CheckValidity(c, c.NotAfter.Add(time.Hour)); err == nil || !strings.Contains(err.Error(), "expired at") || !strings.Contains(err.Error(), "(1h0m0s ago)") {
		t.Fatalf("after NotAfter: %v", err)
	}
	if err := CheckValidity(c, c.NotBefore.Add(-time.Hour)); err == nil || !strings.Contains(err.Error(), "check this host's clock") {
		t.Fatalf("before NotBefore: %v", err)
	}
}

// A member's port issues no session tickets: a client that keeps a session
// cache still makes a full handshake, its chain verified, every time (the
// control, with tickets on, resumes).
func TestNoSessionResumption(t *testing.T) {
	ca := newCA(t)
	mc, _ := issue(t, ca, Leaf{Name: "n1", Role: RoleMember, Hosts: []string{"127.0.0.1"}})
	cc, _ := issue(t, ca, Leaf{Name: "alice", Role: RoleAdmin})
	for _, tickets := range []bool{false, true} {
		server := ServerConfig(mc, ca.Pool())
		server.SessionTicketsDisabled = !tickets
		client := ClientConfig(&cc, ca.Pool())
		client.ServerName, client.ClientSessionCache = "127.0.0.1", tls.NewLRUClientSessionCache(4)
		resumed := false
		for range 2 {
			a, b := tcpPair(t)
			done := make(chan error, 1)
			go func() {
				srv := tls.Server(a, server)
				if err := srv.Handshake(); err != nil {
					done <- err
					return
				}
				_, err := srv.Write([]byte{1}) // after the tickets, if any
				done <- err
			}()
			cl := tls.Client(b, client)
			if _, err := io.ReadFull(cl, make([]byte, 1)); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			resumed = cl.ConnectionState().DidResume
		}
		if resumed != tickets {
			t.Errorf("with tickets %v, the second connection resumed: %v", tickets, resumed)
		}
	}
}
