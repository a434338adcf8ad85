package storage

import (
	"math"
	"time"
)

// Retention. The store keeps every version of a key for Retain seqnos below
// the applied seqno, and for RetainAge; older versions are discarded.
// ApplyBatch raises MinReadable to Applied().Seqno - Retain, or to the
// seqno applied RetainAge ago if that is lower, so reads below it fail with
// ErrSnapshotTooOld, and each sync then lets badger's compactions drop
// versions below it (badger's discard timestamp, with NumVersionsToKeep 1):
// of the versions at or below the discard timestamp, a key keeps only its
// latest, which is what every read at or above it sees. Certification is
// unaffected: it asks for a key's latest version below a seqno above the
// applied one, which is never discarded.
//
// Badger's managed mode leaves it to the store not to discard what a read
// in flight may still see. The discard timestamp never passes
//   - the durable state's MinReadable: after a machine restart the store
//     starts from the durable state, and must not find versions it claims
//     readable already gone;
//   - the snapshot of any read in flight (Get, Scan) or pinned Snapshot:
//     each registers its seqno (pin) before it checks that it is readable,
//     and a sync reads MinReadable before the pins, so a read it does not
//     see checked against a MinReadable at least as high.
//
// Deletes are versions like any other (see the package comment), so a
// deleted key keeps its latest delete, and an id record stays: those are
// forgotten after the certification window instead (forget.go).

// DefaultRetain is the default Config.Retain: at tens of thousands of
// commits a second, seconds of history; a transaction whose snapshot is
// older gets ErrSnapshotTooOld and is retried.
const DefaultRetain = 100_000

// DefaultRetainAge is DefaultConfig's RetainAge: a transaction or a read a
// minute long still finds its snapshot, however busy the cluster.
const DefaultRetainAge = time.Minute

// ageSamples is how many samples of the applied seqno span RetainAge: the
// age bound is kept to within RetainAge/ageSamples.
const ageSamples = 32

// agedSeqnos remembers which seqno was applied when, coarsely, to tell the
// applied seqno of RetainAge ago. Used under applyMu.
type agedSeqnos struct {
	age     time.Duration
	samples []ageSample // oldest first
}

type ageSample struct {
	at    time.Time
	seqno uint64
}

// note records that seqno was the applied seqno at now, and forgets the
// samples older than the floor's: there are at most about ageSamples.
func (a *agedSeqnos) note(now time.Time, seqno uint64) {
	if a.age == 0 {
		return
	}
	if n := len(a.samples); n == 0 || now.Sub(a.samples[n-1].at) >= a.age/ageSamples {
		a.samples = append(a.samples, ageSample{at: now, seqno: seqno})
	}
	i := 0
	for i+1 < len(a.samples) && now.Sub(a.samples[i+1].at) >= a.age {
		i++
	}
	a.samples = a.samples[i:]
}

// floor is the applied seqno of RetainAge before now, as far as the
// samples tell: every read at a snapshot taken since is at or above it.
// With no age bound it is MaxUint64; with no sample that old, 0. The
// samples are those note left at now.
func (a *agedSeqnos) floor(now time.Time) uint64 {
	switch {
	case a.age == 0:
		return math.MaxUint64
	case len(a.samples) == 0 || now.Sub(a.samples[0].at) < a.age:
		return 0
	}
	return a.samples[0].seqno
}

// pin registers a read at seqno until unpin: the discard timestamp stays at
// or below it.
func (s *Store) pin(seqno uint64) {
	s.pinMu.Lock()
	s.pins[seqno]++
	s.pinMu.Unlock()
}

func (s *Store) unpin(seqno uint64) {
	s.pinMu.Lock()
	if s.pins[seqno]--; s.pins[seqno] <= 0 {
		delete(s.pins, seqno)
	}
	s.pinMu.Unlock()
}

// oldestPin is the lowest pinned seqno, or ok false when none is.
func (s *Store) oldestPin() (oldest uint64, ok bool) {
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	for p := range s.pins {
		if !ok || p < oldest {
			oldest, ok = p, true
		}
	}
	return oldest, ok
}

// minReadableAfter is the MinReadable of the applied state at seqno, from
// the current one's, at now. The caller holds applyMu.
func (s *Store) minReadableAfter(cur, seqno uint64, now time.Time) uint64 {
	if seqno <= s.retain {
		return cur
	}
	return max(cur, min(seqno-s.retain, s.aged.floor(now)))
}

// discard moves badger's discard timestamp up to the durable MinReadable,
// but not past a pinned read. The caller holds syncMu.
func (s *Store) discard() {
	at := s.durable.Load().MinReadable
	if p, ok := s.oldestPin(); ok {
		at = min(at, p)
	}
	if at > s.discardTs {
		s.db.SetDiscardTs(at)
		s.discardTs = at
	}
}
