package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// Errors returned by the store. Match them with errors.Is; most are wrapped
// with detail.
var (
	// ErrNotFound: the key has no live value at the snapshot (no version at or
	// below it, or the latest such version is a delete).
	ErrNotFound = errors.New("storage: key not found")
	// ErrClosed: the Store was closed (or the Snapshot released).
	ErrClosed = errors.New("storage: closed")
	// ErrSnapshotTooOld: the snapshot is below Applied().MinReadable (older
	// versions were not transferred by Import), or a Snapshot was taken before
	// an Import replaced the contents.
	ErrSnapshotTooOld = errors.New("storage: snapshot is older than the oldest readable seqno")
	// ErrBadSnapshot: Import was given a stream that is not a complete, intact
	// WriteTo stream (bad magic or format, truncation, checksum mismatch, ...).
	ErrBadSnapshot = errors.New("storage: malformed snapshot stream")
	// ErrInvalidBatch: ApplyBatch was given seqnos out of order or not above
	// the applied seqno, an empty or oversized key or id, or an oversized
	// value. Nothing was written.
	ErrInvalidBatch = errors.New("storage: invalid batch")
)

// Key spaces: the first byte of every badger key. See the package comment.
const (
	spaceData  byte = 'd'
	spaceID    byte = 'i'
	spaceState byte = 's'

	// metaTombstone is the badger UserMeta bit marking a delete.
	metaTombstone byte = 1
	// appliedVersion is the fixed version of the applied-state record.
	appliedVersion uint64 = 1
)

// MaxKeySize is the longest user key or write-set id storage accepts:
// badger's 65000 bytes minus the key-space byte.
const MaxKeySize = 65000 - 1

// MaxValueSize is the largest value an on-disk store is asked to hold; the
// certification rule refuses larger ones, so every member refuses alike.
// (An in-memory store, for tests, holds values up to 1 MiB only.)
const MaxValueSize = 16 << 20

var appliedKey = []byte{spaceState, 'a', 'p', 'p', 'l', 'i', 'e', 'd'}

// internalKey returns space followed by k, in a new slice.
func internalKey(space byte, k []byte) []byte {
	b := make([]byte, 1+len(k))
	b[0] = space
	copy(b[1:], k)
	return b
}

// KV is one live key and its value, as returned by Scan.
type KV struct {
	Key, Value []byte
}

// Store is Galena's MVCC key-value store. Create it with Open; it is safe for
// concurrent use (see the package comment for what runs concurrently).
type Store struct {
	lg       *zap.Logger
	dir      string
	db       *badger.DB
	maxValue int64

	applyMu sync.Mutex // serialises ApplyBatch and Import; taken before mu

	mu     sync.RWMutex // read-held while using db; write-held by Close and Import
	closed bool         // guarded by mu
	gen    uint64       // guarded by mu; incremented when Import replaces contents

	applied atomic.Pointer[AppliedState] // never nil after Open
	// durable is the applied state as of the last sync: never nil after
	// Open, and the same pointer as applied when nothing was applied since.
	durable atomic.Pointer[AppliedState]

	retain    uint64
	aged      agedSeqnos       // guarded by applyMu
	now       func() time.Time // time.Now; tests move it
	window    uint64
	reaps     reapList // ApplyBatch's; guarded by applyMu
	pinMu     sync.Mutex
	pins      map[uint64]int // seqno -> reads in flight at it and pinned Snapshots
	discardTs uint64         // badger's discard timestamp; guarded by syncMu

	syncMu    sync.Mutex // serialises syncs; taken after mu
	syncErr   error      // the first sync failure; guarded by syncMu, or mu held exclusively
	syncEvery uint64
	kick      chan struct{} // asks syncLoop to sync
	stopLoop  chan struct{} // closed by Close
	stopOnce  sync.Once
	loopDone  chan struct{} // closed when syncLoop returns
}

// Open opens (or creates) the store described by cfg and loads its applied
// state; if the machine restarted since the store was last open, it starts
// from its durable state instead (see Sync and the package comment), and the
// caller applies the batches above it again. If a previous Import was
// interrupted by a crash, Open empties the store first. It fails if cfg is
// invalid, if badger cannot open Dir (for example because another process
// holds it), if the applied or durable state is unreadable or inconsistent,
// or if it cannot sync.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lg := cfg.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	lg = lg.Named("storage")
	opts := cfg.badgerOptions(lg)
	db, err := badger.OpenManaged(opts)
	if err != nil {
		return nil, fmt.Errorf("storage: open %q: %w", cfg.Dir, err)
	}
	s := &Store{lg: lg, dir: cfg.Dir, db: db, maxValue: maxValueSize(opts), syncEvery: cfg.syncEvery(),
		retain: cfg.retain(), aged: agedSeqnos{age: cfg.RetainAge}, now: time.Now, window: cfg.Window, pins: make(map[uint64]int),
		kick: make(chan struct{}, 1), stopLoop: make(chan struct{}), loopDone: make(chan struct{})}
	st, err := s.recover()
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	s.applied.Store(st)
	s.durable.Store(st)
	go s.syncLoop()
	lg.Info("opened", zap.String("dir", cfg.Dir), zap.Bool("in_memory", cfg.InMemory),
		zap.Uint64("applied_seqno", st.Seqno), zap.Uint64("min_readable", st.MinReadable))
	return s, nil
}

// recover finishes an interrupted import, if any, and returns the state to
// start from.
func (s *Store) recover() (*AppliedState, error) {
	interrupted, err := s.importMarked()
	if err != nil {
		return nil, err
	}
	if interrupted {
		s.lg.Warn("previous import was interrupted; emptying the store")
		if err := s.dropAll(); err != nil {
			return nil, err
		}
		if err := s.removeDurable(); err != nil {
			return nil, err
		}
		if err := s.clearImportMarker(); err != nil {
			return nil, err
		}
	}
	applied, err := s.loadApplied()
	if err != nil {
		return nil, err
	}
	return s.startState(applied)
}

// loadApplied reads the applied-state record (the zero state if none).
func (s *Store) loadApplied() (*AppliedState, error) {
	txn := s.db.NewTransactionAt(math.MaxUint64, false)
	defer txn.Discard()
	item, err := txn.Get(appliedKey)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return &AppliedState{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("storage: read applied state: %w", err)
	}
	var st *AppliedState
	err = item.Value(func(v []byte) error {
		st, err = decodeApplied(v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("storage: read applied state: %w", err)
	}
	return st, nil
}

// Close syncs (see Sync) and closes the store. It waits for calls in flight
// (including running Snapshot.WriteTo streams). It is idempotent;
// afterwards every method returns ErrClosed. If the sync fails, Close still
// closes the store and returns the error.
func (s *Store) Close() error {
	s.stopSyncLoop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.sync()
	if cerr := s.db.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("storage: close: %w", cerr))
	}
	s.lg.Info("closed", zap.Uint64("applied_seqno", s.applied.Load().Seqno),
		zap.Uint64("durable_seqno", s.durable.Load().Seqno), zap.Error(err))
	return err
}

// Applied returns the applied state. It is cheap (no I/O, no lock) and still
// answers after Close (the last state).
func (s *Store) Applied() AppliedState {
	return s.applied.Load().clone()
}

// readable reports whether a read at snapshot is allowed. The caller holds mu.
func (s *Store) readable(snapshot uint64) error {
	if s.closed {
		return ErrClosed
	}
	if minr := s.applied.Load().MinReadable; snapshot < minr {
		return fmt.Errorf("%w: snapshot %d, oldest readable %d", ErrSnapshotTooOld, snapshot, minr)
	}
	return nil
}

// Get returns the value of key's latest version at or below snapshot. It
// returns ErrNotFound if there is none or it is a delete, ErrSnapshotTooOld if
// snapshot < Applied().MinReadable. The returned slice belongs to the caller.
// Reads above Applied().Seqno may observe a batch being applied.
func (s *Store) Get(key []byte, snapshot uint64) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.pin(snapshot)
	defer s.unpin(snapshot)
	if err := s.readable(snapshot); err != nil {
		return nil, err
	}
	txn := s.db.NewTransactionAt(snapshot, false)
	defer txn.Discard()
	item, err := txn.Get(internalKey(spaceData, key))
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil, ErrNotFound
	case err != nil:
		return nil, fmt.Errorf("storage: get: %w", err)
	case item.UserMeta()&metaTombstone != 0:
		return nil, ErrNotFound
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, fmt.Errorf("storage: get: %w", err)
	}
	return v, nil
}

// Scan returns the live keys in [start, end) at snapshot, in key order, at most
// limit of them (limit <= 0: no limit). A nil or empty end means no upper
// bound. Errors are as for Get; the returned slices belong to the caller.
func (s *Store) Scan(start, end []byte, limit int, snapshot uint64) ([]KV, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.pin(snapshot)
	defer s.unpin(snapshot)
	if err := s.readable(snapshot); err != nil {
		return nil, err
	}
	txn := s.db.NewTransactionAt(snapshot, false)
	defer txn.Discard()
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte{spaceData}
	if limit > 0 && limit < opts.PrefetchSize {
		opts.PrefetchSize = limit
	}
	it := txn.NewIterator(opts)
	defer it.Close()

	var upper []byte
	if len(end) > 0 {
		upper = internalKey(spaceData, end)
	}
	var out []KV
	for it.Seek(internalKey(spaceData, start)); it.Valid(); it.Next() {
		item := it.Item()
		if upper != nil && bytes.Compare(item.Key(), upper) >= 0 {
			break
		}
		if item.UserMeta()&metaTombstone != 0 {
			continue
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return nil, fmt.Errorf("storage: scan: %w", err)
		}
		out = append(out, KV{Key: bytes.Clone(item.Key()[1:]), Value: v})
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

// LatestVersion returns the seqno of key's latest version below before,
// deletes included; ok is false if there is none. It returns
// ErrSnapshotTooOld if before <= Applied().MinReadable, since versions older
// than an import are unknown. Certification calls it with before = the seqno
// being certified, so versions written at or above it (a batch being applied,
// or left by a crash) are ignored.
func (s *Store) LatestVersion(key []byte, before uint64) (seqno uint64, ok bool, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	item, txn, err := s.latestBelow(internalKey(spaceData, key), before)
	if item == nil || err != nil {
		return 0, false, err
	}
	defer txn.Discard()
	return item.Version(), true, nil
}

// WrittenIn returns the first key in [start, end) (a nil or empty end: no
// upper bound) whose latest version below before, deletes included, is above
// after, and that version; ok is false if there is none. Errors are as for
// LatestVersion. Certification calls it for a range a serializable
// write-set scanned at snapshot after, with before = the seqno being
// certified.
func (s *Store) WrittenIn(start, end []byte, after, before uint64) (key []byte, seqno uint64, ok bool, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.beforeReadable(before); err != nil || before <= after+1 {
		return nil, 0, false, err
	}
	txn := s.db.NewTransactionAt(before-1, false)
	defer txn.Discard()
	opts := badger.DefaultIteratorOptions
	// Each key's latest version at or below before-1, skipped when it is at
	// or below after: tables holding nothing newer are not read. The
	// iterator skips to the next key written since, wherever it is, and
	// reads one more ahead: the prefix the range's bounds share keeps it
	// from going far past the range.
	opts.Prefix = internalKey(spaceData, start[:commonPrefix(start, end)])
	opts.SinceTs, opts.PrefetchValues = after, false
	it := txn.NewIterator(opts)
	defer it.Close()
	it.Seek(internalKey(spaceData, start))
	if !it.Valid() {
		return nil, 0, false, nil
	}
	item := it.Item()
	if len(end) > 0 && bytes.Compare(item.Key(), internalKey(spaceData, end)) >= 0 {
		return nil, 0, false, nil
	}
	return bytes.Clone(item.Key()[1:]), item.Version(), true, nil
}

// commonPrefix is the length of the prefix every key of [start, end)
// shares: that of start and end, none without an end.
func commonPrefix(start, end []byte) int {
	if len(end) == 0 {
		return 0
	}
	n := 0
	for n < len(start) && n < len(end) && start[n] == end[n] {
		n++
	}
	return n
}

// LookupID returns the outcome stored for write-set id by a record with a
// seqno below before, and that seqno; ok is false if there is none. If the id
// was recorded more than once, the latest outcome below before wins. Errors
// are as for LatestVersion.
func (s *Store) LookupID(id []byte, before uint64) (outcome []byte, seqno uint64, ok bool, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(id) == 0 {
		return nil, 0, false, s.beforeReadable(before)
	}
	item, txn, err := s.latestBelow(internalKey(spaceID, id), before)
	if item == nil || err != nil {
		return nil, 0, false, err
	}
	defer txn.Discard()
	if outcome, err = item.ValueCopy(nil); err != nil {
		return nil, 0, false, fmt.Errorf("storage: lookup id: %w", err)
	}
	return outcome, item.Version(), true, nil
}

// beforeReadable is readable for the exclusive bound of LatestVersion and
// LookupID. The caller holds mu.
func (s *Store) beforeReadable(before uint64) error {
	if s.closed {
		return ErrClosed
	}
	if minr := s.applied.Load().MinReadable; minr > 0 && before <= minr {
		return fmt.Errorf("%w: before %d, oldest readable %d", ErrSnapshotTooOld, before, minr)
	}
	return nil
}

// latestBelow finds ikey's latest version below before. When it returns a
// non-nil item the caller must Discard txn after using the item; otherwise
// txn is nil. The caller holds mu.
func (s *Store) latestBelow(ikey []byte, before uint64) (*badger.Item, *badger.Txn, error) {
	if err := s.beforeReadable(before); err != nil || before == 0 {
		return nil, nil, err
	}
	txn := s.db.NewTransactionAt(before-1, false)
	item, err := txn.Get(ikey)
	if err != nil {
		txn.Discard()
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("storage: read version: %w", err)
	}
	return item, txn, nil
}
