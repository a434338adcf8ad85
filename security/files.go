package security

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/galenadb/galena/internal/atomicfile"
)

// CAName is the base name of a CA's files in a directory: ca.crt, ca.key.
const CAName = "ca"

// CertPath is the certificate's file of name in dir, as WritePair writes it.
func CertPath(dir, name string) string { return filepath.Join(dir, name+".crt") }

// KeyPath is the private key's file of name in dir.
func KeyPath(dir, name string) string { return filepath.Join(dir, name+".key") }

// WritePair writes p as <name>.crt (mode 0644) and <name>.key (mode 0600) in
// dir, creating dir if needed. Unless force, it fails with ErrExists, and
// writes neither file, when either exists. It returns the paths written.
func WritePair(dir, name string, p KeyPair, force bool) (certPath, keyPath string, err error) {
	certPath, keyPath = CertPath(dir, name), KeyPath(dir, name)
	if !force {
		for _, path := range []string{certPath, keyPath} {
			if _, err := os.Lstat(path); err == nil {
				return "", "", fmt.Errorf("%w: %s (use --force to overwrite)", ErrExists, path)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("security: %w", err)
	}
	if err := writeFile(keyPath, p.Key, 0o600, force); err != nil {
		return "", "", err
	}
	if err := writeFile(certPath, p.Cert, 0o644, force); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// writeFile writes data to path with mode through a temporary file, so a
// reader never sees half a file and a key is never readable by others.
// Without force it does not replace an existing file.
func writeFile(path string, data []byte, mode fs.FileMode, force bool) error {
	err := atomicfile.Write(path, data, mode, force)
	switch {
	case !force && errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%w: %s (use --force to overwrite)", ErrExists, path)
	case err != nil:
		return fmt.Errorf("security: write %s: %w", path, err)
	}
	return nil
}

// LoadCA reads ca.crt and ca.key from dir. It fails with ErrNoCA when
// either is missing.
func LoadCA(dir string) (*CA, error) {
	var p KeyPair
	var err error
	for _, f := range []struct {
		path string
		dst  *[]byte
	}{{CertPath(dir, CAName), &p.Cert}, {KeyPath(dir, CAName), &p.Key}} {
		*f.dst, err = os.ReadFile(f.path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w in %s: %s is missing (make one with: galena cert ca --out %s)", ErrNoCA, dir, f.path, dir)
		}
		if err != nil {
			return nil, fmt.Errorf("security: %w", err)
		}
	}
	ca, err := ParseCA(p)
	if err != nil {
		return nil, fmt.Errorf("security: CA in %s: %w", dir, err)
	}
	return ca, nil
}

// Files names PEM files: a certificate, its private key and the CA
// certificate to trust.
type Files struct {
	Cert, Key, CA string
}

// load reads the files: the certificate (nil when f.Cert and f.Key are
// both empty), the pool of the CAs and the CAs themselves.
func (f Files) load() (*tls.Certificate, *x509.CertPool, []*x509.Certificate, error) {
	if f.CA == "" {
		return nil, nil, nil, errors.New("security: a CA certificate file is required")
	}
	cas, err := ReadCAs(f.CA)
	if err != nil {
		return nil, nil, nil, err
	}
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	switch {
	case f.Cert == "" && f.Key == "":
		return nil, pool, cas, nil
	case f.Cert == "" || f.Key == "":
		return nil, nil, nil, errors.New("security: a certificate and its key go together: give both or neither")
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("security: %w", err)
	}
	if err := CheckValidity(cert.Leaf, time.Now()); err != nil {
		return nil, nil, nil, fmt.Errorf("%w (%s)", err, f.Cert)
	}
	return &cert, pool, cas, nil
}

// ReadCAs reads the certificates of a CA file, a bundle of one or more PEM
// certificates (several while one CA replaces another).
func ReadCAs(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("security: CA: %w", err)
	}
	var cas []*x509.Certificate
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("security: %s: %w", path, err)
		}
		cas = append(cas, c)
	}
	if len(cas) == 0 {
		return nil, fmt.Errorf("security: %s holds no PEM certificate", path)
	}
	return cas, nil
}

// Member loads a member's certificate (which must carry RoleMember) and
// returns the configurations of its port and of its connections to other
// members (see ServerConfig and PeerConfig), and the CAs they trust, as
// read from f.CA in the same load.
func (f Files) Member() (server, peer *tls.Config, cas []*x509.Certificate, err error) {
	cert, pool, cas, err := f.load()
	if err != nil {
		return nil, nil, nil, err
	}
	if cert == nil {
		return nil, nil, nil, errors.New("security: a member needs a certificate and its key")
	}
	if r, err := RoleOf(cert.Leaf); err != nil {
		return nil, nil, nil, fmt.Errorf("security: %s is not a member certificate: %w", f.Cert, err)
	} else if r != RoleMember {
		return nil, nil, nil, fmt.Errorf("security: %s is not a member certificate (its role is %v): make one with galena cert node", f.Cert, r)
	}
	return ServerConfig(*cert, pool), PeerConfig(*cert, pool), cas, nil
}

// Client loads a client's configuration: the CA to verify members with and,
// if f names one, the client's certificate.
func (f Files) Client() (*tls.Config, error) {
	cert, pool, _, err := f.load()
	if err != nil {
		return nil, err
	}
	return ClientConfig(cert, pool), nil
}

// ServerNextProtos are the ALPN protocols a member's port offers, in order
// of preference: a client offering both (a browser, curl) gets HTTP/1.1,
// which the port's HTTP matcher recognises; gRPC clients offer only h2.
var ServerNextProtos = []string{"http/1.1", "h2"}

// ServerConfig is the configuration of a member's port: it presents cert,
// and verifies a certificate signed by cas when one is presented
// (tls.VerifyClientCertIfGiven). Whether one is required depends on the
// protocol, which is known only after the handshake: the member decides.
// It issues no session tickets: a resumed session skips the verification
// of the client's certificate chain, so once a member stops trusting a CA
// (see node.Node.SetTLS) a ticket could let in a certificate it signed.
// Members and clients keep their connections, so resumption would save
// little.
func ServerConfig(cert tls.Certificate, cas *x509.CertPool) *tls.Config {
	return &tls.Config{
		Certificates:           []tls.Certificate{cert},
		ClientCAs:              cas,
		ClientAuth:             tls.VerifyClientCertIfGiven,
		NextProtos:             append([]string(nil), ServerNextProtos...),
		MinVersion:             tls.VersionTLS12,
		SessionTicketsDisabled: true,
	}
}

// PeerConfig is the configuration a member dials other members with: it
// presents cert and trusts members whose certificates cas signed.
func PeerConfig(cert tls.Certificate, cas *x509.CertPool) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      cas,
		MinVersion:   tls.VersionTLS12,
	}
}

// ClientConfig is a client's configuration: it trusts members whose
// certificates cas signed and presents cert, if not nil.
func ClientConfig(cert *tls.Certificate, cas *x509.CertPool) *tls.Config {
	c := &tls.Config{RootCAs: cas, MinVersion: tls.VersionTLS12}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c
}
