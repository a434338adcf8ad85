package groupcomm

import (
	"errors"
	"fmt"
	"net"
	"time"

	"go.uber.org/zap"
)

// Peer is one voting member of the initial configuration.
type Peer struct {
	ID   string
	Addr string // host:port other members reach it at
}

// Config configures a Group.
type Config struct {
	ID   string // this member's id; unique in the cluster
	Addr string // address peers reach this member at (the node's one port)
	Dir  string // directory for the Raft log and snapshots

	// ClusterID is sent on every connection this member opens to a peer, and
	// a connection that brings another cluster's id is refused: a member
	// started on another cluster's data directory must not take part.
	ClusterID uint64

	// Arbitrator makes this member vote without a Deliverer: it keeps the log
	// and takes header-only snapshots. It hands leadership to another member
	// whenever it gets it, since it could not be the source of a state
	// transfer; data members refuse its snapshots.
	Arbitrator bool

	// Bootstrap is the initial configuration. Every member listed bootstraps
	// the same one the first time it starts; it is ignored when Dir already
	// holds Raft state.
	Bootstrap []Peer

	Logger *zap.Logger // nil → zap.NewNop()

	// Peers, if set, runs the membership policy (see Peers): through it this
	// member asks to be added (with Join) and then promoted, asks the leader
	// whether it was removed, and, on an arbitrator, learns which log the
	// data members still need. Without it, the member does none of that
	// itself.
	Peers Peers
	// Join is the address of a member of the running cluster through which
	// a member that finds itself in no configuration asks to be added. It
	// needs Peers.
	Join string
	// OnRemoved, if set, is called once, on the policy's goroutine, when the
	// leader's configuration no longer lists this member; the policy then
	// stops. The Group itself runs on: what a removed member does is its
	// owner's business.
	OnRemoved func()

	// Admit, if set, is the leader's check of an entry forwarded by another
	// member (anyone who can reach the port can send one) before it is
	// appended; a refused entry is never ordered. Broadcast's own callers are
	// trusted to have checked theirs, so a member's commits are decoded once
	// less on the way in.
	Admit func(data []byte) error

	// Dial opens connections to peers (Raft and forwarding); nil dials TCP.
	// Fault tests route members through proxies with it; a TLS member
	// returns connections on which it has made the handshake.
	Dial func(addr string, timeout time.Duration) (net.Conn, error)

	// Authorize, if set, vets every accepted connection before its
	// handshake is read (a TLS member checks that the peer presented a
	// member's certificate); a connection it refuses is closed, with a
	// warning.
	Authorize func(net.Conn) error

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// NotPrimaryTimeout bounds how long Broadcast waits for a reachable leader
	// before it answers ErrNotPrimary, and how long a follower may go without
	// hearing from its leader and still count itself primary.
	NotPrimaryTimeout time.Duration
	DialTimeout       time.Duration

	MaxAppendEntries int
	// MaxAppendBytes bounds what one Raft AppendEntries carries: a larger
	// one is sent as several, each of at most MaxAppendBytes or one entry.
	// A follower catching up decodes at most max(MaxAppendBytes, one entry)
	// at a time, where MaxAppendEntries alone would let the leader send it
	// MaxAppendEntries of the largest entries at once.
	MaxAppendBytes int

	// MaxBatch and MaxBatchBytes bound one Raft entry of the leader's group
	// commit: at most MaxBatch commands and, unless one command is larger,
	// MaxBatchBytes of them. MaxBatch 1 puts every command in an entry of
	// its own.
	MaxBatch      int
	MaxBatchBytes int

	SnapshotThreshold uint64 // entries between snapshots
	SnapshotInterval  time.Duration
	TrailingLogs      uint64 // entries kept after a snapshot for followers to catch up from
}

// DefaultMaxAppendBytes is the default Config.MaxAppendBytes.
const DefaultMaxAppendBytes = 8 << 20

// DefaultConfig returns settings fit for a LAN.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   1000 * time.Millisecond,
		ElectionTimeout:    1000 * time.Millisecond,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		NotPrimaryTimeout:  2 * time.Second,
		DialTimeout:        2 * time.Second,
		MaxAppendEntries:   256,
		MaxAppendBytes:     DefaultMaxAppendBytes,
		MaxBatch:           256,
		MaxBatchBytes:      1 << 20,
		SnapshotThreshold:  16384,
		SnapshotInterval:   5 * time.Second, // how often raft checks SnapshotThreshold
		TrailingLogs:       10240,
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.ID == "":
		return errors.New("groupcomm: ID is required")
	case c.Addr == "":
		return errors.New("groupcomm: Addr is required")
	case c.Dir == "":
		return errors.New("groupcomm: Dir is required")
	case c.HeartbeatTimeout <= 0 || c.ElectionTimeout <= 0 || c.LeaderLeaseTimeout <= 0:
		return errors.New("groupcomm: timeouts must be positive")
	case c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return errors.New("groupcomm: LeaderLeaseTimeout must not exceed HeartbeatTimeout")
	case c.NotPrimaryTimeout <= 0 || c.DialTimeout <= 0:
		return errors.New("groupcomm: NotPrimaryTimeout and DialTimeout must be positive")
	case c.MaxAppendEntries <= 0 || c.MaxAppendEntries > 1024:
		return errors.New("groupcomm: MaxAppendEntries must be in 1..1024")
	case c.MaxAppendBytes <= 0:
		return fmt.Errorf("groupcomm: MaxAppendBytes must be positive, got %d", c.MaxAppendBytes)
	case c.MaxBatch <= 0 || c.MaxBatchBytes <= 0:
		return fmt.Errorf("groupcomm: MaxBatch and MaxBatchBytes must be positive, got %d and %d", c.MaxBatch, c.MaxBatchBytes)
	}
	return validatePeers(c.ID, c.Addr, c.Bootstrap)
}

func validatePeers(self, addr string, peers []Peer) error {
	if len(peers) == 0 {
		return nil
	}
	ids, addrs := map[string]bool{}, map[string]bool{}
	found := false
	for _, p := range peers {
		if p.ID == "" || p.Addr == "" {
			return fmt.Errorf("groupcomm: bootstrap peer %q=%q: id and address are required", p.ID, p.Addr)
		}
		if ids[p.ID] || addrs[p.Addr] {
			return fmt.Errorf("groupcomm: bootstrap peer %s=%s is listed twice", p.ID, p.Addr)
		}
		ids[p.ID], addrs[p.Addr] = true, true
		if p.ID == self {
			if p.Addr != addr {
				return fmt.Errorf("groupcomm: bootstrap lists %s at %s but this member's address is %s", self, p.Addr, addr)
			}
			found = true
		}
	}
	if !found {
		return fmt.Errorf("groupcomm: bootstrap configuration does not list this member (%s)", self)
	}
	return nil
}
