package storage

// Retention. The store keeps every version of a key for Retain seqnos below
// the applied seqno; older versions are discarded. ApplyBatch raises
// MinReadable to Applied().Seqno - Retain, so reads below it fail with
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
// deleted key keeps its latest delete, and an id record stays: reclaiming
// those is not done yet.

// DefaultRetain is the default Config.Retain: at tens of thousands of
// commits a second, seconds of history; a transaction whose snapshot is
// older gets ErrSnapshotTooOld and is retried.
const DefaultRetain = 100_000

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
// the current one's.
func (s *Store) minReadableAfter(cur, seqno uint64) uint64 {
	if seqno > s.retain {
		return max(cur, seqno-s.retain)
	}
	return cur
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
