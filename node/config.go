package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/galenadb/galena/certification/apply"
	"github.com/galenadb/galena/groupcomm"
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

	// CheckpointInterval is how often, in seqnos, members record their running
	// digest and announce it through the log; a member that finds a majority
	// of the others disagreeing with it stops. Zero records none (see
	// apply.Config).
	CheckpointInterval uint64

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
	// on a non-loopback address logs a warning.
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

	Logger     *zap.Logger           // nil → zap.NewNop()
	Registerer prometheus.Registerer // nil → a private registry; /metrics serves it if it is also a Gatherer

	// RaftMetrics exports hashicorp/raft's own metrics (galena_raft_*) on
	// Registerer. Raft reports them to the go-metrics library's one
	// process-wide sink, which this member installs and removes on Close:
	// at most one member per process may set it (galena start does;
	// in-process test clusters and the demo leave it off, since raft's
	// metrics carry no member label).
	RaftMetrics bool

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	NotPrimaryTimeout  time.Duration
	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration // how often Raft checks SnapshotThreshold
	TrailingLogs       uint64

	// Faults make the member misbehave on purpose, for fault tests (see
	// apply.Faults). Only fault builds (-tags faults) have any; in a release
	// build the type is empty.
	Faults apply.Faults

	Limits        txn.Limits
	CausalWait    time.Duration
	CommitTimeout time.Duration
	// ShutdownTimeout bounds how long Close lets in-flight commits, then
	// other in-flight requests, finish.
	ShutdownTimeout time.Duration
	// MaxInflightCommits bounds the commits the member serves at once;
	// beyond it a commit is refused at once with ErrOverloaded (gRPC
	// ResourceExhausted). See txn.Config.
	MaxInflightCommits int
	// MaxInflightBytes bounds the bytes of the write-sets of the commits the
	// member serves at once, likewise; at least Limits.MaxWriteSetSize.
	MaxInflightBytes int
}

// Peer is one voting member of a new cluster's initial configuration.
type Peer struct {
	ID   string
	Addr string // host:port the other members reach it at
}

// DefaultClusterToken is the cluster token when none is given.
const DefaultClusterToken = "galena"

// DefaultConfig returns defaults for everything but ID, Addr, DataDir and
// InitialCluster.
func DefaultConfig() Config {
	g, t := groupcomm.DefaultConfig(), txn.DefaultConfig()
	return Config{
		HeartbeatTimeout:   g.HeartbeatTimeout,
		ElectionTimeout:    g.ElectionTimeout,
		LeaderLeaseTimeout: g.LeaderLeaseTimeout,
		NotPrimaryTimeout:  g.NotPrimaryTimeout,
		SnapshotThreshold:  g.SnapshotThreshold,
		SnapshotInterval:   g.SnapshotInterval,
		TrailingLogs:       g.TrailingLogs,
		Limits:             t.Limits,
		CausalWait:         t.CausalWait,
		CommitTimeout:      t.CommitTimeout,
		MaxInflightCommits: t.MaxInflightCommits,
		MaxInflightBytes:   t.MaxInflightBytes,
		ShutdownTimeout:    5 * time.Second,
		ClusterToken:       DefaultClusterToken,
		CheckpointInterval: apply.DefaultCheckpointInterval,
	}
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
	}
	if len(c.InitialCluster) > 0 && !slices.ContainsFunc(c.InitialCluster, func(p Peer) bool { return p.ID == c.ID }) {
		return fmt.Errorf("node: the initial cluster does not list this member (id %s): list every member of the new cluster, this one included", c.ID)
	}
	if c.Join != "" {
		if _, _, err := net.SplitHostPort(c.Join); err != nil {
			return fmt.Errorf("node: join address %q: %w", c.Join, err)
		}
	}
	if err := c.groupConfig().Validate(); err != nil {
		return err
	}
	return c.txnConfig().Validate()
}

// advertise is the address peers and clients reach this member at.
func (c Config) advertise() string {
	if c.Addr == "" && c.Listener != nil {
		return c.Listener.Addr().String()
	}
	return c.Addr
}

func (c Config) groupConfig() groupcomm.Config {
	g := groupcomm.DefaultConfig()
	g.ID, g.Addr, g.Bootstrap, g.Logger, g.Dial = c.ID, c.advertise(), c.bootstrap(), c.Logger, c.peerDialer()
	if c.TLS != nil {
		g.Authorize = authorizeMember
	}
	g.Dir = c.DataDir + "/raft"
	g.HeartbeatTimeout, g.ElectionTimeout = c.HeartbeatTimeout, c.ElectionTimeout
	g.LeaderLeaseTimeout, g.NotPrimaryTimeout = c.LeaderLeaseTimeout, c.NotPrimaryTimeout
	g.SnapshotThreshold, g.SnapshotInterval, g.TrailingLogs = c.SnapshotThreshold, c.SnapshotInterval, c.TrailingLogs
	g.Arbitrator = c.Arbitrator
	return g
}

func (c Config) txnConfig() txn.Config {
	t := txn.DefaultConfig()
	t.Limits, t.CausalWait, t.CommitTimeout, t.Logger = c.Limits, c.CausalWait, c.CommitTimeout, c.Logger
	t.MaxInflightCommits, t.MaxInflightBytes = c.MaxInflightCommits, c.MaxInflightBytes
	return t
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
