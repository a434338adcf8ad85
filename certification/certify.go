package certification

import (
	"bytes"
	"errors"
	"fmt"
	"math"

	"github.com/galenadb/galena/api/writesetpb"
)

// Errors a write-set's outcome can carry. They are deterministic: every member
// reports the same one for the same write-set.
var (
	// ErrConflict: a key the write-set writes was written after its snapshot.
	// The write-set was not applied. Outcome.Err returns a *ConflictError.
	ErrConflict = errors.New("certification: conflict")
	// ErrSnapshotTooOld: the write-set's snapshot or origin is below the
	// certification window. It was not applied; the transaction should
	// restart.
	ErrSnapshotTooOld = errors.New("certification: snapshot is older than the certification window")
	// ErrInvalidSnapshot: the write-set claims a snapshot or an origin at or
	// after its own seqno, which no honest client can have seen. It was not
	// applied.
	ErrInvalidSnapshot = errors.New("certification: snapshot is not before the write-set's seqno")
	// ErrInvalidWriteSet: the write-set has an empty key, or a key, id or
	// value over the limits of Config (what storage can hold). Members admit
	// no such write-set, so one in the log came from elsewhere; every member
	// refuses it alike. Not applied.
	ErrInvalidWriteSet = errors.New("certification: invalid write-set")
)

// ConflictError is the error of a write-set that lost to an earlier committer.
// errors.Is(err, ErrConflict) holds for it.
type ConflictError struct {
	// Key is the first conflicting key: in write-set order among its
	// writes, then among its reads; for a scanned range, the first key in
	// the range written after the snapshot.
	Key   []byte
	Seqno uint64 // the seqno of the write-set that wrote Key after the snapshot
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("certification: conflict on key %q written at seqno %d", e.Key, e.Seqno)
}

// Is reports whether target is ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// Verdict is the decision for one write-set.
type Verdict uint8

// The verdicts. Only Commit means the writes were applied.
const (
	Commit Verdict = iota + 1
	Conflict
	TooOld
	InvalidSnapshot
	InvalidWriteSet
)

func (v Verdict) String() string {
	switch v {
	case Commit:
		return "commit"
	case Conflict:
		return "conflict"
	case TooOld:
		return "too-old"
	case InvalidSnapshot:
		return "invalid-snapshot"
	case InvalidWriteSet:
		return "invalid-write-set"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// Outcome is what certification decided for a write-set.
type Outcome struct {
	Seqno    uint64  // the seqno the write-set was (first) ordered at
	Verdict  Verdict //
	Key      []byte  // on Conflict: the first conflicting key
	KeySeqno uint64  // on Conflict: the seqno that wrote Key
	// Duplicate is set when this delivery repeated an id already ordered in
	// the window; the outcome is then the first one, and nothing was applied.
	Duplicate bool
}

// Err returns nil for a commit and the matching sentinel (or *ConflictError)
// otherwise.
func (o Outcome) Err() error {
	switch o.Verdict {
	case Commit:
		return nil
	case Conflict:
		return &ConflictError{Key: o.Key, Seqno: o.KeySeqno}
	case TooOld:
		return ErrSnapshotTooOld
	case InvalidSnapshot:
		return ErrInvalidSnapshot
	case InvalidWriteSet:
		return ErrInvalidWriteSet
	}
	return fmt.Errorf("certification: unknown verdict %d", o.Verdict)
}

// Store is what certification needs of storage: the latest version of a key
// below a seqno (deletes included), the first key of a range written
// between two seqnos, and the outcome recorded for an id.
type Store interface {
	LatestVersion(key []byte, before uint64) (seqno uint64, ok bool, err error)
	// WrittenIn returns the first key in [start, end) (an empty end: no
	// upper bound) whose latest version below before, deletes included, is
	// above after, and that version.
	WrittenIn(start, end []byte, after, before uint64) (key []byte, seqno uint64, ok bool, err error)
	LookupID(id []byte, before uint64) (outcome []byte, seqno uint64, ok bool, err error)
}

// Config sets the certification window and the limits of a well-formed
// write-set. Window and the limits are part of the replicated state
// machine's definition: every member of a cluster must use the same values.
type Config struct {
	// Window, in seqnos: snapshots older than seqno-Window are too old and
	// ids are deduplicated over the last Window seqnos.
	Window uint64
	// IndexSize bounds the in-memory index of recent writes, in keys; older
	// keys are looked up in the Store. It changes speed, never decisions.
	IndexSize int
	// MaxKeySize bounds a key and a write-set id, and MaxValueSize a value,
	// in bytes: a write-set over them is InvalidWriteSet. They are what the
	// Store can hold, so that no member fails to store a write-set that
	// certification let through.
	MaxKeySize   int
	MaxValueSize int
}

// DefaultWindow is the certification window every member uses.
const DefaultWindow = 1 << 20

// DefaultConfig returns the configuration members use. Its limits are
// storage's (storage.MaxKeySize and MaxValueSize).
func DefaultConfig() Config {
	return Config{Window: DefaultWindow, IndexSize: 1 << 16, MaxKeySize: 65000 - 1, MaxValueSize: 16 << 20}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Window == 0:
		return errors.New("certification: Window must be positive")
	case c.IndexSize <= 0:
		return errors.New("certification: IndexSize must be positive")
	case c.MaxKeySize <= 0 || c.MaxValueSize <= 0:
		return errors.New("certification: MaxKeySize and MaxValueSize must be positive")
	}
	return nil
}

// Certifier applies the first-committer-wins rule to write-sets in seqno
// order. It is not safe for concurrent use: one apply loop owns it.
type Certifier struct {
	cfg   Config
	store Store
	idx   *index
	ids   *idFilter
	// floor: every committed write above it is in idx (or superseded there
	// by a later write of the same key), so a key idx lacks was last
	// written at or below it. Unknown (the maximum) until Resume.
	floor uint64
}

// NewCertifier returns a Certifier that falls back to st for keys and ids its
// in-memory index no longer holds. st must reflect every write-set certified
// so far once Persisted is called.
func NewCertifier(cfg Config, st Store) (*Certifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Certifier{cfg: cfg, store: st, idx: newIndex(cfg.IndexSize), ids: newIDFilter(cfg.Window), floor: math.MaxUint64}, nil
}

// Resume tells a Certifier with an empty index that the Store holds every
// write-set up to applied, and nothing after it: certification then reads
// storage only for write-sets whose snapshot is older than what the index
// covers, and for ids only while the window reaches back to applied or when
// the id filter cannot rule a duplicate out.
func (c *Certifier) Resume(applied uint64) {
	if c.idx.empty() {
		c.floor = applied
	}
	c.ids.resume(applied)
}

// Certify decides the write-set ordered at seqno and, on commit, records its
// writes in the index so later write-sets see them before they reach storage.
// seqnos must be strictly increasing across calls. An error means the Store
// failed; the caller must stop rather than guess.
func (c *Certifier) Certify(ws *writesetpb.WriteSet, seqno uint64) (Outcome, error) {
	if len(ws.GetId()) > 0 {
		if o, ok, err := c.lookupID(ws.GetId(), seqno); err != nil || ok {
			return o, err
		}
	}
	o, err := c.decide(ws, seqno)
	if err != nil {
		return Outcome{}, err
	}
	if o.Verdict == Commit {
		for _, w := range ws.GetWrites() {
			c.idx.putKey(w.GetKey(), seqno)
		}
	}
	// An invalid write-set's outcome is not stored under its id (storage
	// may be unable to hold the id), so it is not remembered here either: a
	// later write-set with the id is decided on its own, whether or not
	// this one is still in the index.
	if len(ws.GetId()) > 0 && o.Verdict != InvalidWriteSet {
		c.idx.putID(ws.GetId(), o)
		c.ids.add(ws.GetId(), seqno)
	}
	return o, nil
}

// decide is the rule itself.
func (c *Certifier) decide(ws *writesetpb.WriteSet, seqno uint64) (Outcome, error) {
	snap, origin := ws.GetSnapshot(), ws.GetOrigin()
	switch {
	case !c.cfg.wellFormed(ws):
		return Outcome{Seqno: seqno, Verdict: InvalidWriteSet}, nil
	case snap >= seqno || origin >= seqno:
		return Outcome{Seqno: seqno, Verdict: InvalidSnapshot}, nil
	case c.tooOld(snap, seqno) || (origin > 0 && c.tooOld(origin, seqno)):
		return Outcome{Seqno: seqno, Verdict: TooOld}, nil
	}
	for _, w := range ws.GetWrites() {
		if o, err := c.checkKey(w.GetKey(), snap, seqno); err != nil || o.Verdict != 0 {
			return o, err
		}
	}
	for _, k := range ws.GetReads() {
		if o, err := c.checkKey(k, snap, seqno); err != nil || o.Verdict != 0 {
			return o, err
		}
	}
	var recent []entry // with many ranges, the index's writes after snap, sorted once
	if len(ws.GetScans()) > walkRanges {
		recent = c.idx.recent(snap)
	}
	for _, r := range ws.GetScans() {
		key, last, ok, err := c.writtenIn(r.GetStart(), r.GetEnd(), snap, seqno, recent)
		if err != nil {
			return Outcome{}, err
		}
		if ok {
			return Outcome{Seqno: seqno, Verdict: Conflict, Key: key, KeySeqno: last}, nil
		}
	}
	return Outcome{Seqno: seqno, Verdict: Commit}, nil
}

// walkRanges is how many scanned ranges a write-set may have for each to be
// checked by a walk over the index's writes after its snapshot; with more,
// those writes are sorted once and each range is a binary search.
const walkRanges = 4

// checkKey returns a Conflict outcome if key was written after snap and
// before seqno, and the zero Outcome otherwise.
func (c *Certifier) checkKey(key []byte, snap, seqno uint64) (Outcome, error) {
	last, ok, err := c.lastWrite(key, snap, seqno)
	if err != nil || !ok || last <= snap {
		return Outcome{}, err
	}
	return Outcome{Seqno: seqno, Verdict: Conflict, Key: key, KeySeqno: last}, nil
}

// tooOld reports whether a write-set bounded by seqno b (its snapshot or
// its origin) is too old to be ordered at seqno: b is below the window, so
// the write-set may have been ordered before at a seqno whose id members no
// longer remember.
func (c *Certifier) tooOld(b, seqno uint64) bool {
	return seqno > c.cfg.Window && b < seqno-c.cfg.Window
}

// wellFormed reports whether ws's id, keys and values are within the
// limits, which is what storage can hold, no key written or read is empty,
// and every range scanned is ordered.
func (c Config) wellFormed(ws *writesetpb.WriteSet) bool {
	for _, w := range ws.GetWrites() {
		if len(w.GetKey()) == 0 || len(w.GetKey()) > c.MaxKeySize || len(w.GetValue()) > c.MaxValueSize {
			return false
		}
	}
	for _, k := range ws.GetReads() {
		if len(k) == 0 || len(k) > c.MaxKeySize {
			return false
		}
	}
	for _, r := range ws.GetScans() {
		start, end := r.GetStart(), r.GetEnd()
		if len(start) > c.MaxKeySize || len(end) > c.MaxKeySize || (len(end) > 0 && bytes.Compare(start, end) >= 0) {
			return false
		}
	}
	return len(ws.GetId()) <= c.MaxKeySize
}

// lastWrite is the seqno of the latest committed write of key before seqno,
// as far as a write-set read at snap needs it: one at or below snap is no
// conflict, so when the index covers everything after snap, a key it lacks
// needs no storage read.
func (c *Certifier) lastWrite(key []byte, snap, seqno uint64) (uint64, bool, error) {
	if s, ok := c.idx.key(key); ok && s < seqno {
		return s, true, nil
	}
	if snap >= c.floor {
		return 0, false, nil
	}
	s, ok, err := c.store.LatestVersion(key, seqno)
	if err != nil {
		return 0, false, fmt.Errorf("certification: latest version of %q: %w", key, err)
	}
	return s, ok, nil
}

// writtenIn returns the first key in [start, end) written after snap and
// before seqno, and its latest write before seqno. The index holds every
// write storage does not yet (the batch being certified, say) and, when
// snap is at or above the floor, every write after snap: it answers alone
// then. Otherwise storage answers too, and the first key of the two
// answers wins; either way the key and seqno are the same.
//
// recent, when not nil, is the index's writes after snap as index.recent
// returns them, searched instead of walking the index.
func (c *Certifier) writtenIn(start, end []byte, snap, seqno uint64, recent []entry) ([]byte, uint64, bool, error) {
	var key []byte
	var last uint64
	var ok bool
	if recent != nil {
		key, last, ok = firstIn(recent, start, end)
	} else {
		key, last, ok = c.idx.writtenIn(start, end, snap)
	}
	if snap >= c.floor {
		return key, last, ok, nil
	}
	skey, slast, sok, err := c.store.WrittenIn(start, end, snap, seqno)
	if err != nil {
		return nil, 0, false, fmt.Errorf("certification: writes in [%q, %q): %w", start, end, err)
	}
	// A key the index lacks has no write storage does not hold.
	if sok && (!ok || bytes.Compare(skey, key) < 0) {
		key, last, ok = skey, slast, true
	}
	return key, last, ok, nil
}

// lookupID finds an earlier outcome for id within the window.
func (c *Certifier) lookupID(id []byte, seqno uint64) (Outcome, bool, error) {
	o, ok := c.idx.id(id)
	if !ok {
		if c.ids.absent(id, seqno) {
			return Outcome{}, false, nil
		}
		raw, _, found, err := c.store.LookupID(id, seqno)
		if err != nil {
			return Outcome{}, false, fmt.Errorf("certification: lookup id: %w", err)
		}
		if !found {
			return Outcome{}, false, nil
		}
		if o, err = DecodeOutcome(raw); err != nil {
			return Outcome{}, false, err
		}
	}
	if o.Seqno >= seqno || (seqno > c.cfg.Window && o.Seqno <= seqno-c.cfg.Window) {
		return Outcome{}, false, nil
	}
	o.Duplicate = true
	return o, true, nil
}

// Persisted tells the Certifier that the Store now holds every write-set up
// to seqno, so index entries at or below it may be forgotten when the index
// is full.
func (c *Certifier) Persisted(seqno uint64) { c.floor = max(c.floor, c.idx.trim(seqno)) }

// Reset forgets the index; call it after the Store's contents were
// replaced, then Resume.
func (c *Certifier) Reset() {
	c.idx, c.ids, c.floor = newIndex(c.cfg.IndexSize), newIDFilter(c.cfg.Window), math.MaxUint64
}
