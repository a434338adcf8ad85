package node_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/galenadb/galena/node"
	"github.com/galenadb/galena/node/nodetest"
	"github.com/galenadb/galena/security"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// httpGet returns the status code of GET url through a client of cfg (nil:
// plaintext).
func httpGet(t *testing.T, cfg *tls.Config, url string) int {
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

// Under --client-cert-auth every HTTP path asks for the role gRPC would:
// the probes nobody, /status and /metrics the read role, the profiler
// (turned on) the admin role; the plaintext metrics listener serves the
// metrics and the probes alone, to anyone.
func TestHTTPPathsByRole(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	pki := newTestPKI(t)
	var certDER []byte // the member's certificate
	c := nodetest.MakeClusterWith(t, 1, func(_ int, cfg *node.Config) {
		pki.member(cfg, true)
		cfg.EnablePprof, cfg.MetricsAddr = true, "127.0.0.1:0"
		certDER = cfg.TLS.Certificates[0].Certificate[0]
	})
	c.Leader()
	waitState(c, 0, node.StateSynced)
	ep := c.Endpoints()[0]
	const ok, unauthenticated, denied, absent = http.StatusOK, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound
	paths := []string{"/healthz", "/readyz", "/status", "/metrics", "/debug/pprof/", "/debug/pprof/cmdline"}
	want := map[security.Role][]int{
		security.RoleNone:  {ok, ok, unauthenticated, unauthenticated, unauthenticated, unauthenticated},
		security.RoleRead:  {ok, ok, ok, ok, denied, denied},
		security.RoleWrite: {ok, ok, ok, ok, denied, denied},
		security.RoleAdmin: {ok, ok, ok, ok, ok, ok},
	}
	for role, codes := range want {
		cfg := pki.client(fmt.Sprint("http-", role), role)
		for i, path := range paths {
			if got := httpGet(t, cfg, "https://"+ep+path); got != codes[i] {
				t.Errorf("role %v: GET %s = %d, want %d", role, path, got, codes[i])
			}
		}
	}

	plain := c.Nodes[0].MetricsAddr()
	// The member's certificate expiry is a metric.
	leaf, err := x509.ParseCertificate(certDER)
	if err != nil {
		t.Fatal(err)
	}
	if m := scrape(t, plain); m["galena_tls_certificate_expiry_timestamp_seconds"] != float64(leaf.NotAfter.Unix()) {
		t.Errorf("galena_tls_certificate_expiry_timestamp_seconds = %v, want %d (the certificate's NotAfter)",
			m["galena_tls_certificate_expiry_timestamp_seconds"], leaf.NotAfter.Unix())
	}
	for path, code := range map[string]int{"/metrics": ok, "/healthz": ok, "/readyz": ok, "/status": absent, "/debug/pprof/": absent} {
		if got := httpGet(t, nil, "http://"+plain+path); got != code {
			t.Errorf("plaintext listener: GET %s = %d, want %d", path, got, code)
		}
	}
}

// The profiler is off unless EnablePprof turns it on.
func TestProfilerOffByDefault(t *testing.T) {
	c := cluster(t, 1)
	ep := c.Endpoints()[0]
	if got := httpGet(t, nil, "http://"+ep+"/debug/pprof/"); got != http.StatusNotFound {
		t.Fatalf("GET /debug/pprof/ of a member without EnablePprof = %d, want 404", got)
	}
	if got := httpGet(t, nil, "http://"+ep+"/status"); got != http.StatusOK {
		t.Fatalf("GET /status without client-cert-auth = %d, want 200", got)
	}
}

// A member whose certificate expires within 30 days warns when it starts.
func TestCertificateExpiryWarning(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	pki := newTestPKI(t)
	obs, logs := observer.New(zap.WarnLevel)
	c := nodetest.MakeClusterWith(t, 1, func(_ int, cfg *node.Config) {
		pki.memberFor(cfg, false, 24*time.Hour)
		cfg.Logger = teeWarnings(cfg.Logger, obs)
	})
	c.Leader()
	if n := logs.FilterMessage("TLS certificate").Len(); n != 1 {
		t.Fatalf("%d warnings of a certificate that expires in a day, want 1", n)
	}
}
