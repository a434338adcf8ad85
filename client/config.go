package client

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/galenadb/galena/security"
	"go.uber.org/zap"
)

// Defaults used by DefaultConfig and for zero fields of a Config given to New.
const (
	DefaultDialTimeout = 2 * time.Second
	DefaultMaxCallSize = 20 << 20 // 20 MiB
	// DefaultMaxValueSize and DefaultMaxWriteSetSize are a member's
	// default limits (txn.DefaultLimits).
	DefaultMaxValueSize    = 1 << 20  // 1 MiB
	DefaultMaxWriteSetSize = 16 << 20 // 16 MiB
	DefaultConflictBackoff = 2 * time.Millisecond
	DefaultWatchTimeout    = 5 * time.Second
	// MaxConflictBackoff caps the doubling of Config.ConflictBackoff.
	MaxConflictBackoff = 200 * time.Millisecond
)

// Config configures a Client. New copies it; changing it afterwards has no
// effect. Zero fields take the defaults of DefaultConfig.
type Config struct {
	// Endpoints are the gRPC addresses ("host:port") of cluster members,
	// tried in order starting with the first, those already connected
	// before the others. At least one is required.
	Endpoints []string
	// DialTimeout bounds one connection attempt to an endpoint (default
	// 2 s). An endpoint that is unreachable, or accepts connections but
	// never answers (a stopped process, say), costs a call at most about
	// this long before it moves on, and nothing while another endpoint is
	// connected: New connects to every endpoint at once and calls try the
	// connected ones first. It does not bound the call itself; the call's
	// context does.
	DialTimeout time.Duration
	// NoLeaderWait makes a call that every endpoint refused for want of a
	// leader fail at once, with the refusal, instead of trying the
	// endpoints again until its context ends (see Elections in the package
	// documentation). Probes that check a member's own answer set it.
	NoLeaderWait bool
	// Serializable makes the client's transactions serializable unless one
	// says otherwise (see Serializable and SnapshotIsolation); without it
	// they run under snapshot isolation.
	Serializable bool
	// MaxCallSize is the largest gRPC message sent or received, in bytes.
	MaxCallSize int
	// MaxValueSize and MaxWriteSetSize are the members' limits on a value
	// and on a write-set, encoded (1 MiB and 16 MiB, their defaults): Put
	// and Commit refuse more with ErrTooLarge, saying which limit, before
	// anything is sent. Set them to the members' own if those differ. (A
	// write-set over MaxCallSize fails with ErrTooLarge too.)
	MaxValueSize    int
	MaxWriteSetSize int
	// Logger receives the client's logs; nil logs nothing.
	Logger *zap.Logger
	// ConflictBackoff is Update's first wait after a conflict; it doubles,
	// with jitter, after each further conflict up to MaxConflictBackoff.
	ConflictBackoff time.Duration
	// MaxConflictRetries bounds how often Update retries after a conflict;
	// 0 retries until the context is done.
	MaxConflictRetries int
	// TLS, if set, connects to the members over TLS: RootCAs verifies their
	// certificates (the cluster's CA) against the endpoint's host, and
	// Certificates, if any, is the client's own, which members that verify
	// clients require and whose role (read, write, admin) says what the
	// client may do. nil connects in plaintext. A handshake that fails
	// (untrusted member, refused certificate) fails the call with
	// ErrUnavailable once every endpoint was tried.
	TLS *tls.Config
	// WatchTimeout: a watch whose member sent nothing for this long (a
	// member sends at least once a second while a watch is idle) is taken
	// to be stopped or cut off, and the watch goes on on another member
	// (default 5 s).
	WatchTimeout time.Duration
}

// DefaultConfig returns a Config with every default set and no endpoints.
func DefaultConfig() Config {
	return Config{
		DialTimeout:     DefaultDialTimeout,
		MaxCallSize:     DefaultMaxCallSize,
		MaxValueSize:    DefaultMaxValueSize,
		MaxWriteSetSize: DefaultMaxWriteSetSize,
		ConflictBackoff: DefaultConflictBackoff,
		WatchTimeout:    DefaultWatchTimeout,
	}
}

// withDefaults returns a copy of c with zero fields defaulted.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.DialTimeout == 0 {
		c.DialTimeout = d.DialTimeout
	}
	if c.MaxCallSize == 0 {
		c.MaxCallSize = d.MaxCallSize
	}
	if c.MaxValueSize == 0 {
		c.MaxValueSize = d.MaxValueSize
	}
	if c.MaxWriteSetSize == 0 {
		c.MaxWriteSetSize = d.MaxWriteSetSize
	}
	if c.ConflictBackoff == 0 {
		c.ConflictBackoff = d.ConflictBackoff
	}
	if c.WatchTimeout == 0 {
		c.WatchTimeout = d.WatchTimeout
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	c.Endpoints = append([]string(nil), c.Endpoints...)
	if c.TLS != nil {
		c.TLS = c.TLS.Clone()
	}
	return c
}

// Validate reports the first problem of c as an error wrapping
// ErrInvalidArgument. Zero durations and sizes are valid (they mean default).
func (c Config) Validate() error {
	switch {
	case len(c.Endpoints) == 0:
		return fmt.Errorf("%w: config: no endpoints", ErrInvalidArgument)
	case c.DialTimeout < 0:
		return fmt.Errorf("%w: config: negative DialTimeout %v", ErrInvalidArgument, c.DialTimeout)
	case c.MaxCallSize < 0 || c.MaxValueSize < 0 || c.MaxWriteSetSize < 0:
		return fmt.Errorf("%w: config: negative MaxCallSize, MaxValueSize or MaxWriteSetSize", ErrInvalidArgument)
	case c.ConflictBackoff < 0:
		return fmt.Errorf("%w: config: negative ConflictBackoff %v", ErrInvalidArgument, c.ConflictBackoff)
	case c.WatchTimeout < 0:
		return fmt.Errorf("%w: config: negative WatchTimeout %v", ErrInvalidArgument, c.WatchTimeout)
	case c.MaxConflictRetries < 0:
		return fmt.Errorf("%w: config: negative MaxConflictRetries %d", ErrInvalidArgument, c.MaxConflictRetries)
	}
	for i, ep := range c.Endpoints {
		if ep == "" {
			return fmt.Errorf("%w: config: endpoint %d is empty", ErrInvalidArgument, i)
		}
	}
	return c.checkCertificate(time.Now())
}

// checkCertificate refuses a client certificate that is not valid at now:
// members would refuse it, with only a TLS alert to say why.
func (c Config) checkCertificate(now time.Time) error {
	if c.TLS == nil || len(c.TLS.Certificates) == 0 || len(c.TLS.Certificates[0].Certificate) == 0 {
		return nil
	}
	leaf := c.TLS.Certificates[0].Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(c.TLS.Certificates[0].Certificate[0]); err != nil {
			return fmt.Errorf("%w: config: the client certificate: %v", ErrInvalidArgument, err)
		}
	}
	if err := security.CheckValidity(leaf, now); err != nil {
		return fmt.Errorf("%w: config: the client certificate: %v", ErrInvalidArgument, err)
	}
	return nil
}
