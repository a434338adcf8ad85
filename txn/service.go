package txn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/galenadb/galena/api/writesetpb"
	"github.com/galenadb/galena/certification"
	"github.com/galenadb/galena/groupcomm"
	"github.com/galenadb/galena/storage"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// Store is the local state reads are served from, and the outcomes the
// apply loop recorded there.
type Store interface {
	Get(key []byte, snapshot uint64) ([]byte, error)
	Scan(start, end []byte, limit int, snapshot uint64) ([]storage.KV, error)
	// Changes, HistoryHeld and Applied are storage.Store's: the history
	// watches read.
	Changes(start, end []byte, after, upTo uint64, maxBytes int) ([]storage.Change, uint64, error)
	HistoryHeld(after uint64) error
	Applied() storage.AppliedState
	// Outcome returns the outcome stored for write-set id, if any.
	Outcome(id []byte) (certification.Outcome, bool, error)
}

// Orderer puts write-sets in the cluster-wide order.
type Orderer interface {
	// Broadcast returns once the entry is delivered on this member.
	Broadcast(ctx context.Context, data []byte) (uint64, error)
	// WaitApplied returns once this member has applied seqno.
	WaitApplied(ctx context.Context, seqno uint64) error
	// Applied is the highest seqno this member has applied.
	Applied() uint64
	// ReadIndex returns a log index covering every entry committed before
	// the call.
	ReadIndex(ctx context.Context) (uint64, error)
	// WaitIndex returns, once this member has applied every entry through
	// log index idx, the seqno it has applied.
	WaitIndex(ctx context.Context, idx uint64) (uint64, error)
	// Serving says whether this member may serve reads now: nil, or why not
	// (wrapping ErrNotPrimary or ErrShuttingDown). With stale set, a member
	// cut off from the majority may still serve from its local state.
	Serving(stale bool) error
}

// ReadAt says which snapshot a read uses.
type ReadAt struct {
	Snapshot uint64 // 0: start a transaction at this member's applied seqno
	MinSeqno uint64 // the session's highest seen seqno
	// Linearizable, when Snapshot is 0: first wait until this member has
	// applied the leader's commit point (Galera's wsrep_sync_wait).
	Linearizable bool
	// AllowStale lets a member cut off from the majority serve the read from
	// its local state (Galera's wsrep_dirty_reads); it is refused otherwise.
	AllowStale bool
}

// Service serves reads and commits on one member. It is safe for concurrent
// use and owns no goroutines. It is a prometheus.Collector of its commit
// metrics: register it on the member's registry.
type Service struct {
	cfg   Config
	lg    *zap.Logger
	store Store
	ord   Orderer
	gate  *gate
	m     *metrics
	feed  *feed

	watches atomic.Int64 // open, for MaxWatches

	noSpace atomic.Pointer[error] // why commits that put are refused; nil: they are not

	mu      sync.Mutex
	waiters map[string][]chan certification.Outcome
}

// SetNoSpace makes Commit refuse every write-set that puts a value with
// err, which should wrap ErrNoSpace and say what to do, until it is called
// with nil. Write-sets that only delete, and reads, are served as before.
func (s *Service) SetNoSpace(err error) {
	if err == nil {
		s.noSpace.Store(nil)
		return
	}
	s.noSpace.Store(&err)
}

// checkSpace refuses ws if it puts a value while the node is out of space.
func (s *Service) checkSpace(ws *writesetpb.WriteSet) error {
	err := s.noSpace.Load()
	if err == nil {
		return nil
	}
	for _, w := range ws.GetWrites() {
		if !w.GetDelete() {
			s.m.noSpace.Inc()
			return *err
		}
	}
	return nil
}

// New returns a Service reading from store and ordering through ord. Its
// OnOutcome method must be wired to the Applier (certification/apply).
func New(cfg Config, store Store, ord Orderer) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	s := &Service{cfg: cfg, lg: cfg.Logger, store: store, ord: ord, gate: newGate(cfg.MaxInflightCommits, cfg.MaxInflightBytes), feed: newFeed(),
		waiters: map[string][]chan certification.Outcome{}}
	s.m = newMetrics(s.gate.inflight, s.gate.inflightBytes, func() int { return int(s.watches.Load()) })
	return s, nil
}

// OnOutcome wakes the commits waiting for id. It does not block; it is called
// on the apply goroutine.
func (s *Service) OnOutcome(id []byte, o certification.Outcome) {
	s.mu.Lock()
	ws := s.waiters[string(id)]
	delete(s.waiters, string(id))
	s.mu.Unlock()
	for _, ch := range ws {
		ch <- o // buffered, one send per waiter
	}
}

func (s *Service) register(id []byte) chan certification.Outcome {
	ch := make(chan certification.Outcome, 1)
	s.mu.Lock()
	s.waiters[string(id)] = append(s.waiters[string(id)], ch)
	s.mu.Unlock()
	return ch
}

func (s *Service) unregister(id []byte, ch chan certification.Outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := s.waiters[string(id)]
	for i, c := range ws {
		if c == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(s.waiters, string(id))
	} else {
		s.waiters[string(id)] = ws
	}
}

// snapshot picks the snapshot a request reads or commits at: the one it
// names (waiting until it is applied here), or else this member's applied
// seqno once it has reached minSeqno. It is never 0, which on the wire means
// "none yet": a cluster's first entry (its configuration) is seqno 1.
func (s *Service) snapshot(ctx context.Context, snap, minSeqno uint64) (uint64, error) {
	need := max(snap, minSeqno, 1)
	if s.ord.Applied() < need {
		err := s.causalWait(ctx, func(ctx context.Context) error { return s.ord.WaitApplied(ctx, need) },
			func() string { return fmt.Sprintf("seqno %d requested, %d applied here", need, s.ord.Applied()) })
		if err != nil {
			return 0, err
		}
	}
	if snap != 0 {
		return snap, nil
	}
	return s.ord.Applied(), nil
}

// causalWait runs wait for at most CausalWait. It fails with
// ErrShuttingDown if the member closes, else with ErrSnapshotUnavailable
// and what was waited for.
func (s *Service) causalWait(ctx context.Context, wait func(context.Context) error, what func() string) error {
	wctx, cancel := context.WithTimeout(ctx, s.cfg.CausalWait)
	defer cancel()
	switch err := wait(wctx); {
	case err == nil:
		return nil
	case errors.Is(err, groupcomm.ErrClosed):
		return ErrShuttingDown
	default:
		return fmt.Errorf("%w: %s: %v", ErrSnapshotUnavailable, what(), err)
	}
}

// readSnapshot resolves a read's snapshot. A linearizable read first
// applies through the leader's read index, a log index, and reads at least
// at the seqno reached there.
func (s *Service) readSnapshot(ctx context.Context, r ReadAt) (uint64, error) {
	if err := s.ord.Serving(r.AllowStale); err != nil {
		return 0, err
	}
	if r.Linearizable && r.Snapshot == 0 {
		idx, err := s.ord.ReadIndex(ctx)
		if err != nil {
			return 0, broadcastErr(err)
		}
		var seqno uint64
		err = s.causalWait(ctx, func(ctx context.Context) (err error) {
			seqno, err = s.ord.WaitIndex(ctx, idx)
			return err
		}, func() string { return fmt.Sprintf("the leader's read index %d is not yet applied here", idx) })
		if err != nil {
			return 0, err
		}
		r.MinSeqno = max(r.MinSeqno, seqno)
	}
	return s.snapshot(ctx, r.Snapshot, r.MinSeqno)
}

// Get reads key at a snapshot (see ReadAt). found is false when the key has
// no live version at it.
func (s *Service) Get(ctx context.Context, key []byte, r ReadAt) (val []byte, found bool, at uint64, err error) {
	if err := s.checkKey(key); err != nil {
		return nil, false, 0, err
	}
	if at, err = s.readSnapshot(ctx, r); err != nil {
		return nil, false, 0, err
	}
	val, err = s.store.Get(key, at)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, false, at, nil
	case err != nil:
		return nil, false, at, storageErr(err)
	}
	return val, true, at, nil
}

// Scan reads up to limit keys of [start, end) at a snapshot; more is set when
// the response stopped at MaxScanBatch before limit or the end of the range.
func (s *Service) Scan(ctx context.Context, start, end []byte, limit int, r ReadAt) (kvs []storage.KV, more bool, at uint64, err error) {
	if err := s.checkRange(start, end); err != nil {
		return nil, false, 0, err
	}
	if limit < 0 {
		return nil, false, 0, fmt.Errorf("%w: negative limit", ErrInvalidArgument)
	}
	if at, err = s.readSnapshot(ctx, r); err != nil {
		return nil, false, 0, err
	}
	n := s.cfg.Limits.MaxScanBatch
	capped := limit == 0 || limit > n
	if !capped {
		n = limit
	}
	if kvs, err = s.store.Scan(start, end, n+1, at); err != nil {
		return nil, false, at, storageErr(err)
	}
	if len(kvs) > n {
		kvs, more = kvs[:n], capped
	}
	return kvs, more, at, nil
}

func storageErr(err error) error {
	switch {
	case errors.Is(err, storage.ErrSnapshotTooOld):
		return fmt.Errorf("%w: %v", ErrSnapshotTooOld, err)
	case errors.Is(err, storage.ErrClosed):
		return ErrShuttingDown
	}
	return err
}

// Commit validates ws, orders it, and returns this member's verdict. A
// verdict other than commit is returned as the Outcome, not as an error;
// errors mean the write-set was not applied, except ErrIndeterminate. With
// Config.MaxInflightCommits commits, or Config.MaxInflightBytes bytes of
// write-sets, already in flight it fails at once with ErrOverloaded; once
// Drain has begun, with ErrShuttingDown.
func (s *Service) Commit(ctx context.Context, ws *writesetpb.WriteSet, minSeqno uint64) (certification.Outcome, error) {
	size := proto.Size(ws)
	if err := s.admit(size); err != nil {
		return certification.Outcome{}, err
	}
	defer s.gate.leave(size)
	start := time.Now()
	o, err := s.commit(ctx, ws, minSeqno)
	s.m.observeCommit(o, err, time.Since(start))
	return o, err
}

// admit lets a commit of a write-set of size bytes through the gate, or
// refuses it at once. A write-set over the size limit is refused as too
// large whatever the load, not as overload: a retry would not help.
func (s *Service) admit(size int) error {
	if err := s.checkSize(size); err != nil {
		return err
	}
	err := s.gate.enter(size)
	if errors.Is(err, ErrOverloaded) {
		s.m.overloaded.Inc()
	}
	return err
}

// Drain makes Commit refuse new commits with ErrShuttingDown and waits
// until the commits in flight have returned, or ctx ends (then it returns
// ctx's error). Reads are still served. A member drains before it stops.
func (s *Service) Drain(ctx context.Context) error { return s.gate.drain(ctx) }

func (s *Service) commit(ctx context.Context, ws *writesetpb.WriteSet, minSeqno uint64) (certification.Outcome, error) {
	if err := s.validate(ws); err != nil {
		return certification.Outcome{}, err
	}
	if err := s.checkSpace(ws); err != nil {
		return certification.Outcome{}, err
	}
	// A member cut off from the majority learns so from Broadcast, within
	// its bound; one that cannot serve at all says so at once.
	if err := s.ord.Serving(true); err != nil {
		return certification.Outcome{}, err
	}
	snap, err := s.snapshot(ctx, ws.GetSnapshot(), max(minSeqno, ws.GetOrigin()))
	if err != nil {
		return certification.Outcome{}, err
	}
	if err := s.checkWindow(snap, ws.GetOrigin()); err != nil {
		return certification.Outcome{}, err
	}
	if snap != ws.GetSnapshot() {
		ws = &writesetpb.WriteSet{Id: ws.GetId(), Snapshot: snap, Origin: ws.GetOrigin(), Writes: ws.GetWrites(), Reads: ws.GetReads(), Scans: ws.GetScans()}
	}
	data, err := certification.EncodeEntry(ws)
	if err != nil {
		return certification.Outcome{}, fmt.Errorf("%w: %v", ErrInvalidWriteSet, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CommitTimeout)
	defer cancel()
	ch := s.register(ws.GetId())
	defer s.unregister(ws.GetId(), ch)
	if _, err := s.ord.Broadcast(ctx, data); err != nil {
		return certification.Outcome{}, broadcastErr(err)
	}
	select {
	case o := <-ch:
		return o, nil
	default:
	}
	// Delivered, but not by the apply loop: this member installed a snapshot
	// that covers the entry. Its outcome is stored under its id.
	if o, ok := s.storedOutcome(ws.GetId()); ok {
		return o, nil
	}
	select {
	case o := <-ch:
		return o, nil
	case <-ctx.Done():
		return certification.Outcome{}, fmt.Errorf("%w: %v", ErrIndeterminate, ctx.Err())
	}
}

// checkWindow refuses at once a write-set that certification would refuse
// as too old: its snapshot, or its origin when it has one, is already below
// the certification window.
func (s *Service) checkWindow(snap, origin uint64) error {
	applied := s.ord.Applied()
	if s.cfg.Window == 0 || applied <= s.cfg.Window {
		return nil
	}
	switch floor := applied - s.cfg.Window; {
	case snap < floor:
		return fmt.Errorf("%w: snapshot %d is below the certification window (seqnos from %d)", ErrSnapshotTooOld, snap, floor)
	case origin > 0 && origin < floor:
		return fmt.Errorf("%w: origin %d is below the certification window (seqnos from %d)", ErrSnapshotTooOld, origin, floor)
	}
	return nil
}

// storedOutcome returns the outcome stored for a delivered write-set, if
// it can be read.
func (s *Service) storedOutcome(id []byte) (certification.Outcome, bool) {
	o, ok, err := s.store.Outcome(id)
	if err != nil {
		s.lg.Warn("cannot read a delivered write-set's stored outcome", zap.Binary("id", id), zap.Error(err))
	}
	return o, ok && err == nil
}

func broadcastErr(err error) error {
	switch {
	case errors.Is(err, groupcomm.ErrIndeterminate):
		return fmt.Errorf("%w: %v", ErrIndeterminate, err)
	case errors.Is(err, groupcomm.ErrNotPrimary):
		return fmt.Errorf("%w: %v", ErrNotPrimary, err)
	case errors.Is(err, groupcomm.ErrHeldBack):
		return fmt.Errorf("%w: %v", ErrOverloaded, err)
	case errors.Is(err, groupcomm.ErrClosed), errors.Is(err, groupcomm.ErrStopped):
		return fmt.Errorf("%w: %v", ErrShuttingDown, err)
	}
	// Only a context error before the entry was sent is left.
	return fmt.Errorf("%w: %v", ErrNotPrimary, err)
}

func (s *Service) checkKey(key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if len(key) > s.cfg.Limits.MaxKeySize {
		return fmt.Errorf("%w: key of %d bytes exceeds the %d-byte limit", ErrTooLarge, len(key), s.cfg.Limits.MaxKeySize)
	}
	return nil
}

// Admit checks a log entry as Commit checks a write-set. The leader runs it
// on entries other members forward, since anyone who reaches the port can
// send one.
func (s *Service) Admit(data []byte) error {
	if certification.IsCheckpoint(data) {
		_, _, err := certification.DecodeCheckpoint(data)
		return err
	}
	var ws writesetpb.WriteSet
	if err := certification.DecodeEntry(data, &ws); err != nil {
		return err
	}
	return s.validate(&ws)
}

// validate checks a write-set against the limits before anything is sent.
func (s *Service) validate(ws *writesetpb.WriteSet) error {
	switch {
	case ws == nil:
		return fmt.Errorf("%w: missing write-set", ErrInvalidWriteSet)
	case len(ws.GetId()) == 0 || len(ws.GetId()) > 64:
		return fmt.Errorf("%w: id must be 1 to 64 bytes, got %d", ErrInvalidWriteSet, len(ws.GetId()))
	case len(ws.GetWrites()) == 0:
		return fmt.Errorf("%w: no writes", ErrInvalidWriteSet)
	case ws.GetSnapshot() == 0 && ws.GetOrigin() == 0:
		return fmt.Errorf("%w: a write-set without a snapshot needs an origin: a seqno seen before it was made, "+
			"which bounds how long a resend of it is accepted", ErrInvalidWriteSet)
	case ws.GetSnapshot() == 0 && (len(ws.GetReads()) > 0 || len(ws.GetScans()) > 0):
		return fmt.Errorf("%w: a read set needs the snapshot it was read at", ErrInvalidWriteSet)
	}
	if err := s.validateReadSet(ws); err != nil {
		return err
	}
	if err := s.checkSize(proto.Size(ws)); err != nil {
		return err
	}
	for _, w := range ws.GetWrites() {
		if err := s.checkKey(w.GetKey()); err != nil {
			return err
		}
		if len(w.GetValue()) > s.cfg.Limits.MaxValueSize {
			return fmt.Errorf("%w: value of %d bytes for key %q exceeds the %d-byte limit", ErrTooLarge, len(w.GetValue()), w.GetKey(), s.cfg.Limits.MaxValueSize)
		}
	}
	return nil
}

// validateReadSet checks the read set of a serializable write-set: keys as
// keys, ranges ordered and bounded like keys, and the whole within
// Limits.MaxReadSetSize.
func (s *Service) validateReadSet(ws *writesetpb.WriteSet) error {
	size := 0
	for _, k := range ws.GetReads() {
		if err := s.checkKey(k); err != nil {
			return fmt.Errorf("read set: %w", err)
		}
		size += len(k)
	}
	for _, r := range ws.GetScans() {
		if err := s.checkRange(r.GetStart(), r.GetEnd()); err != nil {
			return fmt.Errorf("read set: %w", err)
		}
		size += len(r.GetStart()) + len(r.GetEnd())
	}
	if n := len(ws.GetReads()) + len(ws.GetScans()); size+n*readSetOverhead > s.cfg.Limits.MaxReadSetSize {
		return fmt.Errorf("%w: read set of %d keys and ranges (%d bytes) exceeds the %d-byte limit: a serializable transaction may read at most that much",
			ErrTooLarge, n, size+n*readSetOverhead, s.cfg.Limits.MaxReadSetSize)
	}
	return nil
}

// readSetOverhead is what each key or range of a read set counts for
// besides its bytes, against Limits.MaxReadSetSize: its cost in the index
// walk and the encoding.
const readSetOverhead = 8

// checkSize refuses a write-set of n bytes, encoded, over the size limit.
func (s *Service) checkSize(n int) error {
	if n > s.cfg.Limits.MaxWriteSetSize {
		return fmt.Errorf("%w: write-set of %d bytes exceeds the %d-byte limit", ErrTooLarge, n, s.cfg.Limits.MaxWriteSetSize)
	}
	return nil
}
