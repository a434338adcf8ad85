package storage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

const (
	// importChunk is how many key and value bytes Import buffers before it
	// flushes them to badger, which bounds its memory.
	importChunk = 4 << 20
	// importMarkerName is the file that brackets an Import on disk.
	importMarkerName = "galena-import-in-progress"
)

// Snapshot is a consistent point-in-time view of the store at the applied
// state current when it was taken. It is cheap: it pins a seqno, and no
// version it sees is discarded until Release. A Snapshot is invalidated by
// Import and by Close.
type Snapshot struct {
	s        *Store
	state    AppliedState
	gen      uint64
	released atomic.Bool
}

// Snapshot pins the current applied state. Call it from the goroutine that
// calls ApplyBatch so that the state it pins is the one that goroutine last
// applied. It returns ErrClosed after Close.
func (s *Store) Snapshot() (*Snapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	st := s.applied.Load().clone()
	s.pin(st.Seqno) // its versions stay until Release
	return &Snapshot{s: s, state: st, gen: s.gen}, nil
}

// State returns the applied state the snapshot pins.
func (sn *Snapshot) State() AppliedState {
	return sn.state.clone()
}

// Release releases the snapshot; WriteTo then fails. It is idempotent.
func (sn *Snapshot) Release() {
	if sn.released.CompareAndSwap(false, true) {
		sn.s.unpin(sn.state.Seqno)
	}
}

// usable reports whether the snapshot can still be read. The caller holds
// the store's mu.
func (sn *Snapshot) usable() error {
	switch {
	case sn.s.closed:
		return ErrClosed
	case sn.released.Load():
		return fmt.Errorf("%w: snapshot released", ErrClosed)
	case sn.gen != sn.s.gen:
		return fmt.Errorf("%w: snapshot at seqno %d was taken before an import", ErrSnapshotTooOld, sn.state.Seqno)
	}
	return nil
}

// WriteTo streams the snapshot's full state to w in the format described in
// the package comment, buffered, in memory independent of the data size. It
// returns the number of bytes written. It may run concurrently with
// ApplyBatch and reads; Import and Close wait for it to finish.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	s := sn.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := sn.usable(); err != nil {
		return 0, err
	}
	sw := newStreamWriter(w)
	sw.header(&sn.state)
	count, err := s.exportEntries(sw, sn.state.Seqno)
	if err == nil {
		err = sw.trailer(count)
	}
	if err != nil {
		return sw.n, fmt.Errorf("storage: export at seqno %d: %w", sn.state.Seqno, err)
	}
	return sw.n, nil
}

// exportEntries writes the latest version at or below seqno of every user key
// and id record, in key order, and returns how many it wrote. Deletes and id
// records older than the window are left out.
func (s *Store) exportEntries(sw *streamWriter, seqno uint64) (uint64, error) {
	txn := s.db.NewTransactionAt(seqno, false)
	defer txn.Discard()
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()
	var n uint64
	for it.Rewind(); it.Valid() && sw.err == nil; it.Next() {
		item := it.Item()
		key := item.Key()
		if key[0] != spaceData && key[0] != spaceID {
			continue
		}
		var flags byte
		if item.UserMeta()&metaTombstone != 0 {
			flags = flagTombstone
		}
		if (flags&flagTombstone != 0 || key[0] == spaceID) && s.forgotten(item.Version(), seqno) {
			continue // older than the window: see forget.go
		}
		err := item.Value(func(v []byte) error {
			sw.entry(key, item.Version(), flags, v)
			return nil
		})
		if err != nil {
			return n, err
		}
		n++
	}
	return n, sw.err
}

// Import replaces the whole contents of the store with a stream written by
// Snapshot.WriteTo, keeping every entry's version, and sets the applied state
// to the stream's with MinReadable = its Seqno. It returns that state.
//
// If the stream's header is invalid, Import returns ErrBadSnapshot and changes
// nothing. A later failure (truncation, corruption, checksum mismatch:
// ErrBadSnapshot; or an error of r or badger) leaves the store empty with
// Applied().Seqno == 0, never half-imported. A crash during Import has the
// same effect once the store is reopened. Import waits for calls in flight
// and blocks all other calls while it runs; Snapshots taken before it fail
// afterwards with ErrSnapshotTooOld.
func (s *Store) Import(r io.Reader) (AppliedState, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return AppliedState{}, ErrClosed
	}
	sr := newStreamReader(r)
	st, err := sr.header()
	if err != nil {
		return AppliedState{}, sr.classify(err)
	}
	st.MinReadable = st.Seqno
	if err := s.beginImport(); err != nil {
		return AppliedState{}, err
	}
	count, err := s.importEntries(sr, st.Seqno)
	if err == nil {
		err = s.finishImport(&st)
	}
	if err != nil {
		s.abortImport(err)
		return AppliedState{}, err
	}
	s.lg.Info("imported snapshot", zap.Uint64("seqno", st.Seqno), zap.Uint64("entries", count))
	return st.clone(), nil
}

// beginImport marks the import on disk, then drops everything. The caller
// holds mu exclusively.
func (s *Store) beginImport() error {
	if err := s.setImportMarker(); err != nil {
		return err
	}
	s.gen++
	s.setState(&AppliedState{})
	s.forgetRetention()
	return s.dropAll()
}

// forgetRetention resets what retention knows of the replaced contents:
// the discard timestamp (the new contents may have versions below it) and
// the age samples (of seqnos that no longer mean anything). The caller
// holds applyMu and mu exclusively.
func (s *Store) forgetRetention() {
	s.syncMu.Lock()
	s.db.SetDiscardTs(0)
	s.discardTs = 0
	s.syncMu.Unlock()
	s.aged.samples = nil
}

// setState sets the applied and durable states to st, after Import changed
// the whole store. The caller holds mu exclusively.
func (s *Store) setState(st *AppliedState) {
	s.applied.Store(st)
	s.durable.Store(st)
}

// importEntries writes the stream's entries in chunks and checks its trailer.
func (s *Store) importEntries(sr *streamReader, seqno uint64) (uint64, error) {
	cw := &chunkWriter{db: s.db, window: s.window}
	defer cw.cancel()
	count, err := readEntries(sr, seqno, s.maxValue, func(e *streamEntry) error {
		if err := cw.add(e); err != nil {
			return fmt.Errorf("storage: import: %w", err)
		}
		return nil
	})
	if err != nil {
		return count, err
	}
	if err := cw.flush(); err != nil {
		return count, fmt.Errorf("storage: import: %w", err)
	}
	return count, nil
}

// readEntries reads the entries after the stream's header up to its
// trailer, checks each (values up to maxValue) and hands it to add, then
// checks the trailer. It returns how many entries it read.
func readEntries(sr *streamReader, seqno uint64, maxValue int64, add func(*streamEntry) error) (uint64, error) {
	var (
		prev  []byte
		count uint64
	)
	for {
		e, end, err := sr.next(maxValue)
		if err != nil {
			return count, sr.classify(err)
		}
		if end {
			break
		}
		if err := checkEntry(&e, prev, seqno); err != nil {
			return count, err
		}
		if err := add(&e); err != nil {
			return count, err
		}
		prev, count = e.key, count+1
	}
	if err := sr.trailer(count); err != nil {
		return count, sr.classify(err)
	}
	return count, nil
}

// chunkWriter writes imported entries, each at its own version, through
// managed WriteBatches flushed every importChunk bytes, so memory stays
// bounded whatever the stream's size. With a window, each chunk lists its
// deletes and id records in reap records (see forget.go), one per
// sixteenth of the window their versions fall in, so that each is
// forgotten soon after it ages out.
type chunkWriter struct {
	db      *badger.DB
	wb      *badger.WriteBatch
	pending int
	window  uint64
	lists   map[uint64]*reapList // by version / (window/16)
	chunks  uint64
}

func (c *chunkWriter) add(e *streamEntry) error {
	if c.wb == nil {
		c.wb = c.db.NewManagedWriteBatch()
	}
	if err := c.wb.SetEntryAt(importEntry(e), e.version); err != nil {
		return err
	}
	if c.window > 0 && (e.flags&flagTombstone != 0 || e.key[0] == spaceID) {
		c.list(e.version).add(e.key, e.version)
	}
	if c.pending += len(e.key) + len(e.value); c.pending >= importChunk {
		return c.flush()
	}
	return nil
}

// flush waits until everything added is written.
func (c *chunkWriter) flush() error {
	if c.wb == nil {
		return nil
	}
	c.chunks++
	var err error
	for _, b := range slices.Sorted(maps.Keys(c.lists)) {
		if err = c.lists[b].write(c.wb, c.chunks); err != nil {
			break
		}
	}
	if err == nil {
		err = c.wb.Flush()
	} else {
		c.wb.Cancel()
	}
	c.wb, c.pending, c.lists = nil, 0, nil
	return err
}

// list is the reap list for entries at version.
func (c *chunkWriter) list(version uint64) *reapList {
	b := version / max(1, c.window/16)
	if c.lists == nil {
		c.lists = make(map[uint64]*reapList)
	}
	if c.lists[b] == nil {
		c.lists[b] = &reapList{}
	}
	return c.lists[b]
}

// cancel abandons unflushed entries (already committed chunks stay).
func (c *chunkWriter) cancel() {
	if c.wb != nil {
		c.wb.Cancel()
		c.wb = nil
	}
}

func importEntry(e *streamEntry) *badger.Entry {
	if e.flags&flagTombstone != 0 {
		return badger.NewEntry(e.key, nil).WithMeta(metaTombstone)
	}
	return badger.NewEntry(e.key, e.value)
}

// finishImport writes the applied record last, makes everything durable,
// records it as the durable state and removes the marker.
func (s *Store) finishImport(st *AppliedState) error {
	if err := s.writeApplied(st); err != nil {
		return fmt.Errorf("storage: import: write applied state: %w", err)
	}
	if err := s.syncData(); err != nil {
		return fmt.Errorf("storage: import: %w", err)
	}
	if err := s.writeDurable(st); err != nil {
		return fmt.Errorf("storage: import: record durable state: %w", err)
	}
	if err := s.clearImportMarker(); err != nil {
		return err
	}
	s.setState(st)
	return nil
}

// abortImport empties the store after a failed import. Until the marker is
// removed, the durable state on disk may still be the replaced store's: it
// is recorded as the empty store's first.
func (s *Store) abortImport(cause error) {
	empty := &AppliedState{}
	s.setState(empty)
	s.lg.Warn("import failed; emptying the store", zap.Error(cause))
	if err := s.dropAll(); err != nil {
		// The marker stays, so the next Open empties the store.
		s.lg.Error("cannot empty the store after a failed import", zap.Error(err))
		return
	}
	if err := s.writeDurable(empty); err != nil {
		s.lg.Error("cannot record the empty store's durable state", zap.Error(err))
		return
	}
	if err := s.clearImportMarker(); err != nil {
		s.lg.Error("cannot remove the import marker", zap.Error(err))
	}
}

func (s *Store) dropAll() error {
	if err := s.db.DropAll(); err != nil {
		return fmt.Errorf("storage: drop all: %w", err)
	}
	return nil
}

// The import marker is a file in Dir; in-memory stores need none.

func (s *Store) importMarked() (bool, error) {
	if s.dir == "" {
		return false, nil
	}
	_, err := os.Stat(filepath.Join(s.dir, importMarkerName))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("storage: import marker: %w", err)
}

func (s *Store) setImportMarker() error {
	if s.dir == "" {
		return nil
	}
	f, err := os.Create(filepath.Join(s.dir, importMarkerName))
	if err == nil {
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		return fmt.Errorf("storage: import marker: %w", err)
	}
	return nil
}

func (s *Store) clearImportMarker() error {
	if err := s.removeFile(importMarkerName); err != nil {
		return fmt.Errorf("storage: import marker: %w", err)
	}
	return nil
}

// removeFile removes the file name from Dir, durably; a missing file is no
// error.
func (s *Store) removeFile(name string) error {
	if s.dir == "" {
		return nil
	}
	err := os.Remove(filepath.Join(s.dir, name))
	if err == nil {
		err = syncDir(s.dir)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Verify reads a stream written by Snapshot.WriteTo to its end and checks
// it as Import would (format, key order, versions, checksum), writing
// nothing. It returns the stream's applied state and how many entries it
// holds, or ErrBadSnapshot (or r's error) for a stream Import would refuse.
func Verify(r io.Reader) (AppliedState, uint64, error) {
	sr := newStreamReader(r)
	st, err := sr.header()
	if err != nil {
		return AppliedState{}, 0, sr.classify(err)
	}
	count, err := readEntries(sr, st.Seqno, MaxValueSize, func(*streamEntry) error { return nil })
	if err != nil {
		return AppliedState{}, count, err
	}
	return st, count, nil
}
