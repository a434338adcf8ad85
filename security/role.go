package security

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Errors of this package, matched with errors.Is.
var (
	// ErrUnknownRole is a role name other than read, write, admin or member.
	ErrUnknownRole = errors.New("security: unknown role")
	// ErrNoRole is a certificate without a galena:role URI SAN, or with
	// more than one.
	ErrNoRole = errors.New("security: certificate carries no galena role")
	// ErrNoCertificate is a TLS peer that presented no verified certificate.
	ErrNoCertificate = errors.New("security: no verified certificate")
	// ErrExists is a file that would be overwritten without force.
	ErrExists = errors.New("security: file exists")
	// ErrNoCA is a directory without the CA's certificate or key.
	ErrNoCA = errors.New("security: no CA")
)

// Role is what a certificate's holder may do. Roles are ordered: each one
// has the rights of those before it.
type Role int

// Roles, in order.
const (
	RoleNone   Role = iota // no Galena role: no rights
	RoleRead               // Get, Scan, Status, MemberList, Digest
	RoleWrite              // RoleRead and Commit
	RoleAdmin              // RoleWrite and MemberAdd, MemberRemove
	RoleMember             // a cluster member: every right, and Raft and forwarding connections
)

// roleScheme and rolePrefix form the URI SAN that carries a role:
// galena:role:<name>.
const (
	roleScheme = "galena"
	rolePrefix = "role:"
)

var roleNames = [...]string{RoleNone: "none", RoleRead: "read", RoleWrite: "write", RoleAdmin: "admin", RoleMember: "member"}

// String returns the role's name: none, read, write, admin or member.
func (r Role) String() string {
	if r < 0 || int(r) >= len(roleNames) {
		return fmt.Sprintf("Role(%d)", int(r))
	}
	return roleNames[r]
}

// Allows reports whether r has the rights of need.
func (r Role) Allows(need Role) bool { return r >= need }

// URI is the URI SAN that carries r in a certificate.
func (r Role) URI() *url.URL {
	return &url.URL{Scheme: roleScheme, Opaque: rolePrefix + r.String()}
}

// ParseRole parses read, write, admin or member. It fails with
// ErrUnknownRole for anything else, none included.
func ParseRole(s string) (Role, error) {
	for r, name := range roleNames {
		if name == s && Role(r) != RoleNone {
			return Role(r), nil
		}
	}
	return RoleNone, fmt.Errorf("%w %q: want read, write, admin or member", ErrUnknownRole, s)
}

// RoleOf returns the role cert carries in its galena:role URI SAN. It fails
// with ErrNoRole when there is none or more than one, and with
// ErrUnknownRole when the name is not a role.
func RoleOf(cert *x509.Certificate) (Role, error) {
	var found []string
	for _, u := range cert.URIs {
		if u.Scheme == roleScheme && strings.HasPrefix(u.Opaque, rolePrefix) {
			found = append(found, strings.TrimPrefix(u.Opaque, rolePrefix))
		}
	}
	switch len(found) {
	case 0:
		return RoleNone, fmt.Errorf("%w (certificate %q)", ErrNoRole, cert.Subject.CommonName)
	case 1:
		return ParseRole(found[0])
	}
	return RoleNone, fmt.Errorf("%w: certificate %q carries %d roles", ErrNoRole, cert.Subject.CommonName, len(found))
}

// PeerRole returns the role and common name of the certificate a TLS peer
// presented and the handshake verified. It fails with ErrNoCertificate when
// the peer presented none, and as RoleOf does.
func PeerRole(cs tls.ConnectionState) (Role, string, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return RoleNone, "", ErrNoCertificate
	}
	leaf := cs.VerifiedChains[0][0]
	r, err := RoleOf(leaf)
	return r, leaf.Subject.CommonName, err
}
