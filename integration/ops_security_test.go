package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/harness"
	"github.com/galenadb/galena/internal/atomicfile"
	"github.com/galenadb/galena/security"
)

// rotationTimeout bounds each wait of the certificate tests for members to
// take reloaded files.
const rotationTimeout = 30 * time.Second

// certFiles are the TLS files of a test cluster in one directory, replaced
// as an operator replaces them: <id>.crt and <id>.key of each member,
// load.crt and load.key of the test's client (admin), and ca.crt, the
// bundle of CAs the members trust.
type certFiles struct {
	t   *testing.T
	dir string
}

func (f certFiles) newCA() *security.CA {
	f.t.Helper()
	ca, err := security.NewCA(0)
	if err != nil {
		f.t.Fatal(err)
	}
	return ca
}

// issue writes name's certificate and key, signed by ca, valid for
// validFor (0: the default), and returns the certificate.
func (f certFiles) issue(ca *security.CA, name string, role security.Role, validFor time.Duration) *x509.Certificate {
	f.t.Helper()
	l := security.Leaf{Name: name, Role: role, ValidFor: validFor}
	if role == security.RoleMember {
		l.Hosts = []string{"127.0.0.1"}
	}
	pair, err := ca.Issue(l)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, _, err := security.WritePair(f.dir, name, pair, true); err != nil {
		f.t.Fatal(err)
	}
	c, err := pair.TLS()
	if err != nil {
		f.t.Fatal(err)
	}
	return c.Leaf
}

// trust replaces ca.crt with the bundle of cas.
func (f certFiles) trust(cas ...*security.CA) {
	f.t.Helper()
	var bundle []byte
	for _, ca := range cas {
		bundle = append(bundle, ca.Pair().Cert...)
	}
	if err := atomicfile.Write(filepath.Join(f.dir, "ca.crt"), bundle, 0o644, true); err != nil {
		f.t.Fatal(err)
	}
}

// memberArgs are member id's --tls-* flags.
func (f certFiles) memberArgs(id string) []string {
	return []string{"--tls-cert", filepath.Join(f.dir, id+".crt"), "--tls-key", filepath.Join(f.dir, id+".key"), "--tls-ca", filepath.Join(f.dir, "ca.crt")}
}

// loadTLS is the TLS configuration of the test's clients: they trust every
// CA in cas (a client learns of a new CA before members present
// certificates it signed) and present load.crt as it is on disk at each
// handshake, or, while its files do not match (the key is written before
// the certificate), the pair they last did.
func (f certFiles) loadTLS(cas ...*security.CA) *tls.Config {
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AppendCertsFromPEM(ca.Pair().Cert)
	}
	var mu sync.Mutex
	var last *tls.Certificate
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			mu.Lock()
			defer mu.Unlock()
			c, err := tls.LoadX509KeyPair(filepath.Join(f.dir, "load.crt"), filepath.Join(f.dir, "load.key"))
			switch {
			case err == nil:
				last = &c
			case last == nil:
				return nil, err
			}
			return last, nil
		}}
}

// presentedBy makes a new TLS connection to addr, verifying the member
// with the CAs of pool, and returns the certificate it presents.
func presentedBy(addr string, pool *x509.CertPool) (*x509.Certificate, error) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// statusWith calls Status on the member at addr over a new connection made
// with cfg: a handshake the member verifies anew.
func statusWith(addr string, cfg *tls.Config) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = galenapb.NewKVClient(conn).Status(ctx, &galenapb.StatusRequest{})
	return err
}

// refusedClientOf is clientOf for a client the member will refuse: it
// speaks TLS 1.2, in which the member verifies the client's certificate
// within the handshake, so the client always reads the alert that says why
// (in TLS 1.3 the refusal comes after the handshake, and the client's first
// write may meet a reset connection instead).
func refusedClientOf(t *testing.T, dir, name string, pool *x509.CertPool) *tls.Config {
	t.Helper()
	cfg := clientOf(t, dir, name, pool)
	cfg.MaxVersion = tls.VersionTLS12
	return cfg
}

// clientOf is the TLS configuration of a client presenting the certificate
// name in dir and trusting pool.
func clientOf(t *testing.T, dir, name string, pool *x509.CertPool) *tls.Config {
	t.Helper()
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return security.ClientConfig(&c, pool)
}

// putLoad commits unique keys through every member from several clients
// until stopped, and keeps what was acknowledged and every error.
type putLoad struct {
	done   chan struct{}
	wg     sync.WaitGroup
	count  atomic.Int64
	mu     sync.Mutex
	acked  map[string][]byte
	errors []error
}

func startPutLoad(t *testing.T, c *harness.Cluster, writers int) *putLoad {
	l := &putLoad{done: make(chan struct{}), acked: make(map[string][]byte)}
	for w := range writers {
		cl := newClient(t, c, c.Endpoint(w%c.Size()), c.Endpoint((w+1)%c.Size()))
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.done:
					return
				default:
				}
				key, val := fmt.Sprintf("rot/w%d/%06d", w, i), fmt.Sprintf("v%d.%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				err := cl.Put(ctx, []byte(key), []byte(val))
				cancel()
				l.mu.Lock()
				if err != nil {
					l.errors = append(l.errors, fmt.Errorf("put %s: %w", key, err))
				} else {
					l.acked[key] = []byte(val)
				}
				l.mu.Unlock()
				l.count.Add(1)
			}
		}()
	}
	return l
}

// waitMore waits until n more commits than now have been answered.
func (l *putLoad) waitMore(t *testing.T, n int64) {
	t.Helper()
	want := l.count.Load() + n
	if err := harness.WaitFor(time.Minute, func() error {
		if got := l.count.Load(); got < want {
			return fmt.Errorf("%d commits answered, waiting for %d", got, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// stop ends the load and returns what was acknowledged and every error.
func (l *putLoad) stop() (map[string][]byte, []error) {
	close(l.done)
	l.wg.Wait()
	return l.acked, l.errors
}

// TestOpsCertRotationUnderLoad rotates the certificates of a running
// cluster whose members verify clients (--client-cert-auth), without a
// restart, while clients commit through every member: first every
// member's certificate is renewed under the same CA, then the CA is
// replaced with an overlap (trust both, move every certificate to the new
// CA, trust only the new one), each step taken by SIGHUP. No call is
// refused and no acknowledged commit is lost; members present the new
// certificates to new connections, a client certificate of the old CA is
// refused once the members trust only the new one, and a member restarted
// afterwards rejoins under the new CA alone.
func TestOpsCertRotationUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts real galena processes")
	}
	f := certFiles{t: t, dir: t.TempDir()}
	oldCA, newCA := f.newCA(), f.newCA()
	ids := []string{"n1", "n2", "n3"}
	for _, id := range ids {
		f.issue(oldCA, id, security.RoleMember, 0)
	}
	f.issue(oldCA, "load", security.RoleAdmin, 0)
	f.issue(oldCA, "old", security.RoleRead, 0)
	f.trust(oldCA)
	var memberArgs [][]string
	for _, id := range ids {
		memberArgs = append(memberArgs, f.memberArgs(id))
	}
	c := harness.NewCluster(t, harness.Options{Binary: galenaBin, Members: len(ids), ExtraArgs: []string{"--client-cert-auth"},
		MemberArgs: memberArgs, ClientTLS: f.loadTLS(oldCA, newCA)})
	if got := httpCode(t, clientOf(t, f.dir, "load", oldCA.Pool()), "https://"+c.Endpoint(0)+"/debug/pprof/"); got != http.StatusNotFound {
		t.Fatalf("GET /debug/pprof/ as admin of a member without --enable-pprof = %d, want 404", got)
	}
	load := startPutLoad(t, c, 4)
	load.waitMore(t, 100)

	hangupAll := func() {
		t.Helper()
		for i := range c.Size() {
			if err := c.Member(i).Hangup(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// presents waits until every member presents its certificate of issued
	// to new connections, verified with pool, and reports its expiry.
	presents := func(issued map[string]*x509.Certificate, pool *x509.CertPool) {
		t.Helper()
		for i, id := range ids {
			want := issued[id]
			err := harness.WaitFor(rotationTimeout, func() error {
				got, err := presentedBy(c.Endpoint(i), pool)
				if err != nil {
					return err
				}
				if got.SerialNumber.Cmp(want.SerialNumber) != 0 {
					return fmt.Errorf("%s presents serial %x, not the new %x", id, got.SerialNumber, want.SerialNumber)
				}
				st, err := c.Member(i).Status()
				if err != nil {
					return err
				}
				if st.GetCertExpiryUnix() != want.NotAfter.Unix() {
					return fmt.Errorf("%s reports its certificate expires at %d, not %d", id, st.GetCertExpiryUnix(), want.NotAfter.Unix())
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	oldPool, newPool := oldCA.Pool(), newCA.Pool()

	// Renewal: new certificates from the same CA.
	renewed := make(map[string]*x509.Certificate)
	for _, id := range ids {
		renewed[id] = f.issue(oldCA, id, security.RoleMember, 90*24*time.Hour)
	}
	hangupAll()
	presents(renewed, oldPool)
	load.waitMore(t, 100)

	// CA rotation, step 1: trust both CAs. A client of the new CA is then
	// admitted by every member.
	f.trust(oldCA, newCA)
	hangupAll()
	f.issue(newCA, "new", security.RoleRead, 0)
	newClient := clientOf(t, f.dir, "new", f.loadTLS(oldCA, newCA).RootCAs) // the members still present the old CA's certificates
	for i := range ids {
		if err := harness.WaitFor(rotationTimeout, func() error { return statusWith(c.Endpoint(i), newClient) }); err != nil {
			t.Fatalf("a client certificate of the new CA, after the members trust both: %v", err)
		}
	}
	load.waitMore(t, 100)

	// Step 2: every certificate moves to the new CA.
	rotated := make(map[string]*x509.Certificate)
	for _, id := range ids {
		rotated[id] = f.issue(newCA, id, security.RoleMember, 0)
	}
	f.issue(newCA, "load", security.RoleAdmin, 0)
	hangupAll()
	presents(rotated, newPool)
	load.waitMore(t, 100)

	// Step 3: trust only the new CA. A client certificate of the old one is
	// refused by every member, with the reason.
	f.trust(newCA)
	hangupAll()
	oldClient := refusedClientOf(t, f.dir, "old", newPool) // trusts the members; presents the old CA's certificate
	for i := range ids {
		err := harness.WaitFor(rotationTimeout, func() error {
			err := statusWith(c.Endpoint(i), oldClient)
			if err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
				return fmt.Errorf("status with the old CA's certificate = %v; want refused for an unknown authority", err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	load.waitMore(t, 100)

	acked, errs := load.stop()
	for _, err := range errs {
		t.Errorf("refused during the rotation: %v", err)
	}
	t.Logf("%d commits acknowledged during the rotation, %d refused", len(acked), len(errs))
	ensureSamePrefix(t, c, "rot/", acked) // every member holds every acknowledged commit

	// Members dial each other under the new CA alone. A restarted member's
	// connections are all new: whichever member leads afterwards, some
	// member that only reloaded its files dials another (the leader dials
	// the restarted member, or the others forward their commits to it).
	if err := c.Member(0).Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Member(0).WaitStatus(opsJoinTimeout, harness.SyncedVoter); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, time.Minute)
	for i, id := range ids {
		if err := newClientOf(t, c, i).Put(ctx, []byte("rot/after-restart/"+id), []byte("ok")); err != nil {
			t.Fatalf("put through %s after the restart: %v", id, err)
		}
	}
	converge(t, c)
}

// httpCode returns the status code of GET url through a client of cfg (nil:
// plaintext).
func httpCode(t *testing.T, cfg *tls.Config, url string) int {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// newClientOf is a client of member i alone.
func newClientOf(t *testing.T, c *harness.Cluster, i int) *client.Client {
	t.Helper()
	return newClient(t, c, c.Endpoint(i))
}

// TestOpsSecuredMember checks a member process started with
// --client-cert-auth, --enable-pprof and --listen-metrics. Every HTTP path
// asks a certificate of the role gRPC would: the probes none, /status and
// /metrics the read role, the profiler the admin role; the plaintext
// listener serves only the metrics and the probes. An expired certificate
// is refused: the command line will not use one, saying when it expired; a
// client that presents one anyway is refused by the member with a TLS
// alert that says it expired; a member does not start with one.
func TestOpsSecuredMember(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts real galena processes")
	}
	f := certFiles{t: t, dir: t.TempDir()}
	ca := f.newCA()
	f.issue(ca, "n1", security.RoleMember, 0)
	f.issue(ca, "load", security.RoleAdmin, 0)
	f.trust(ca)
	metricsAddr, err := harness.ClosedAddr()
	if err != nil {
		t.Fatal(err)
	}
	c := harness.NewCluster(t, harness.Options{Binary: galenaBin, Members: 1,
		ExtraArgs:  []string{"--client-cert-auth", "--enable-pprof", "--listen-metrics", metricsAddr},
		MemberArgs: [][]string{f.memberArgs("n1")}, ClientTLS: f.loadTLS(ca)})
	ep := c.Endpoint(0)

	const ok, unauthenticated, denied, absent = http.StatusOK, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound
	paths := []string{"/healthz", "/readyz", "/status", "/metrics", "/debug/pprof/", "/debug/pprof/cmdline"}
	for role, codes := range map[security.Role][]int{
		security.RoleNone:  {ok, ok, unauthenticated, unauthenticated, unauthenticated, unauthenticated},
		security.RoleRead:  {ok, ok, ok, ok, denied, denied},
		security.RoleWrite: {ok, ok, ok, ok, denied, denied},
		security.RoleAdmin: {ok, ok, ok, ok, ok, ok},
	} {
		cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
		if role != security.RoleNone {
			name := "http-" + role.String()
			f.issue(ca, name, role, 0)
			cfg = clientOf(t, f.dir, name, ca.Pool())
		}
		for i, path := range paths {
			if got := httpCode(t, cfg, "https://"+ep+path); got != codes[i] {
				t.Errorf("role %v: GET %s = %d, want %d", role, path, got, codes[i])
			}
		}
	}
	for path, code := range map[string]int{"/metrics": ok, "/healthz": ok, "/readyz": ok, "/status": absent, "/debug/pprof/": absent} {
		if got := httpCode(t, nil, "http://"+metricsAddr+path); got != code {
			t.Errorf("plaintext listener: GET %s = %d, want %d", path, got, code)
		}
	}

	expired := f.issue(ca, "expired", security.RoleAdmin, time.Nanosecond)
	if err := harness.WaitFor(time.Minute, func() error {
		if time.Now().Before(expired.NotAfter) {
			return fmt.Errorf("not yet expired")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	r := c.CLI("get", "k", "--tls-ca", filepath.Join(f.dir, "ca.crt"),
		"--tls-cert", filepath.Join(f.dir, "expired.crt"), "--tls-key", filepath.Join(f.dir, "expired.key"))
	if r.Code != 2 || !strings.Contains(r.Stderr, `certificate "expired" expired at`) {
		t.Fatalf("the CLI with an expired certificate: %v", r)
	}
	err = statusWith(c.Endpoint(0), refusedClientOf(t, f.dir, "expired", ca.Pool()))
	if err == nil || !strings.Contains(err.Error(), "expired certificate") {
		t.Fatalf("Status presenting an expired certificate = %v; want refused as expired", err)
	}

	f.issue(ca, "n2", security.RoleMember, time.Nanosecond)
	addr, err := harness.ClosedAddr()
	if err != nil {
		t.Fatal(err)
	}
	r = harness.RunStart(galenaBin, time.Minute, append([]string{"--id", "n2", "--addr", addr, "--data", filepath.Join(t.TempDir(), "n2"),
		"--join", c.Endpoint(0)}, f.memberArgs("n2")...)...)
	if r.Code != 2 || !strings.Contains(r.Stderr, `certificate "n2" expired at`) {
		t.Fatalf("a member with an expired certificate: %v", r)
	}
}
