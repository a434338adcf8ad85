package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/galenadb/galena/node"
	"github.com/galenadb/galena/node/nodetest"
	"github.com/galenadb/galena/security"
)

// mustCLI runs a command line in-process and fails the test unless it
// exits 0.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("galena %v: exit %d, stdout %q, stderr %q", args, code, out, errs)
	}
	return out
}

// mustRead returns the contents of path, failing the test if it cannot be read.
func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// roleOfFile reads the role of the certificate in path.
func roleOfFile(t *testing.T, path string) security.Role {
	t.Helper()
	blk, _ := pem.Decode(mustRead(t, path))
	if blk == nil {
		t.Fatalf("%s holds no PEM", path)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	r, err := security.RoleOf(cert)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCertCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	if out := mustCLI(t, "cert", "ca", "--out", dir); !strings.HasPrefix(out, "wrote ") {
		t.Fatalf("cert ca: %q", out)
	}
	mustCLI(t, "cert", "node", "--ca", dir, "--id", "n1", "--hosts", "127.0.0.1, localhost")
	mustCLI(t, "cert", "client", "--ca", dir, "--name", "alice", "--role", "write", "--out", filepath.Join(dir, "clients"))
	for _, f := range []struct {
		path string
		mode os.FileMode
		role security.Role
	}{
		{"ca.crt", 0o644, -1}, {"ca.key", 0o600, -1},
		{"n1.crt", 0o644, security.RoleMember}, {"n1.key", 0o600, -1},
		{"clients/alice.crt", 0o644, security.RoleWrite}, {"clients/alice.key", 0o600, -1},
	} {
		path := filepath.Join(dir, f.path)
		fi, err := os.Stat(path)
		if err != nil {
			t.Errorf("%s: %v", f.path, err)
			continue
		}
		if fi.Mode().Perm() != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, fi.Mode().Perm(), f.mode)
		}
		if f.role >= 0 {
			if r := roleOfFile(t, path); r != f.role {
				t.Errorf("%s: role %v, want %v", f.path, r, f.role)
			}
		}
	}
	caBefore := mustRead(t, filepath.Join(dir, "ca.crt"))
	refusals := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"ca without out", []string{"cert", "ca"}, 2, "--out is required"},
		{"existing CA", []string{"cert", "ca", "--out", dir}, 1, "file exists"},
		{"existing node", []string{"cert", "node", "--ca", dir, "--id", "n1", "--hosts", "127.0.0.1"}, 1, "use --force to overwrite"},
		{"node without CA", []string{"cert", "node", "--id", "n2", "--hosts", "127.0.0.1"}, 2, "--ca is required"},
		{"missing CA", []string{"cert", "node", "--ca", filepath.Join(dir, "nope"), "--id", "n2", "--hosts", "127.0.0.1"}, 1, "no CA in"},
		{"node without hosts", []string{"cert", "node", "--ca", dir, "--id", "n2"}, 2, "--hosts is required"},
		{"node bad host", []string{"cert", "node", "--ca", dir, "--id", "n2", "--hosts", "a b"}, 1, "neither an IP address nor a DNS name"},
		{"node bad id", []string{"cert", "node", "--ca", dir, "--id", "n=2", "--hosts", "127.0.0.1"}, 2, "member id"},
		{"unknown role", []string{"cert", "client", "--ca", dir, "--name", "bob", "--role", "root"}, 2, "unknown role \"root\""},
		{"member role for a client", []string{"cert", "client", "--ca", dir, "--name", "bob", "--role", "member"}, 2, "use galena cert node"},
		{"no role", []string{"cert", "client", "--ca", dir, "--name", "bob"}, 2, "--role is required"},
		{"client named ca", []string{"cert", "client", "--ca", dir, "--name", "ca", "--role", "read"}, 2, "would overwrite the CA"},
		{"client name with a slash", []string{"cert", "client", "--ca", dir, "--name", "../bob", "--role", "read"}, 2, "usable as a file name"},
		{"zero validity", []string{"cert", "client", "--ca", dir, "--name", "bob", "--role", "read", "--valid-for", "0s"}, 2, "--valid-for must be positive"},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			code, out, errs := runCLI(t, r.args...)
			if code != r.code || out != "" || !strings.Contains(errs, r.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d and %q", code, out, errs, r.code, r.want)
			}
		})
	}
	if caAfter := mustRead(t, filepath.Join(dir, "ca.crt")); !bytes.Equal(caBefore, caAfter) {
		t.Fatal("a refused command changed ca.crt")
	}
	if _, err := os.Stat(filepath.Join(dir, "bob.crt")); !os.IsNotExist(err) {
		t.Fatalf("a refused command wrote bob.crt (%v)", err)
	}
	mustCLI(t, "cert", "node", "--ca", dir, "--id", "n1", "--hosts", "127.0.0.1", "--force")
	if caAfter := mustRead(t, filepath.Join(dir, "ca.crt")); !bytes.Equal(caBefore, caAfter) {
		t.Fatal("cert node --force changed ca.crt")
	}
}

// makeCerts makes, with galena cert, a CA and the certificates of members
// n1..n<members> and of the clients named in roles (name → role).
func makeCerts(t *testing.T, members int, roles map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	mustCLI(t, "cert", "ca", "--out", dir)
	for i := 1; i <= members; i++ {
		mustCLI(t, "cert", "node", "--ca", dir, "--id", "n"+string(rune('0'+i)), "--hosts", "127.0.0.1,localhost")
	}
	for name, role := range roles {
		mustCLI(t, "cert", "client", "--ca", dir, "--name", name, "--role", role)
	}
	return dir
}

// tlsArgs are the client flags of the certificate name in dir.
func tlsArgs(dir, name string) []string {
	return []string{"--tls-ca", filepath.Join(dir, "ca.crt"), "--tls-cert", filepath.Join(dir, name+".crt"), "--tls-key", filepath.Join(dir, name+".key")}
}

func TestTLSFlagsRejected(t *testing.T) {
	dir := makeCerts(t, 1, map[string]string{"alice": "admin"})
	ca, n1 := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "n1")
	mustCLI(t, "cert", "node", "--ca", dir, "--id", "old", "--hosts", "127.0.0.1", "--valid-for", "1ns")
	mustCLI(t, "cert", "client", "--ca", dir, "--name", "late", "--role", "read", "--valid-for", "1ns")
	start := []string{"start", "--id", "n1", "--addr", "127.0.0.1:7001", "--initial-cluster", "n1=127.0.0.1:7001"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"start: cert alone", append(start, "--tls-cert", n1+".crt"), "go together"},
		{"start: no CA", append(start, "--tls-cert", n1+".crt", "--tls-key", n1+".key"), "go together"},
		{"start: client cert auth without TLS", append(start, "--client-cert-auth"), "--client-cert-auth needs TLS"},
		{"start: a client's certificate", append(start, tlsArgs(dir, "alice")...), "not a member certificate"},
		{"start: missing file", append(start, "--tls-cert", n1+".crt", "--tls-key", n1+".nokey", "--tls-ca", ca), "no such file"},
		{"start: expired certificate", append(start, tlsArgs(dir, "old")...), `certificate "old" expired at`},
		{"client: expired certificate", append([]string{"get", "k"}, tlsArgs(dir, "late")...), `certificate "late" expired at`},
		{"client: no CA", []string{"get", "k", "--tls-cert", n1 + ".crt", "--tls-key", n1 + ".key"}, "need --tls-ca"},
		{"client: cert without key", []string{"get", "k", "--tls-ca", ca, "--tls-cert", n1 + ".crt"}, "go together"},
		{"client: CA not PEM", []string{"status", "--tls-ca", n1 + ".key"}, "holds no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			args := tt.args
			if args[0] == "start" {
				args = append(args, "--data", data)
			}
			code, _, stderr := runCLI(t, args...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr, tt.want)
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Errorf("data directory was created (stat: %v)", err)
			}
		})
	}
}

// TestTLSClusterCLI runs a cluster made with galena cert, configured as
// galena start configures it, and drives it with the command line: roles
// are enforced, a member started with --join and TLS joins, an admin
// removes it.
func TestTLSClusterCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	dir := makeCerts(t, 4, map[string]string{"alice": "admin", "bob": "read"})
	c := nodetest.MakeClusterWith(t, 3, func(i int, cfg *node.Config) {
		f := tlsFlags{cert: filepath.Join(dir, cfg.ID+".crt"), key: filepath.Join(dir, cfg.ID+".key"), ca: filepath.Join(dir, "ca.crt"), clientCertAuth: true}
		if _, err := f.apply(cfg); err != nil {
			t.Fatal(err)
		}
	})
	c.Leader()
	eps := c.Endpoints()
	as := func(name string) func(...string) (int, string, string) {
		cli := cliOf(t, eps...)
		return func(args ...string) (int, string, string) { return cli(append(tlsArgs(dir, name), args...)...) }
	}
	alice, bob := as("alice"), as("bob")
	mustRunCLI(t, alice, "OK\n", "put", "greeting", "hello")
	mustRunCLI(t, bob, "hello\n", "get", "greeting")
	if code, out, errs := bob("put", "greeting", "bye"); code != 1 || out != "" || !strings.Contains(errs, "permission denied") || !strings.Contains(errs, `"bob" has role read`) {
		t.Fatalf("put with a read certificate: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if code, _, errs := cliOf(t, eps...)("get", "greeting"); code != 1 || !strings.Contains(errs, "no endpoint reachable") || !strings.Contains(errs, "pass --tls-ca") {
		t.Fatalf("get without TLS: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := cliOf(t, eps...)("get", "greeting", "--tls-ca", filepath.Join(dir, "ca.crt")); code != 1 || !strings.Contains(errs, "unauthenticated") || !strings.Contains(errs, "--tls-cert") {
		t.Fatalf("get without a client certificate: exit %d, stderr %q", code, errs)
	}
	if m := membersOf(t, bob); len(m.Members) != 3 || m.LeaderID == "" {
		t.Fatalf("member list: %+v", m)
	}
	if code, out, errs := bob("status", "--json"); code != 0 || strings.Count(out, `"state":"SYNCED"`) != 3 || strings.Count(out, `"cert_expires":"`) != 3 {
		t.Fatalf("status: exit %d, stdout %q, stderr %q; want 3 members SYNCED, with their certificates' expiry", code, out, errs)
	}
	if code, out, errs := bob("status"); code != 0 || !strings.Contains(out, "CERT_EXPIRES") {
		t.Fatalf("status: exit %d, stdout %q, stderr %q; want a CERT_EXPIRES column", code, out, errs)
	}
	if code, out, errs := bob("check"); code != 0 || !strings.HasPrefix(out, "consistent") {
		t.Fatalf("check: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// The client flags also come from the environment.
	for env, file := range map[string]string{"GALENA_TLS_CA": "ca.crt", "GALENA_TLS_CERT": "bob.crt", "GALENA_TLS_KEY": "bob.key"} {
		t.Setenv(env, filepath.Join(dir, file))
	}
	mustRunCLI(t, cliOf(t, eps...), "hello\n", "get", "greeting")

	// A member whose certificate another CA signed cannot join.
	other := makeCerts(t, 4, nil)
	data := filepath.Join(t.TempDir(), "n4")
	code, _, errs := runCLI(t, "start", "--id", "n4", "--addr", closedAddr(t), "--data", data, "--join", eps[0],
		"--tls-cert", filepath.Join(other, "n4.crt"), "--tls-key", filepath.Join(other, "n4.key"), "--tls-ca", filepath.Join(other, "ca.crt"))
	if code != 1 || !strings.Contains(errs, "certificate signed by unknown authority") {
		t.Fatalf("join with another CA's certificate: exit %d, stderr %q", code, errs)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("the refused member created its data directory (%v)", err)
	}

	// n4 joins through galena start with TLS, and alice removes it.
	addr := closedAddr(t)
	j := startJoiner(t, addr, eps[0],
		"--tls-cert", filepath.Join(dir, "n4.crt"), "--tls-key", filepath.Join(dir, "n4.key"), "--tls-ca", filepath.Join(dir, "ca.crt"),
		"--client-cert-auth")
	c.WaitFor(30*time.Second, "n4 to be promoted to voter", func() bool {
		mb, ok := findMember(membersOf(t, alice), "n4")
		return ok && mb.Voter
	})
	mustRunCLI(t, func(args ...string) (int, string, string) {
		return cliOf(t, addr)(append(tlsArgs(dir, "bob"), args...)...)
	}, "hello\n", "get", "greeting")
	if code, _, errs := bob("member", "remove", "n4"); code != 1 || !strings.Contains(errs, "permission denied") {
		t.Fatalf("member remove with a read certificate: exit %d, stderr %q", code, errs)
	}
	mustRunCLI(t, alice, "removed n4\n", "member", "remove", "n4")
	if code := j.wait(t, time.Minute); code != 0 {
		t.Fatalf("n4 exited %d; logs:\n%s", code, j.logs.String())
	}
}
