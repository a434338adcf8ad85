package groupcomm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// Group is one member's handle on the totally ordered log. Broadcast, Status
// and WaitApplied are safe for concurrent use.
type Group struct {
	cfg    Config
	lg     *zap.Logger
	raft   *raft.Raft
	trans  *raft.NetworkTransport
	stream *streamLayer
	fsm    *fsm
	logs   closableLogStore
	cache  *logCache // logs, with recent entries in memory
	fwd    *forwarder
	app    *appender // group commit, used while leading
	fc     *flowControl
	peers  *pollers  // what the other members say of themselves, while leading
	notes  *notifier // commit notices for entries this member forwarded
	snaps  *donorStore
	live   atomic.Pointer[raft.Raft] // g.raft, for the apply loop's failure path

	// futures are those asked of Raft; see stopRaft.
	futures  *futures
	stopOnce sync.Once
	stopErr  error

	// originated counts the commands Broadcast ordered (PeerState).
	originated atomic.Uint64

	// leaderIndex is the leader's read index as a follower last learned it
	// (watchLeaderIndex): a follower's own commit index stops at the end of
	// its own log, so it cannot tell from it how far behind the cluster it
	// is.
	leaderIndex atomic.Uint64

	// leading is whether this member leads, and leftLead when it last
	// stopped (Unix ns), both kept by watchLeader's observer: a leader
	// hears from no leader, so Raft's last contact is stale from the
	// moment it steps down until Raft refreshes it a little later.
	leading  atomic.Bool
	leftLead atomic.Int64

	closing   chan struct{}
	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error
	mu        sync.Mutex // guards wg.Add against Close
	closed    bool
	wg        sync.WaitGroup
}

// New starts a member on ln (a listener that only receives connections Match
// accepts) and delivers committed entries to d. fatal, if non-nil, is called
// when the apply loop stops on an error; the member is useless afterwards.
// fatal runs on the apply loop, which Close waits for: it must not block,
// nor call Close.
// An arbitrator (cfg.Arbitrator) delivers nothing; its d must be nil.
func New(cfg Config, ln net.Listener, d Deliverer, fatal func(error)) (*Group, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Dial == nil {
		cfg.Dial = tcpDial
	}
	switch {
	case cfg.Arbitrator && d != nil:
		return nil, errors.New("groupcomm: an arbitrator takes no Deliverer")
	case cfg.Arbitrator:
		d = &arbitratorState{}
	case d == nil:
		return nil, errors.New("groupcomm: a Deliverer is required")
	case cfg.Join != "" && cfg.Peers == nil:
		return nil, errors.New("groupcomm: Join needs Peers to ask through")
	}
	g := &Group{cfg: cfg, lg: cfg.Logger, closing: make(chan struct{}), futures: newFutures()}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	if err := g.open(ln, d, fatal); err != nil {
		g.cancel()
		g.teardown()
		return nil, err
	}
	g.goTracked(func() { g.serve(ln) })
	g.goTracked(func() { <-g.closing; ln.Close() })
	g.goTracked(g.watchLeader)
	g.goTracked(g.watchLeaderIndex)
	g.goTracked(g.notes.relay)
	g.goTracked(g.notes.run)
	g.goTracked(g.app.run)
	if cfg.Arbitrator {
		g.goTracked(g.handOff)
	}
	if cfg.Peers != nil {
		g.goTracked(g.keepStanding)
	}
	if cfg.Peers != nil && cfg.Arbitrator {
		g.goTracked(g.retainForDataMembers)
	}
	if cfg.Peers != nil && (cfg.FlowControlLimit > 0 || len(cfg.LeaderPreference) > 0 || cfg.LeaderFollowsWrites) {
		g.goTracked(g.peers.run)
	}
	if cfg.Peers != nil && cfg.FlowControlLimit > 0 {
		g.goTracked(g.fc.run)
	}
	if cfg.Peers != nil && len(cfg.LeaderPreference) > 0 {
		g.goTracked(g.preferLeader)
	}
	if cfg.Peers != nil && cfg.LeaderFollowsWrites {
		g.goTracked(g.followWrites)
	}
	return g, nil
}

func (g *Group) open(ln net.Listener, d Deliverer, fatal func(error)) error {
	if err := os.MkdirAll(g.cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("groupcomm: %w", err)
	}
	hl := newRaftLogger(g.lg)
	logs, cache, err := openLogStore(filepath.Join(g.cfg.Dir, "wal"), hl.Named("wal"))
	if err != nil {
		return err
	}
	g.logs, g.cache = logs, cache
	cache.retaining = g.cfg.Arbitrator
	g.notes = newNotifier(g)
	cache.stored = g.notes.storedThrough
	files, err := raft.NewFileSnapshotStoreWithLogger(g.cfg.Dir, 2, hl.Named("snapshot"))
	if err != nil {
		return fmt.Errorf("groupcomm: snapshot store: %w", err)
	}
	snaps := &donorStore{SnapshotStore: files, lg: g.lg, dataMember: !g.cfg.Arbitrator}
	g.snaps = snaps
	g.stream = newStreamLayer(ln.Addr(), g.cfg.ClusterID, g.cfg.Dial)
	g.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: g.stream, MaxPool: 3, Timeout: 10 * time.Second, Logger: hl.Named("net"), MaxRPCsInFlight: g.cfg.MaxAppendsInFlight,
	})
	g.app = newAppender(g)
	g.fc = newFlowControl(g)
	g.peers = newPollers(g)
	g.fsm = newFSM(d, g.lg, func(err error) {
		// A member whose apply loop stopped must not vote, lead, snapshot or
		// serve snapshots: shut its raft down at once (not from the apply
		// goroutine, which Shutdown waits for).
		// Its Raft connections are closed too: peers would otherwise wait
		// out their I/O deadlines on a connection nothing serves.
		if g.live.Load() != nil {
			g.goTracked(func() { g.stopRaft(0, func() { g.stream.Close() }) })
		}
		if fatal != nil {
			fatal(err)
		}
	})
	g.fsm.committed = g.app.committedEntry
	rc := g.raftConfig()
	if err := g.bootstrap(rc, logs, snaps); err != nil {
		return err
	}
	if g.raft, err = raft.NewRaft(rc, g.fsm, cache, logs, snaps, g.transport()); err != nil {
		return fmt.Errorf("groupcomm: start raft: %w", err)
	}
	g.live.Store(g.raft)
	g.fwd = newForwarder(g)
	return nil
}

// transport is what Raft sends and receives through: the network
// transport, sending AppendEntries in parts of at most MaxAppendBytes,
// logging the snapshots it sends, and handing Raft this member's commit
// notices with the network's requests.
func (g *Group) transport() raft.Transport {
	return noticeTransport{boundedTransport{donorTransport{g.trans, g.lg}, g.cfg.MaxAppendBytes}, g.notes.rpcs}
}

func (g *Group) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(g.cfg.ID)
	rc.HeartbeatTimeout = g.cfg.HeartbeatTimeout
	rc.ElectionTimeout = g.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = g.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = g.cfg.CommitTimeout
	rc.MaxAppendEntries = g.cfg.MaxAppendEntries
	rc.BatchApplyCh = false     // the appender batches; see batch.go
	rc.NoLegacyTelemetry = true // the per-peer copies of labelled series
	// A leader that removes itself steps down rather than shutting Raft
	// down under the futures it still owes (see futures); the membership
	// policy then finds it removed.
	rc.ShutdownOnRemove = false
	if g.cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = g.cfg.SnapshotThreshold
	}
	if g.cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = g.cfg.SnapshotInterval
	}
	if g.cfg.TrailingLogs > 0 {
		rc.TrailingLogs = g.cfg.TrailingLogs
	}
	rc.Logger = newRaftLogger(g.lg)
	return rc
}

// bootstrap writes the initial configuration when this member has no state.
func (g *Group) bootstrap(rc *raft.Config, logs closableLogStore, snaps raft.SnapshotStore) error {
	if len(g.cfg.Bootstrap) == 0 {
		return nil
	}
	has, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil || has {
		return err
	}
	var conf raft.Configuration
	for _, p := range g.cfg.Bootstrap {
		conf.Servers = append(conf.Servers, raft.Server{
			Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr),
		})
	}
	if err := raft.BootstrapCluster(rc, logs, logs, snaps, g.trans, conf); err != nil {
		return fmt.Errorf("groupcomm: bootstrap: %w", err)
	}
	g.lg.Info("bootstrapped cluster configuration", zap.Int("voters", len(conf.Servers)))
	return nil
}

// goTracked runs fn on a goroutine the Group waits for in Close. It reports
// false, without running fn, once the Group is closing.
func (g *Group) goTracked(fn func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		fn()
	}()
	return true
}

// Broadcast orders data in the log and returns the log index of the entry
// that carries it once that entry has been delivered on this member. A
// follower forwards data to the leader. On error the entry was not ordered,
// unless the error is ErrIndeterminate.
//
// Without a leader to reach, it waits for one, and refuses with
// ErrNotPrimary once NotPrimaryTimeout has passed since this member last
// heard from a leader, or since the call, whichever comes first: a member cut
// off for longer refuses at once, and does not forward to a leader it has
// not heard from for a HeartbeatTimeout (Raft's own suspicion), so that
// what it refuses was never sent.
func (g *Group) Broadcast(ctx context.Context, data []byte) (uint64, error) {
	if len(data) == 0 {
		return 0, errors.New("groupcomm: empty entry")
	}
	start := time.Now()
	for {
		idx, err := g.order(ctx, data)
		if errors.Is(err, ErrNotLeader) {
			if err := g.awaitLeader(ctx, start); err != nil {
				return 0, err
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		g.originated.Add(1)
		if _, err := g.fsm.waitIndex(ctx, idx, g.closing); err != nil {
			return idx, fmt.Errorf("%w: ordered at index %d but not yet applied here: %v", ErrIndeterminate, idx, err)
		}
		return idx, nil
	}
}

// order appends data through the leader and returns its index once committed.
func (g *Group) order(ctx context.Context, data []byte) (uint64, error) {
	select {
	case <-g.closing:
		return 0, ErrClosed
	default:
	}
	if g.raft.State() == raft.Leader {
		return g.applyLocal(ctx, data)
	}
	addr := g.reachableLeader()
	if addr == "" {
		return 0, ErrNotLeader
	}
	return g.fwd.forward(ctx, addr, data)
}

// applyLocal appends data as the leader, in the next entry the appender
// hands to Raft.
func (g *Group) applyLocal(ctx context.Context, data []byte) (uint64, error) {
	c, err := g.app.submit(ctx, data, false, false)
	if err != nil {
		return 0, err
	}
	e, err := c.wait(ctx, g.closing)
	if err != nil && g.app.withdraw(c) {
		switch {
		case ctx.Err() == nil:
			return 0, ErrClosed
		case g.fc.paused():
			return 0, fmt.Errorf("%w until %v: %s", ErrHeldBack, ctx.Err(), g.fc.reason())
		}
		return 0, fmt.Errorf("groupcomm: not sent: %w", ctx.Err())
	}
	if err != nil {
		return 0, err
	}
	if e.answer(); e.err != nil {
		return 0, translateApplyErr(e.err)
	}
	return e.index, nil
}

// translateApplyErr tells raft's "never appended" errors from the ones that
// leave the entry's fate open.
func translateApplyErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return ErrNotLeader
	case errors.Is(err, errNotAsked):
		return ErrClosed // never handed to Raft
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %v", ErrIndeterminate, ErrClosed)
	default:
		return fmt.Errorf("%w: %v", ErrIndeterminate, err)
	}
}

// reachableLeader returns the address of the leader a follower forwards
// to: "" when it knows none, or has not heard from it for a
// HeartbeatTimeout, after which Raft itself starts an election.
func (g *Group) reachableLeader() string {
	addr, _ := g.raft.LeaderWithID()
	if lc := g.lastContact(); lc > g.cfg.HeartbeatTimeout {
		return ""
	}
	return string(addr)
}

// awaitLeader pauses before the next attempt, of a call made at start, to
// reach a leader. It gives up with ErrNotPrimary once NotPrimaryTimeout has
// passed since start, or, on a member that does not lead, since it last
// heard from a leader: asked at each attempt, so that a leader heard from
// while the call waits (an append still in flight when the leader fell
// silent) moves the refusal on.
func (g *Group) awaitLeader(ctx context.Context, start time.Time) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		silent := g.raft.State() != raft.Leader && g.lastContact() > g.cfg.NotPrimaryTimeout
		if silent || time.Since(start) > g.cfg.NotPrimaryTimeout {
			return ErrNotPrimary
		}
		select {
		case <-t.C:
			if g.raft.State() == raft.Leader || g.reachableLeader() != "" {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ErrNotPrimary, ctx.Err())
		case <-g.closing:
			return ErrClosed
		}
	}
}

// ReadIndex returns a seqno that covers every entry committed before the call:
// the leader's last log index, taken before it confirms with a majority that
// it still leads (Raft's read index; the last index rather than the commit
// index, so a new leader need not first commit an entry of its term). A read
// served after WaitIndex(ReadIndex()) is linearizable. Errors are as for
// Broadcast; nothing is ever written.
func (g *Group) ReadIndex(ctx context.Context) (uint64, error) {
	start := time.Now()
	for {
		idx, err := g.readIndexOnce(ctx)
		if errors.Is(err, ErrNotLeader) {
			if err := g.awaitLeader(ctx, start); err != nil {
				return 0, err
			}
			continue
		}
		return idx, err
	}
}

func (g *Group) readIndexOnce(ctx context.Context) (uint64, error) {
	select {
	case <-g.closing:
		return 0, ErrClosed
	default:
	}
	if g.raft.State() == raft.Leader {
		f := g.readIndexFuture()
		switch err := f.Error(); {
		case errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, errNotAsked):
			return 0, ErrClosed
		case err != nil:
			return 0, ErrNotLeader // lost leadership: ask the next leader
		}
		return f.Index(), nil
	}
	addr := g.reachableLeader()
	if addr == "" {
		return 0, ErrNotLeader
	}
	idx, err := g.fwd.forward(ctx, addr, nil)
	if errors.Is(err, ErrIndeterminate) {
		return 0, ErrNotLeader // a read index has no side effect: ask again
	}
	return idx, err
}

// readIndexFuture takes the leader's last index, then verifies leadership.
func (g *Group) readIndexFuture() *readIndex {
	return &readIndex{idx: g.delivered(g.raft.LastIndex()), f: g.futures.ask(g.raft.VerifyLeader)}
}

// delivered maps a log index to the highest index at or below it that the
// Deliverer will see: raft never delivers its no-op and barrier entries, so
// waiting for one of those to be applied would never end.
func (g *Group) delivered(idx uint64) uint64 {
	var l raft.Log
	for ; idx > 0; idx-- {
		if err := g.cache.GetLog(idx, &l); err != nil {
			// Compacted into a snapshot, so applied here (we lead): every
			// delivered entry at or below it is at or below our applied index.
			return min(idx, g.fsm.position().Index)
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return idx
		}
	}
	return 0
}

type readIndex struct {
	idx uint64
	f   *future
}

func (r *readIndex) Index() uint64 { return r.idx }

func (r *readIndex) Error() error { return r.f.Error() }

func (r *readIndex) wait(idle func()) (uint64, uint64, error) {
	idle() // the leader's majority check takes a round trip
	return r.idx, 0, r.f.Error()
}

// WaitApplied blocks until this member has delivered seqno.
func (g *Group) WaitApplied(ctx context.Context, seqno uint64) error {
	return g.fsm.waitSeqno(ctx, seqno, g.closing)
}

// WaitIndex blocks until this member has delivered every entry through
// log index idx (a ReadIndex), and returns the seqno it has delivered then.
func (g *Group) WaitIndex(ctx context.Context, idx uint64) (uint64, error) {
	return g.fsm.waitIndex(ctx, idx, g.closing)
}

// Applied is the highest seqno delivered on this member.
func (g *Group) Applied() uint64 { return g.fsm.position().Seqno }

// Originated returns how many commands this member has ordered through
// Broadcast since it started.
func (g *Group) Originated() uint64 { return g.originated.Load() }

// AppliedIndex is the highest log index delivered on this member.
func (g *Group) AppliedIndex() uint64 { return g.fsm.position().Index }

// selfState is what this member says of itself (Peers.Applied).
func (g *Group) selfState() PeerState {
	return PeerState{Applied: g.AppliedIndex(), Arbitrator: g.cfg.Arbitrator, Originated: g.Originated()}
}

// Close stops the member: forwarding, Raft, the transport and the log store,
// in that order. It is idempotent and returns after every goroutine exited.
func (g *Group) Close() error {
	g.closeOnce.Do(func() {
		g.mu.Lock()
		g.closed = true
		g.mu.Unlock()
		close(g.closing)
		g.cancel()
		g.closeErr = g.teardown()
		g.wg.Wait()
	})
	return g.closeErr
}

// stopRaft shuts Raft down once it has answered the futures asked of it,
// or wait has passed, and then tells the callers of those left unanswered
// (see futures). begun, if set, runs once the shutdown has begun. Close
// and the apply loop's failure path call it; the later waits for the
// earlier.
func (g *Group) stopRaft(wait time.Duration, begun func()) error {
	g.stopOnce.Do(func() {
		if n := g.futures.stop(wait); n > 0 {
			g.lg.Warn("shutting Raft down with requests it has not answered; their callers are told it shut down",
				zap.Int("unanswered", n))
		}
		f := g.raft.Shutdown()
		if begun != nil {
			begun()
		}
		g.stopErr = f.Error()
		g.futures.shutDown()
	})
	return g.stopErr
}

func (g *Group) teardown() error {
	var errs []error
	if g.fwd != nil {
		g.fwd.close()
	}
	if g.raft != nil {
		// Two election timeouts: time for a leader without a majority to
		// lose its lease, or a leadership transfer to end.
		if err := g.stopRaft(2*g.cfg.ElectionTimeout, nil); err != nil {
			errs = append(errs, err)
		}
	}
	if g.trans != nil {
		g.trans.CloseStreams() // outgoing pooled connections
		errs = append(errs, g.trans.Close())
	}
	if g.stream != nil {
		g.stream.Close() // incoming connections
	}
	if g.logs != nil {
		errs = append(errs, g.logs.Close())
	}
	return errors.Join(errs...)
}
