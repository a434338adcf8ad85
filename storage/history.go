package storage

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"
)

// Change is one write of a committed write-set, as Changes returns it.
type Change struct {
	Seqno  uint64
	Key    []byte
	Value  []byte // nil for a delete
	Delete bool
}

// changeOverhead is what Changes counts for a change besides its key and
// value, against its byte budget.
const changeOverhead = 32

// HistoryFloor returns the oldest seqno changes can be read after: every
// write-set above it is held whole. Below it, versions may be discarded
// (retention, see retain.go), forgotten (deletes older than the
// certification window, see forget.go) or never held (an Import brings
// only the latest version of each key, at the imported seqno).
func (s *Store) HistoryFloor() uint64 {
	st := s.applied.Load()
	floor := st.MinReadable
	if s.window > 0 && st.Seqno > s.window {
		floor = max(floor, st.Seqno-s.window)
	}
	return floor
}

// Changes returns the writes to keys in [start, end) (a nil or empty end:
// no upper bound) of the write-sets at seqnos in (after, upTo], in seqno
// order and, within a seqno, in key order; a write-set that wrote a key
// twice shows its last write. It stops after about maxBytes of keys and
// values, but only between seqnos: through is the seqno up to which the
// result is complete (upTo unless it stopped early), and the next call
// continues after it. It returns ErrSnapshotTooOld when after is below
// HistoryFloor, and an error when upTo is above Applied().Seqno (the writes
// of a batch being applied may be partial). The returned slices belong to
// the caller.
func (s *Store) Changes(start, end []byte, after, upTo uint64, maxBytes int) (changes []Change, through uint64, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.pin(after)
	defer s.unpin(after)
	if s.closed {
		return nil, 0, ErrClosed
	}
	if err := s.HistoryHeld(after); err != nil {
		return nil, 0, err
	}
	if applied := s.applied.Load().Seqno; upTo > applied {
		return nil, 0, fmt.Errorf("storage: changes up to seqno %d asked, %d applied", upTo, applied)
	}
	if upTo <= after {
		return nil, upTo, nil
	}
	txn := s.db.NewTransactionAt(upTo, false)
	defer txn.Discard()
	opts := badger.DefaultIteratorOptions
	// Values are read only for the versions kept: after a cut, most are
	// skipped.
	opts.Prefix, opts.AllVersions, opts.SinceTs, opts.PrefetchValues = []byte{spaceData}, true, after, false
	it := txn.NewIterator(opts)
	defer it.Close()

	var upper []byte
	if len(end) > 0 {
		upper = internalKey(spaceData, end)
	}
	through, size := upTo, 0
	for it.Seek(internalKey(spaceData, start)); it.Valid(); it.Next() {
		item := it.Item()
		if upper != nil && bytes.Compare(item.Key(), upper) >= 0 {
			break
		}
		v := item.Version()
		if v > through || v <= after || item.IsDeletedOrExpired() {
			continue
		}
		c := Change{Seqno: v, Key: bytes.Clone(item.Key()[1:]), Delete: item.UserMeta()&metaTombstone != 0}
		if !c.Delete {
			if c.Value, err = item.ValueCopy(nil); err != nil {
				return nil, 0, fmt.Errorf("storage: changes: %w", err)
			}
		}
		changes = append(changes, c)
		if size += len(c.Key) + len(c.Value) + changeOverhead; size > 2*maxBytes {
			changes, through, size = cutChanges(changes, maxBytes)
		}
	}
	if size > maxBytes {
		changes, through, _ = cutChanges(changes, maxBytes) // sorts them
	} else {
		sortChanges(changes)
	}
	// A sync during the scan may have forgotten deletes (forget.go) that
	// the scan then skipped: the floor only rises, so look again.
	if err := s.HistoryHeld(after); err != nil {
		return nil, 0, err
	}
	return changes, through, nil
}

// HistoryHeld returns nil when every change after seqno after is held, else
// ErrSnapshotTooOld saying what is (after is below HistoryFloor).
func (s *Store) HistoryHeld(after uint64) error {
	if floor := s.HistoryFloor(); after < floor {
		return fmt.Errorf("%w: changes after seqno %d asked, the oldest held are after %d", ErrSnapshotTooOld, after, floor)
	}
	return nil
}

// sortChanges orders changes by seqno, then key.
func sortChanges(cs []Change) {
	slices.SortFunc(cs, func(a, b Change) int {
		if c := cmp.Compare(a.Seqno, b.Seqno); c != 0 {
			return c
		}
		return bytes.Compare(a.Key, b.Key)
	})
}

// cutChanges keeps the changes of the oldest seqnos that together reach
// maxBytes, whole seqnos only (at least one), and returns them, the last
// seqno kept and their size.
func cutChanges(cs []Change, maxBytes int) ([]Change, uint64, int) {
	sortChanges(cs)
	size, i := 0, 0
	for i < len(cs) && (i == 0 || size < maxBytes) {
		size += len(cs[i].Key) + len(cs[i].Value) + changeOverhead
		i++
	}
	last := cs[i-1].Seqno
	for i < len(cs) && cs[i].Seqno == last {
		size += len(cs[i].Key) + len(cs[i].Value) + changeOverhead
		i++
	}
	clear(cs[i:])
	return cs[:i], last, size
}
