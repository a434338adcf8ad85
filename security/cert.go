package security

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// Validity of the certificates this package issues, unless told otherwise.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultCertValidity = 365 * 24 * time.Hour
)

// clockSkew backdates every certificate, so a member whose clock is a
// little behind the issuer's accepts it at once.
const clockSkew = 5 * time.Minute

// caName is the common name of a development CA.
const caName = "Galena development CA"

// KeyPair is a certificate and its private key, PEM-encoded.
type KeyPair struct {
	Cert []byte // CERTIFICATE
	Key  []byte // PRIVATE KEY (PKCS #8)
}

// TLS parses p for a tls.Config.
func (p KeyPair) TLS() (tls.Certificate, error) {
	c, err := tls.X509KeyPair(p.Cert, p.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("security: %w", err)
	}
	return c, nil
}

// CA is a certificate authority that issues member and client
// certificates. Its methods are safe for concurrent use.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pair KeyPair
}

// NewCA makes a self-signed CA valid for validFor (0: DefaultCAValidity).
func NewCA(validFor time.Duration) (*CA, error) {
	if validFor <= 0 {
		validFor = DefaultCAValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("security: CA key: %w", err)
	}
	tmpl, err := template(pkix.Name{CommonName: caName, Organization: []string{"galena"}}, validFor)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.MaxPathLenZero = true, true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("security: CA certificate: %w", err)
	}
	pair, err := encode(der, key)
	if err != nil {
		return nil, err
	}
	return ParseCA(pair)
}

// ParseCA reads a CA from its certificate and key. The certificate must be
// a CA's, and the key its own.
func ParseCA(p KeyPair) (*CA, error) {
	tc, err := p.TLS()
	if err != nil {
		return nil, err
	}
	key, ok := tc.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("security: the CA key is not an ECDSA key")
	}
	if !tc.Leaf.IsCA {
		return nil, fmt.Errorf("security: certificate %q is not a CA", tc.Leaf.Subject.CommonName)
	}
	return &CA{cert: tc.Leaf, key: key, pair: p}, nil
}

// Pair is the CA's certificate and key, PEM-encoded.
func (ca *CA) Pair() KeyPair { return ca.pair }

// Pool is a pool holding only the CA's certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// Leaf describes a certificate to issue.
type Leaf struct {
	// Name is the subject's common name: a member's id or a client's name.
	Name string
	// Role is carried in a galena:role URI SAN.
	Role Role
	// Hosts are the IP addresses and DNS names a member is reached at; a
	// member certificate needs at least one, since peers and clients check
	// the address they dialled against them.
	Hosts []string
	// ValidFor is the certificate's lifetime; 0 means DefaultCertValidity.
	ValidFor time.Duration
}

// Issue makes a key and a certificate for l, signed by ca. A member's
// certificate serves and dials (server and client authentication), a
// client's only dials.
func (ca *CA) Issue(l Leaf) (KeyPair, error) {
	if err := l.validate(); err != nil {
		return KeyPair{}, err
	}
	if l.ValidFor <= 0 {
		l.ValidFor = DefaultCertValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("security: key: %w", err)
	}
	tmpl, err := template(pkix.Name{CommonName: l.Name, Organization: []string{"galena"}}, l.ValidFor)
	if err != nil {
		return KeyPair{}, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if l.Role == RoleMember {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	tmpl.URIs = append(tmpl.URIs, l.Role.URI())
	for _, h := range l.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("security: certificate %q: %w", l.Name, err)
	}
	return encode(der, key)
}

func (l Leaf) validate() error {
	switch {
	case l.Name == "":
		return errors.New("security: a certificate needs a name")
	case l.Role <= RoleNone || l.Role > RoleMember:
		return fmt.Errorf("%w: %v", ErrUnknownRole, l.Role)
	case l.Role == RoleMember && len(l.Hosts) == 0:
		return fmt.Errorf("security: member certificate %q needs at least one host (IP address or DNS name)", l.Name)
	}
	for _, h := range l.Hosts {
		if h == "" || (strings.ContainsAny(h, " \t\n,/:") && net.ParseIP(h) == nil) {
			return fmt.Errorf("security: host %q is neither an IP address nor a DNS name", h)
		}
	}
	return nil
}

// CheckValidity fails, saying when, if cert has expired or is not yet
// valid at now: peers would refuse it.
func CheckValidity(cert *x509.Certificate, now time.Time) error {
	const layout = "2006-01-02 15:04:05 MST"
	switch {
	case now.After(cert.NotAfter):
		return fmt.Errorf("security: certificate %q expired at %s (%s ago)", cert.Subject.CommonName,
			cert.NotAfter.UTC().Format(layout), now.Sub(cert.NotAfter).Round(time.Second))
	case now.Before(cert.NotBefore):
		return fmt.Errorf("security: certificate %q is valid only from %s (in %s): check this host's clock", cert.Subject.CommonName,
			cert.NotBefore.UTC().Format(layout), cert.NotBefore.Sub(now).Round(time.Second))
	}
	return nil
}

// template is a certificate template with a random serial number, valid
// from a little before now for validFor.
func template(subject pkix.Name, validFor time.Duration) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("security: serial number: %w", err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial, Subject: subject,
		NotBefore: now.Add(-clockSkew), NotAfter: now.Add(validFor),
	}, nil
}

func encode(der []byte, key *ecdsa.PrivateKey) (KeyPair, error) {
	k, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("security: encode key: %w", err)
	}
	return KeyPair{
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k}),
	}, nil
}
