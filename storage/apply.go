package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/dgraph-io/badger/v4"
)

// Write is one put (Delete false) or delete (Delete true; Value is ignored).
type Write struct {
	Key, Value []byte
	Delete     bool
}

// Record is the outcome of one ordered write-set.
type Record struct {
	// Seqno is the write-set's seqno; its writes become versions at Seqno.
	Seqno uint64
	// ID is the write-set id. When non-empty, Outcome is stored under it for
	// duplicate detection (LookupID).
	ID []byte
	// Outcome is opaque (certification's encoding of the verdict).
	Outcome []byte
	// Writes is nil when the write-set aborted. If it writes a key twice, the
	// last write wins.
	Writes []Write
}

// AppliedState describes what the store holds. It is stored atomically with
// the data it describes.
type AppliedState struct {
	// Seqno is the highest seqno applied.
	Seqno uint64
	// MinReadable: reads at snapshots below it fail with ErrSnapshotTooOld.
	// Import sets it to the imported seqno; it is 0 otherwise.
	MinReadable uint64
	// Meta is opaque to storage (certification keeps a running digest here).
	Meta []byte
}

func (st *AppliedState) clone() AppliedState {
	c := *st
	c.Meta = bytes.Clone(st.Meta)
	return c
}

// Applied-state record encoding: format byte, Seqno, MinReadable, Meta.
const (
	appliedFormat  byte = 1
	appliedHdrSize      = 1 + 8 + 8
)

func encodeApplied(st *AppliedState) []byte {
	b := make([]byte, appliedHdrSize, appliedHdrSize+len(st.Meta))
	b[0] = appliedFormat
	binary.BigEndian.PutUint64(b[1:], st.Seqno)
	binary.BigEndian.PutUint64(b[9:], st.MinReadable)
	return append(b, st.Meta...)
}

func decodeApplied(b []byte) (*AppliedState, error) {
	if len(b) < appliedHdrSize || b[0] != appliedFormat {
		return nil, fmt.Errorf("malformed applied-state record (%d bytes)", len(b))
	}
	st := &AppliedState{
		Seqno:       binary.BigEndian.Uint64(b[1:]),
		MinReadable: binary.BigEndian.Uint64(b[9:]),
	}
	if len(b) > appliedHdrSize {
		st.Meta = bytes.Clone(b[appliedHdrSize:])
	}
	return st, nil
}

// ApplyBatch applies recs in slice order and sets the applied state to st.
//
// Seqnos must be strictly increasing and above Applied().Seqno, and
// st.Seqno must be above Applied().Seqno and at least the last record's seqno
// (it may be larger: Raft's own entries leave gaps). st.MinReadable is
// ignored: the store raises it to keep Config.Retain seqnos readable (see
// retain.go), and Import sets it. An invalid batch returns
// ErrInvalidBatch and writes nothing. Any other error (badger I/O) may leave
// writes above Applied().Seqno partially present, which is harmless (see the
// package comment); the caller should stop rather than continue.
//
// Crash safety: all data is in badger's log before the applied record is
// written, and neither is synced here: after a machine restart the store
// starts from its durable state (see Sync), and re-applying the same records
// at the same seqnos is harmless.
func (s *Store) ApplyBatch(recs []Record, st AppliedState) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	cur := s.applied.Load()
	if err := s.validateBatch(recs, st.Seqno, cur.Seqno); err != nil {
		return err
	}
	now := s.now()
	s.aged.note(now, cur.Seqno)
	next := &AppliedState{Seqno: st.Seqno, MinReadable: s.minReadableAfter(cur.MinReadable, st.Seqno, now), Meta: bytes.Clone(st.Meta)}
	if len(recs) > 0 {
		if err := s.writeRecords(recs); err != nil {
			return fmt.Errorf("storage: apply seqnos %d..%d: %w", recs[0].Seqno, recs[len(recs)-1].Seqno, err)
		}
	}
	if err := s.writeApplied(next); err != nil {
		return fmt.Errorf("storage: apply state at seqno %d: %w", next.Seqno, err)
	}
	s.applied.Store(next)
	s.kickSync(next.Seqno)
	return nil
}

// validateBatch checks everything ApplyBatch could reject, before any write.
func (s *Store) validateBatch(recs []Record, stSeqno, applied uint64) error {
	prev := applied
	for i := range recs {
		r := &recs[i]
		if r.Seqno <= prev {
			return fmt.Errorf("%w: record %d has seqno %d, not above %d", ErrInvalidBatch, i, r.Seqno, prev)
		}
		prev = r.Seqno
		if len(r.ID) > MaxKeySize {
			return fmt.Errorf("%w: seqno %d: id of %d bytes", ErrInvalidBatch, r.Seqno, len(r.ID))
		}
		if int64(len(r.Outcome)) > s.maxValue {
			return fmt.Errorf("%w: seqno %d: outcome of %d bytes", ErrInvalidBatch, r.Seqno, len(r.Outcome))
		}
		for j := range r.Writes {
			if err := s.validateWrite(&r.Writes[j]); err != nil {
				return fmt.Errorf("%w: seqno %d write %d: %v", ErrInvalidBatch, r.Seqno, j, err)
			}
		}
	}
	if stSeqno < prev || stSeqno <= applied {
		return fmt.Errorf("%w: applied seqno %d below last record %d or not above applied %d",
			ErrInvalidBatch, stSeqno, prev, applied)
	}
	return nil
}

func (s *Store) validateWrite(w *Write) error {
	switch {
	case len(w.Key) == 0:
		return fmt.Errorf("empty key")
	case len(w.Key) > MaxKeySize:
		return fmt.Errorf("key of %d bytes exceeds %d", len(w.Key), MaxKeySize)
	case !w.Delete && int64(len(w.Value)) > s.maxValue:
		return fmt.Errorf("value of %d bytes exceeds %d", len(w.Value), s.maxValue)
	}
	return nil
}

// writeRecords writes every record's id outcome and writes at its seqno and
// returns once they are all in badger's log. One managed WriteBatch packs
// many records per badger transaction and splits oversized ones by itself;
// the caller writes the applied record only after this returns.
func (s *Store) writeRecords(recs []Record) error {
	wb := s.db.NewManagedWriteBatch()
	var reap *reapList
	if s.window > 0 {
		reap = &s.reaps // its last batch was flushed: its buffer is free
		reap.reset()
	}
	for i := range recs {
		if err := addRecord(wb, &recs[i], reap); err != nil {
			wb.Cancel()
			return err
		}
	}
	if reap != nil {
		if err := reap.write(wb, 0); err != nil {
			wb.Cancel()
			return err
		}
	}
	return wb.Flush()
}

// addRecord adds r's entries to wb, and its deletes and id to reap unless
// reap is nil.
func addRecord(wb *badger.WriteBatch, r *Record, reap *reapList) error {
	if len(r.ID) > 0 {
		k := internalKey(spaceID, r.ID)
		if err := wb.SetEntryAt(badger.NewEntry(k, r.Outcome), r.Seqno); err != nil {
			return err
		}
		if reap != nil {
			reap.add(k, r.Seqno)
		}
	}
	for j := range r.Writes {
		e := dataEntry(&r.Writes[j])
		if err := wb.SetEntryAt(e, r.Seqno); err != nil {
			return err
		}
		if reap != nil && r.Writes[j].Delete {
			reap.add(e.Key, r.Seqno)
		}
	}
	return nil
}

// dataEntry returns the badger entry for w. The entry refers to w.Value, so w
// must not change until the batch is flushed.
func dataEntry(w *Write) *badger.Entry {
	k := internalKey(spaceData, w.Key)
	if w.Delete {
		return badger.NewEntry(k, nil).WithMeta(metaTombstone)
	}
	return badger.NewEntry(k, w.Value)
}

// writeApplied writes the applied-state record in its own transaction and
// waits for it.
func (s *Store) writeApplied(st *AppliedState) error {
	txn := s.db.NewTransactionAt(math.MaxUint64, true)
	defer txn.Discard()
	if err := txn.Set(appliedKey, encodeApplied(st)); err != nil {
		return err
	}
	return txn.CommitAt(appliedVersion, nil)
}
