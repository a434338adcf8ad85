package security

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/url"
	"testing"
)

func TestParseRole(t *testing.T) {
	tests := []struct {
		in      string
		want    Role
		wantErr error
	}{
		{"read", RoleRead, nil},
		{"write", RoleWrite, nil},
		{"admin", RoleAdmin, nil},
		{"member", RoleMember, nil},
		{"none", RoleNone, ErrUnknownRole},
		{"", RoleNone, ErrUnknownRole},
		{"Admin", RoleNone, ErrUnknownRole},
		{"root", RoleNone, ErrUnknownRole},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRole(tt.in)
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseRole(%q) = %v, %v; want %v, %v", tt.in, got, err, tt.want, tt.wantErr)
			}
			if err == nil && got.String() != tt.in {
				t.Fatalf("%v.String() = %q", got, got.String())
			}
		})
	}
}

func TestRoleAllows(t *testing.T) {
	roles := []Role{RoleNone, RoleRead, RoleWrite, RoleAdmin, RoleMember}
	for i, have := range roles {
		for j, need := range roles {
			if got, want := have.Allows(need), i >= j; got != want {
				t.Errorf("%v.Allows(%v) = %v, want %v", have, need, got, want)
			}
		}
	}
}

func TestRoleOf(t *testing.T) {
	uri := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	tests := []struct {
		name    string
		uris    []*url.URL
		want    Role
		wantErr error
	}{
		{"member", []*url.URL{RoleMember.URI()}, RoleMember, nil},
		{"read parsed from text", []*url.URL{uri("galena:role:read")}, RoleRead, nil},
		{"other URIs ignored", []*url.URL{uri("spiffe://example.org/x"), uri("galena:role:admin")}, RoleAdmin, nil},
		{"none", nil, RoleNone, ErrNoRole},
		{"two roles", []*url.URL{RoleRead.URI(), RoleAdmin.URI()}, RoleNone, ErrNoRole},
		{"unknown name", []*url.URL{uri("galena:role:root")}, RoleNone, ErrUnknownRole},
		{"role none is not a role", []*url.URL{RoleNone.URI()}, RoleNone, ErrUnknownRole},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RoleOf(&x509.Certificate{URIs: tt.uris})
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Fatalf("RoleOf = %v, %v; want %v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestPeerRoleNeedsVerifiedChain(t *testing.T) {
	if _, _, err := PeerRole(tls.ConnectionState{}); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("no chain: %v, want ErrNoCertificate", err)
	}
	// A presented but unverified certificate does not count.
	cs := tls.ConnectionState{PeerCertificates: []*x509.Certificate{{URIs: []*url.URL{RoleMember.URI()}}}}
	if _, _, err := PeerRole(cs); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("unverified: %v, want ErrNoCertificate", err)
	}
}
