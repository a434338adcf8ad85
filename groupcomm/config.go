package groupcomm

import (
	"errors"
	"fmt"
	"net"
	"slices"
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

	// FlowControlLimit is the backlog, in log entries not yet applied, at
	// which a voter that keeps data makes the leader hold new commits back
	// until it is down to half (see flowcontrol.go); 0 turns flow control
	// off. It needs Peers. FlowControlMaxPause is how long one member may
	// hold commits back before it is reported as lagging and commits stop
	// waiting for it.
	FlowControlLimit    uint64
	FlowControlMaxPause time.Duration

	// LeaderPreference lists member ids in the order they should lead: a
	// leader hands leadership over to the first listed voter that ranks
	// above it (unlisted members rank below every listed one), answers and
	// has caught up. Give every member the same list; it needs Peers.
	// Empty: leadership stays where elections put it.
	LeaderPreference []string
	// LeaderFollowsWrites makes leadership follow the commits: a leader
	// hands it over to the data voter that originated at least two thirds
	// of the commits of the last LeaderFollowWindow (and at least
	// followMin of them), once that voter has caught up. It needs Peers,
	// and excludes LeaderPreference.
	LeaderFollowsWrites bool
	LeaderFollowWindow  time.Duration

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
	// MaxAppendsInFlight is how many AppendEntries requests the leader may
	// have sent a follower and not yet heard answered. At 2 (raft's
	// default) the leader sends the next while it waits for the previous
	// one, which suits a LAN, where a round trip is short and a deeper
	// pipeline only cuts the batches smaller. Across a long link a commit
	// would wait for a slot, up to a round trip, before it is even sent:
	// WANConfig allows more.
	MaxAppendsInFlight int
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
		HeartbeatTimeout:    1000 * time.Millisecond,
		ElectionTimeout:     1000 * time.Millisecond,
		LeaderLeaseTimeout:  500 * time.Millisecond,
		CommitTimeout:       5 * time.Millisecond,
		NotPrimaryTimeout:   2 * time.Second,
		DialTimeout:         2 * time.Second,
		MaxAppendEntries:    256,
		MaxAppendsInFlight:  2,
		FlowControlLimit:    256,
		FlowControlMaxPause: 30 * time.Second,
		LeaderFollowWindow:  30 * time.Second,
		MaxAppendBytes:      DefaultMaxAppendBytes,
		MaxBatch:            256,
		MaxBatchBytes:       1 << 20,
		SnapshotThreshold:   16384,
		SnapshotInterval:    5 * time.Second, // how often raft checks SnapshotThreshold
		TrailingLogs:        10240,
	}
}

// WANConfig returns DefaultConfig with settings for members whose round
// trips take 100-300 ms (members in different regions). Elections wait
// longer, so that a round trip or two of jitter does not look like a dead
// leader: a follower starts one after 2-4 s without hearing from the
// leader (heartbeats go every 200 ms), a leader steps down when a majority
// has not answered for 1 s, and a member counts itself cut off after 4 s.
// The leader keeps up to 64 appends in flight to each follower, so a
// commit leaves at once instead of waiting for the previous round trip.
func WANConfig() Config {
	c := DefaultConfig()
	c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 2*time.Second, 2*time.Second, time.Second
	c.NotPrimaryTimeout = 4 * time.Second
	c.DialTimeout = 5 * time.Second
	c.MaxAppendsInFlight = 64
	return c
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
	case c.MaxAppendsInFlight < 1 || c.MaxAppendsInFlight > 1024:
		return fmt.Errorf("groupcomm: MaxAppendsInFlight must be in 1..1024, got %d", c.MaxAppendsInFlight)
	case c.MaxAppendBytes <= 0:
		return fmt.Errorf("groupcomm: MaxAppendBytes must be positive, got %d", c.MaxAppendBytes)
	case c.MaxBatch <= 0 || c.MaxBatchBytes <= 0:
		return fmt.Errorf("groupcomm: MaxBatch and MaxBatchBytes must be positive, got %d and %d", c.MaxBatch, c.MaxBatchBytes)
	}
	if c.FlowControlLimit > 0 && c.FlowControlMaxPause <= 0 {
		return fmt.Errorf("groupcomm: FlowControlMaxPause must be positive with flow control on, got %v", c.FlowControlMaxPause)
	}
	if c.LeaderFollowsWrites && (len(c.LeaderPreference) > 0 || c.LeaderFollowWindow <= 0) {
		return errors.New("groupcomm: LeaderFollowsWrites needs a positive LeaderFollowWindow and no LeaderPreference")
	}
	for i, id := range c.LeaderPreference {
		if id == "" || slices.Contains(c.LeaderPreference[:i], id) {
			return fmt.Errorf("groupcomm: LeaderPreference %q: ids must be non-empty and listed once", c.LeaderPreference)
		}
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
