package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/galenadb/galena/certification/apply"
	"github.com/galenadb/galena/groupcomm"
	"github.com/galenadb/galena/storage"
	"github.com/galenadb/galena/txn"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Config configures a member.
type Config struct {
	ID      string // unique member id, e.g. "n1"
	Addr    string // host:port to listen on and advertise to peers and clients
	DataDir string // holds the Raft log, snapshots and storage

	// InitialCluster lists every voting member of a new cluster (this one
	// included). Each listed member bootstraps the same configuration on its
	// first start; on later starts the stored configuration is used.
	InitialCluster []Peer
	// ClusterToken tells apart clusters bootstrapped from the same
	// InitialCluster: the cluster id is derived from both. Empty means
	// DefaultClusterToken.
	ClusterToken string

	// Join is the address of a member of a running cluster. A member with no
	// state asks it to be added, catches up as a non-voter (state transfer
	// from a data member, then the log) and is promoted to voter once caught
	// up. With state, it only checks that the cluster is its own.
	Join string

	// Arbitrator makes the member vote without storing user data (Galera's
	// garbd): two data members and an arbitrator survive the loss of either
	// data member. An arbitrator hands leadership over to a data member and
	// is never the source of a state transfer.
	Arbitrator bool

	// Listener, if set, is used instead of listening on Addr (tests and the
	// demo pre-open ports). The node closes it.
	Listener net.Listener

	// PeerDial, if set, opens connections to other members (fault tests
	// route them through proxies); nil dials TCP.
	PeerDial func(addr string, timeout time.Duration) (net.Conn, error)

	// TLS, if set, secures everything on the member's port: the listener is
	// wrapped in TLS before it is split by protocol, so Raft, forwarding,
	// gRPC and HTTP are all encrypted. It presents this member's
	// certificate, which must carry the member role (see package security:
	// galena cert node makes one), and verifies the certificates presented
	// with ClientCAs, only when given (tls.VerifyClientCertIfGiven): Raft
	// and forwarding connections must present a member certificate, gRPC
	// clients only with ClientCertAuth. security.ServerConfig builds one.
	// PeerTLS is then required. nil serves plaintext; a member that does so
	// on a non-loopback address logs a warning. Node.SetTLS replaces TLS
	// and PeerTLS while the member runs.
	TLS *tls.Config
	// PeerTLS is how this member dials other members (Raft, forwarding,
	// membership changes passed to the leader, Join): it presents this
	// member's certificate and verifies theirs with RootCAs; the member also
	// refuses a peer whose certificate lacks the member role.
	// security.PeerConfig builds one.
	PeerTLS *tls.Config
	// ClientCertAuth makes every gRPC call present a certificate, signed by
	// the CA, whose role allows it (security.Role: read, write, admin;
	// members may do everything); others are refused with Unauthenticated
	// or PermissionDenied. It needs TLS. Without it, any client may do
	// anything, as without TLS.
	ClientCertAuth bool
	// live holds TLS and PeerTLS as New prepared them, then as SetTLS
	// replaces them; nil without TLS.
	live *liveTLS
	// EnablePprof serves Go's profiler at /debug/pprof/ on the member's
	// port (off by default: profiles show a database's memory, and a CPU
	// profile costs a core while it runs); with ClientCertAuth, to the
	// admin role only.
	EnablePprof bool
	// MetricsAddr, if set, is an extra listener ("host:port") serving
	// /metrics, /healthz and /readyz only, in plaintext and to anyone: for
	// scrapers and probes inside a trusted network when the member's port
	// verifies clients.
	MetricsAddr string

	Logger     *zap.Logger           // nil → zap.NewNop()
	Registerer prometheus.Registerer // nil → a private registry; /metrics serves it if it is also a Gatherer

	// RaftMetrics exports hashicorp/raft's own metrics (galena_raft_*) on
	// Registerer. Raft reports them to the go-metrics library's one
	// process-wide sink, which this member installs and removes on Close:
	// at most one member per process may set it (galena start does;
	// in-process test clusters and the demo leave it off, since raft's
	// metrics carry no member label).
	RaftMetrics bool

	// QuotaBytes is how much the data directory of a data member may hold
	// before the member refuses commits that put values (txn.ErrNoSpace);
	// it takes them again, by itself, once under. Zero means
	// DefaultQuotaFraction of the filesystem holding DataDir.
	QuotaBytes int64

	// ShutdownTimeout bounds how long Close lets in-flight commits, then
	// other in-flight requests, finish.
	ShutdownTimeout time.Duration

	// The parts' own settings, each declared by the package that uses it.
	// The member fills in what it owns (its id and address, directories,
	// cluster id, loggers, dialers and callbacks) from the fields above when
	// it starts; a configuration that sets any of those in a part is
	// refused.

	// Group configures the total order: Raft's timeouts, snapshots and log
	// retention, forwarding (groupcomm.Config).
	Group groupcomm.Config
	// Txn configures the transaction service: the limits of a request,
	// causal waits, the commit timeout, admission control (txn.Config). Its
	// Window is certification's, Apply.Certification.Window.
	Txn txn.Config
	// Storage configures a data member's store, kept under DataDir
	// (storage.Config); it is never in memory. Its Window is
	// certification's, Apply.Certification.Window.
	Storage storage.Config
	// Apply configures certification and the apply loop: the certification
	// rule, how often members compare their digests (CheckpointInterval) and,
	// in fault builds only, deliberate misbehaviours (apply.Faults).
	Apply apply.Config
}

// Peer is one voting member of a new cluster's initial configuration.
type Peer struct {
	ID   string
	Addr string // host:port the other members reach it at
}

// DefaultClusterToken is the cluster token when none is given.
const DefaultClusterToken = "galena"

// DefaultConfig returns defaults for everything but ID, Addr, DataDir and
// InitialCluster or Join: each part's own DefaultConfig.
func DefaultConfig() Config {
	return Config{
		ClusterToken:    DefaultClusterToken,
		ShutdownTimeout: 5 * time.Second,
		Group:           groupcomm.DefaultConfig(),
		Txn:             txn.DefaultConfig(),
		Storage:         storage.DefaultConfig(),
		Apply:           apply.DefaultConfig(),
	}
}

// WANConfig returns DefaultConfig with the group settings of members in
// different regions, whose round trips take 100-300 ms (see
// groupcomm.WANConfig).
func WANConfig() Config {
	c := DefaultConfig()
	c.Group = groupcomm.WANConfig()
	return c
}

// validateIdentity checks the member's id and address.
func (c Config) validateIdentity() error {
	switch {
	case c.ID == "":
		return errors.New("node: an id is required")
	case len(c.ID) > 64 || strings.ContainsAny(c.ID, "=, \t\n"):
		return fmt.Errorf("node: id %q must be at most 64 bytes, without '=', ',' or spaces", c.ID)
	case c.Addr == "" && c.Listener == nil:
		return errors.New("node: an address is required")
	}
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			return fmt.Errorf("node: address %q: %w", c.Addr, err)
		}
	}
	return nil
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if err := c.validateIdentity(); err != nil {
		return err
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	switch {
	case c.DataDir == "":
		return errors.New("node: a data directory is required")
	case len(c.InitialCluster) > 0 && c.Join != "":
		return errors.New("node: give either an initial cluster (to bootstrap a new cluster) or an address to join, not both")
	case c.QuotaBytes < 0:
		return fmt.Errorf("node: QuotaBytes %d is negative", c.QuotaBytes)
	}
	if len(c.InitialCluster) > 0 && !slices.ContainsFunc(c.InitialCluster, func(p Peer) bool { return p.ID == c.ID }) {
		return fmt.Errorf("node: the initial cluster does not list this member (id %s): list every member of the new cluster, this one included", c.ID)
	}
	if c.Join != "" {
		if _, _, err := net.SplitHostPort(c.Join); err != nil {
			return fmt.Errorf("node: join address %q: %w", c.Join, err)
		}
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("node: metrics address %q: %w", c.MetricsAddr, err)
		}
	}
	if err := c.validateOwned(); err != nil {
		return err
	}
	return c.validateParts()
}

// validateParts checks each part's configuration, as the member fills it
// in.
func (c Config) validateParts() error {
	for _, p := range []struct {
		name     string
		validate func() error
	}{
		{"Group", c.groupConfig().Validate},
		{"Txn", c.txnConfig().Validate},
		{"Storage", c.storageConfig().Validate},
		{"Apply", c.applyConfig().Validate},
	} {
		if err := p.validate(); err != nil {
			return fmt.Errorf("node: %s: %w", p.name, err)
		}
	}
	return nil
}

// validateOwned refuses a configuration that sets, in a part, what the
// member sets itself (from its own fields, where it has one): the setting
// would be silently replaced.
func (c Config) validateOwned() error {
	if c.Storage.InMemory {
		return errors.New("node: Storage.InMemory is not supported: a member keeps its data under DataDir")
	}
	g, t, s, a := c.Group, c.Txn, c.Storage, c.Apply
	for _, f := range []struct {
		field, from string
		set         bool
	}{
		{"Group.ID", "ID", g.ID != ""},
		{"Group.Addr", "Addr", g.Addr != ""},
		{"Group.Dir", "DataDir", g.Dir != ""},
		{"Group.Bootstrap", "InitialCluster", g.Bootstrap != nil},
		{"Group.Arbitrator", "Arbitrator", g.Arbitrator},
		{"Group.ClusterID", "", g.ClusterID != 0},
		{"Group.Join", "Join", g.Join != ""},
		{"Group.Peers", "", g.Peers != nil},
		{"Group.OnRemoved", "", g.OnRemoved != nil},
		{"Group.Dial", "PeerDial and PeerTLS", g.Dial != nil},
		{"Group.Authorize", "TLS", g.Authorize != nil},
		{"Group.Admit", "", g.Admit != nil},
		{"Group.Logger", "Logger", g.Logger != nil},
		{"Txn.Window", "Apply.Certification.Window", t.Window != 0},
		{"Txn.Logger", "Logger", t.Logger != nil},
		{"Storage.Dir", "DataDir", s.Dir != ""},
		{"Storage.Window", "Apply.Certification.Window", s.Window != 0},
		{"Storage.Logger", "Logger", s.Logger != nil},
		{"Apply.Member", "ID", a.Member != ""},
		{"Apply.Logger", "Logger", a.Logger != nil},
		{"Apply.OnOutcome", "", a.OnOutcome != nil},
		{"Apply.OnApplied", "", a.OnApplied != nil},
		{"Apply.OnRestored", "", a.OnRestored != nil},
		{"Apply.IsMember", "", a.IsMember != nil},
		{"Apply.OnCheckpoint", "", a.OnCheckpoint != nil},
		{"Apply.TimeCertify", "", a.TimeCertify != nil},
	} {
		switch {
		case f.set && f.from != "":
			return fmt.Errorf("node: %s is set by the member itself, from %s; leave it unset", f.field, f.from)
		case f.set:
			return fmt.Errorf("node: %s is set by the member itself; leave it unset", f.field)
		}
	}
	return nil
}

// advertise is the address peers and clients reach this member at.
func (c Config) advertise() string {
	if c.Addr == "" && c.Listener != nil {
		return c.Listener.Addr().String()
	}
	return c.Addr
}

// The parts' configurations with what the member sets from its own fields
// filled in; the running member adds its cluster id, loggers and callbacks.

func (c Config) groupConfig() groupcomm.Config {
	g := c.Group
	g.ID, g.Addr, g.Dir = c.ID, c.advertise(), filepath.Join(c.DataDir, "raft")
	g.Bootstrap, g.Arbitrator, g.Join, g.Dial = c.bootstrap(), c.Arbitrator, c.Join, c.peerDialer()
	if c.TLS != nil {
		g.Authorize = authorizeMember
	}
	return g
}

func (c Config) txnConfig() txn.Config {
	t := c.Txn
	t.Window = c.Apply.Certification.Window
	return t
}

func (c Config) storageConfig() storage.Config {
	s := c.Storage
	s.Dir = filepath.Join(c.DataDir, "data")
	s.Window = c.Apply.Certification.Window
	return s
}

func (c Config) applyConfig() apply.Config {
	a := c.Apply
	a.Member = c.ID
	return a
}

// bootstrap is InitialCluster as groupcomm's bootstrap configuration.
func (c Config) bootstrap() []groupcomm.Peer {
	if len(c.InitialCluster) == 0 {
		return nil
	}
	peers := make([]groupcomm.Peer, len(c.InitialCluster))
	for i, p := range c.InitialCluster {
		peers[i] = groupcomm.Peer(p)
	}
	return peers
}

// ParseInitialCluster parses "n1=host:port,n2=host:port,...".
func ParseInitialCluster(s string) ([]Peer, error) {
	var peers []Peer
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("node: initial cluster entry %q is not id=host:port", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("node: initial cluster entry %q: %w", part, err)
		}
		peers = append(peers, Peer{ID: id, Addr: addr})
	}
	if len(peers) == 0 {
		return nil, errors.New("node: initial cluster is empty")
	}
	return peers, nil
}
