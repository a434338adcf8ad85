package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/galenadb/galena/internal/atomicfile"
	"go.uber.org/zap"
)

const (
	// durableFileName is the file in Dir that records the durable state.
	durableFileName = "galena-durable"
	// bootFileName is the file in Dir that records the boot of the kernel
	// the store was last opened under.
	bootFileName = "galena-boot"
	// memLogExt names badger's memtable write-ahead logs in Dir.
	memLogExt = ".mem"
)

// Sync makes every batch applied so far durable, then records the applied
// state of that moment (seqno, MinReadable and Meta) as the durable state,
// which Open starts from after a machine restart. It costs a few fsyncs and runs concurrently with
// ApplyBatch and reads; Syncs are serialised, and one with nothing new to
// sync returns at once. The store also syncs by itself every
// Config.SyncEvery seqnos, at the end of Import and on Close.
//
// If the disk fails to write, Sync returns an error, and so does every
// later Sync: the durable state stays where it was, since a later fsync
// could succeed without the pages that failed, and the next Open starts
// from it.
// After Close it returns ErrClosed.
func (s *Store) Sync() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.sync()
}

// Durable returns the durable state: the applied state as of the last Sync
// (or Import, or Open), all of whose data is on disk. It is cheap (no I/O,
// no lock) and still answers after Close.
func (s *Store) Durable() AppliedState {
	return s.durable.Load().clone()
}

// sync is Sync. The caller holds mu, shared or exclusive.
func (s *Store) sync() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	st := s.applied.Load()
	if st == s.durable.Load() {
		s.discard() // a pin may have gone
		return nil  // nothing applied since
	}
	if err := s.syncData(); err != nil {
		return err
	}
	if err := s.writeDurable(st); err != nil {
		return fmt.Errorf("storage: record durable state at seqno %d: %w", st.Seqno, err)
	}
	s.durable.Store(st)
	s.discard()
	if err := s.reap(); err != nil {
		// Nothing durable depends on it: the next sync tries again.
		s.lg.Warn("forgetting deletes and ids failed; the next sync tries again", zap.Error(err))
	}
	return nil
}

// syncData makes every write badger has accepted durable. badger's Sync
// covers the active memtable's log and the value log (badger syncs a value
// log file itself when it moves on to the next); the logs of memtables
// waiting to be flushed are synced here, since badger does not sync a
// memtable's log when it starts the next one. (A flush writes the memtable
// to a synced table, then deletes its log.)
//
// A failure is final (see Sync). The caller holds syncMu, or mu
// exclusively.
func (s *Store) syncData() error {
	if s.syncErr != nil {
		return s.syncErr
	}
	if s.dir == "" {
		return nil // in memory: nothing to sync
	}
	err := s.db.Sync()
	if err == nil {
		_, err = syncMemLogs(s.dir)
	}
	if err != nil {
		s.syncErr = fmt.Errorf("storage: sync: %w", err)
		s.lg.Error("cannot sync storage to disk; the durable state stays at its seqno until a restart",
			zap.Uint64("durable_seqno", s.durable.Load().Seqno), zap.Error(err))
		// The page cache may have dropped what it failed to write: a
		// restart must not trust it (see startState).
		if rerr := s.removeFile(bootFileName); rerr != nil {
			s.lg.Error("cannot forget the boot the store was opened under", zap.Error(rerr))
		}
		return s.syncErr
	}
	return nil
}

// syncMemLogs fsyncs every memtable log in dir, then dir, and returns how
// many logs it synced. A log deleted meanwhile was flushed to a table.
// (On Linux an fsync writes back the file's pages dirtied through badger's
// mapping too: msync is implemented as fsync of the range.)
func syncMemLogs(dir string) (int, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*"+memLogExt))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, name := range names {
		err := syncFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, syncDir(dir)
}

func syncFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// writeDurable records st as the durable state, atomically and durably.
func (s *Store) writeDurable(st *AppliedState) error {
	if s.dir == "" {
		return nil
	}
	return atomicfile.Write(filepath.Join(s.dir, durableFileName), encodeApplied(st), 0o644, true)
}

// loadDurable reads the durable state; ok is false if none is recorded (a
// new store, or one last opened before durable states were recorded).
func (s *Store) loadDurable() (st *AppliedState, ok bool, err error) {
	if s.dir == "" {
		return nil, false, nil
	}
	b, err := os.ReadFile(filepath.Join(s.dir, durableFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err == nil {
		st, err = decodeApplied(b)
	}
	if err != nil {
		return nil, false, fmt.Errorf("storage: read durable state: %w", err)
	}
	return st, true, nil
}

// removeDurable forgets the durable state (the store was emptied).
func (s *Store) removeDurable() error {
	if err := s.removeFile(durableFileName); err != nil {
		return fmt.Errorf("storage: remove durable state: %w", err)
	}
	return nil
}

// syncLoop syncs whenever ApplyBatch finds the applied state SyncEvery
// seqnos past the durable one, and collects the value log every
// vlogGCEvery (vlog.go), until Close stops it. A sync's errors are logged
// by syncData, once.
func (s *Store) syncLoop() {
	defer close(s.loopDone)
	t := time.NewTicker(vlogGCEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stopLoop:
			return
		case <-s.kick:
			_ = s.Sync() // logged by syncData
		case <-t.C:
			s.logValueLogGC()
		}
	}
}

// kickSync asks syncLoop to sync if the applied state at seqno is far
// enough past the durable one. It never blocks.
func (s *Store) kickSync(seqno uint64) {
	if seqno-s.durable.Load().Seqno < s.syncEvery {
		return
	}
	select {
	case s.kick <- struct{}{}:
	default: // a sync is already due
	}
}

// stopSyncLoop stops syncLoop and waits for it. It is idempotent.
func (s *Store) stopSyncLoop() {
	s.stopOnce.Do(func() { close(s.stopLoop) })
	<-s.loopDone
}
