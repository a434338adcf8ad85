package node

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

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
	InitialCluster []groupcomm.Peer

	// Listener, if set, is used instead of listening on Addr (tests and the
	// demo pre-open ports). The node closes it.
	Listener net.Listener

	// PeerDial, if set, opens connections to other members (fault tests
	// route them through proxies); nil dials TCP.
	PeerDial func(addr string, timeout time.Duration) (net.Conn, error)

	Logger     *zap.Logger           // nil → zap.NewNop()
	Registerer prometheus.Registerer // nil → a private registry

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	NotPrimaryTimeout  time.Duration
	SnapshotThreshold  uint64
	TrailingLogs       uint64

	Limits        txn.Limits
	CausalWait    time.Duration
	CommitTimeout time.Duration
	// ShutdownTimeout bounds how long Close lets in-flight requests finish.
	ShutdownTimeout time.Duration
}

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
		TrailingLogs:       g.TrailingLogs,
		Limits:             t.Limits,
		CausalWait:         t.CausalWait,
		CommitTimeout:      t.CommitTimeout,
		ShutdownTimeout:    5 * time.Second,
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.ID == "":
		return errors.New("node: an id is required")
	case strings.ContainsAny(c.ID, "=, \t\n"):
		return fmt.Errorf("node: id %q must not contain '=', ',' or spaces", c.ID)
	case c.Addr == "" && c.Listener == nil:
		return errors.New("node: an address is required")
	case c.DataDir == "":
		return errors.New("node: a data directory is required")
	}
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			return fmt.Errorf("node: address %q: %w", c.Addr, err)
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
	g.ID, g.Addr, g.Bootstrap, g.Logger, g.Dial = c.ID, c.advertise(), c.InitialCluster, c.Logger, c.PeerDial
	g.Dir = c.DataDir + "/raft"
	g.HeartbeatTimeout, g.ElectionTimeout = c.HeartbeatTimeout, c.ElectionTimeout
	g.LeaderLeaseTimeout, g.NotPrimaryTimeout = c.LeaderLeaseTimeout, c.NotPrimaryTimeout
	g.SnapshotThreshold, g.TrailingLogs = c.SnapshotThreshold, c.TrailingLogs
	return g
}

func (c Config) txnConfig() txn.Config {
	t := txn.DefaultConfig()
	t.Limits, t.CausalWait, t.CommitTimeout, t.Logger = c.Limits, c.CausalWait, c.CommitTimeout, c.Logger
	return t
}

// ParseInitialCluster parses "n1=host:port,n2=host:port,...".
func ParseInitialCluster(s string) ([]groupcomm.Peer, error) {
	var peers []groupcomm.Peer
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
		peers = append(peers, groupcomm.Peer{ID: id, Addr: addr})
	}
	if len(peers) == 0 {
		return nil, errors.New("node: initial cluster is empty")
	}
	return peers, nil
}
