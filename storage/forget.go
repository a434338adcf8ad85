package storage

// Forgetting. A delete stays a version of its key, and a write-set's id
// record stays, as long as certification may still ask for them: a
// write-set ordered at seqno N is refused if its snapshot is older than
// N - Window, and ids are deduplicated over the same window
// (certification.Config.Window). Below the applied seqno minus the window,
// a delete reads as an absent key to every read and every certification,
// and an id record is ignored: both can go.
//
// Retention (retain.go) cannot drop them: below the discard timestamp
// badger keeps a key's latest version, which is what a delete or an id
// record is. So ApplyBatch lists the batch's deletes and ids in a reap
// record, and each Sync that finds a reap record's seqno at or below the
// durable seqno minus Config.Window writes a badger delete marker at the
// very version of every entry it lists, and at the reap record's own.
// Reads see a marker as an absent key, as they saw the delete; once below
// the discard timestamp, compactions drop the marker with what it hides.
// (Two writes of one key at one version resolve in favour of the newer
// write; see the package comment.) Snapshot.WriteTo leaves out what is
// older than the window, whether or not a sync reaped it yet, and Import
// lists what it imports in reap records of its own.
//
// Reap records live in their own key space:
//
//	'x' + seqno (8 bytes, big-endian) + n (8 bytes, big-endian)
//
// at version seqno, the newest version the record lists; n is 0 for
// ApplyBatch (whose seqno is its last record's, unique) and the chunk
// number for Import. The value is a sequence of (uvarint version, uvarint
// length, internal key). A batch applied again after a restart writes its
// reap record again, perhaps batched differently; listing an entry twice is
// harmless, and every record of a batch above the durable state is
// rewritten with it.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

const (
	spaceReap   byte = 'x'
	reapKeySize      = 1 + 8 + 8
)

// reapList collects the deletes and id records a batch or an import chunk
// writes.
type reapList struct {
	newest uint64
	buf    []byte
}

func (l *reapList) add(ikey []byte, version uint64) {
	l.buf = binary.AppendUvarint(l.buf, version)
	l.buf = binary.AppendUvarint(l.buf, uint64(len(ikey)))
	l.buf = append(l.buf, ikey...)
	l.newest = max(l.newest, version)
}

// write adds the reap record numbered n to wb, if the list is not empty.
// wb refers to the list's buffer until it is flushed.
func (l *reapList) write(wb *badger.WriteBatch, n uint64) error {
	if len(l.buf) == 0 {
		return nil
	}
	key := make([]byte, reapKeySize)
	key[0] = spaceReap
	binary.BigEndian.PutUint64(key[1:], l.newest)
	binary.BigEndian.PutUint64(key[9:], n)
	return wb.SetEntryAt(badger.NewEntry(key, l.buf), l.newest)
}

// reset empties the list, keeping its buffer.
func (l *reapList) reset() { l.newest, l.buf = 0, l.buf[:0] }

// forEachReaped calls f with every entry a reap record's value lists.
func forEachReaped(v []byte, f func(ikey []byte, version uint64) error) error {
	for len(v) > 0 {
		version, n := binary.Uvarint(v)
		if n <= 0 {
			return errors.New("malformed version")
		}
		v = v[n:]
		size, n := binary.Uvarint(v)
		if n <= 0 || size > uint64(len(v)-n) {
			return errors.New("malformed key")
		}
		if err := f(v[n:n+int(size)], version); err != nil {
			return err
		}
		v = v[n+int(size):]
	}
	return nil
}

// forgotten reports whether an entry at version, a delete or an id record,
// is older than the window at seqno.
func (s *Store) forgotten(version, seqno uint64) bool {
	return s.window > 0 && seqno > s.window && version <= seqno-s.window
}

// reap writes delete markers over every delete and id record listed by a
// reap record at or below the durable seqno minus the window, and over
// those reap records. A sync calls it once the durable state moved; the
// caller holds mu and syncMu.
func (s *Store) reap() error {
	durable := s.durable.Load().Seqno
	if s.closed || !s.forgotten(0, durable) {
		return nil // nothing can be old enough yet
	}
	txn := s.db.NewTransactionAt(math.MaxUint64, false)
	defer txn.Discard()
	opts := badger.DefaultIteratorOptions
	opts.Prefix, opts.PrefetchValues = []byte{spaceReap}, false // it stops at the first record too new
	it := txn.NewIterator(opts)
	defer it.Close()
	wb := s.db.NewManagedWriteBatch()
	var records, entries int
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		key := item.Key()
		if len(key) != reapKeySize {
			wb.Cancel()
			return fmt.Errorf("storage: reap: malformed reap record key %x", key)
		}
		if !s.forgotten(binary.BigEndian.Uint64(key[1:]), durable) {
			break // records are in seqno order
		}
		err := item.Value(func(v []byte) error {
			return forEachReaped(v, func(ikey []byte, version uint64) error {
				entries++
				return wb.DeleteAt(bytes.Clone(ikey), version)
			})
		})
		if err == nil {
			err = wb.DeleteAt(item.KeyCopy(nil), item.Version())
		}
		if err != nil {
			wb.Cancel()
			return fmt.Errorf("storage: reap record at seqno %d: %w", item.Version(), err)
		}
		records++
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("storage: reap: %w", err)
	}
	if records > 0 {
		s.lg.Debug("forgot deletes and ids older than the window", zap.Int("entries", entries),
			zap.Int("reap_records", records), zap.Uint64("durable_seqno", durable))
	}
	return nil
}
