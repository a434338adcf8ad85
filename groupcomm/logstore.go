package groupcomm

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// closableLogStore is a durable Raft log and stable store.
type closableLogStore interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

// The log cache serves recent entries from memory when the leader
// replicates them, instead of reading them back from the log store. Entries
// larger than logCacheMaxEntry are not cached, which bounds the cache at
// logCacheSize × logCacheMaxEntry bytes (64 MiB) whatever the write-sets'
// sizes; the log store serves those from its memory-mapped segments.
const (
	logCacheSize     = 1024
	logCacheMaxEntry = 64 << 10
)

// openLogStore opens the durable Raft log in dir.
//
// raft-wal, not raft-boltdb: with one fsync per appended batch instead of
// two it stored batches 2–3× faster for 200 B–4 KiB entries and compacted
// 2–4× faster in logstore_bench_test.go, at equal read cost. It keeps
// 64 MiB segment files.
func openLogStore(dir string, lg hclog.Logger) (closableLogStore, *logCache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("groupcomm: log store: %w", err)
	}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(dir, wal.WithLogger(lg), wal.WithMetaStore(meta))
	if err != nil {
		meta.Close()
		return nil, nil, fmt.Errorf("groupcomm: open log store: %w", err)
	}
	s := &walStore{WAL: w, meta: meta}
	return s, newLogCache(logCacheSize, logCacheMaxEntry, s), nil
}

// walStore closes the WAL's metadata store too, which WAL.Close leaves open
// (and locked).
type walStore struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
}

func (s *walStore) Close() error {
	return errors.Join(s.WAL.Close(), s.meta.Close())
}

// GetLog reports entries below the first index as missing. raft-wal can
// still serve compacted entries from its tail segment, and raft then keeps
// replicating a log it has compacted instead of sending the snapshot the
// follower needs, which also leaves TrailingLogs without effect.
func (s *walStore) GetLog(idx uint64, l *raft.Log) error {
	first, err := s.WAL.FirstIndex()
	if err != nil {
		return err
	}
	if idx < first {
		return raft.ErrLogNotFound
	}
	return s.WAL.GetLog(idx, l)
}

// logCache is raft.LogCache without its large entries: a ring of recent
// entries indexed by seqno modulo its size.
type logCache struct {
	raft.LogStore
	maxEntry int

	// retaining (an arbitrator's) limits compaction to the entries below
	// keepFrom; see Group.RetainLog.
	retaining bool
	keepFrom  atomic.Uint64

	// stored, if set, is told the last index of each batch stored.
	stored func(index uint64)

	mu    sync.RWMutex
	cache []*raft.Log
}

func newLogCache(size, maxEntry int, store raft.LogStore) *logCache {
	return &logCache{LogStore: store, maxEntry: maxEntry, cache: make([]*raft.Log, size)}
}

func (c *logCache) GetLog(idx uint64, l *raft.Log) error {
	c.mu.RLock()
	cached := c.cache[idx%uint64(len(c.cache))]
	c.mu.RUnlock()
	if cached != nil && cached.Index == idx {
		*l = *cached
		return nil
	}
	return c.LogStore.GetLog(idx, l)
}

func (c *logCache) StoreLog(l *raft.Log) error { return c.StoreLogs([]*raft.Log{l}) }

func (c *logCache) StoreLogs(logs []*raft.Log) error {
	if err := c.LogStore.StoreLogs(logs); err != nil {
		return err
	}
	c.mu.Lock()
	for _, l := range logs {
		slot := &c.cache[l.Index%uint64(len(c.cache))]
		if len(l.Data) > c.maxEntry {
			*slot = nil // an older entry must not answer for this index
			continue
		}
		*slot = l
	}
	c.mu.Unlock()
	if c.stored != nil && len(logs) > 0 {
		c.stored(logs[len(logs)-1].Index)
	}
	return nil
}

// DeleteRange deletes entries lo through hi. On an arbitrator, a
// compaction (a range that ends before the last entry: raft's, after a
// snapshot) stops below keepFrom; a range that reaches the last entry (raft
// resetting the log under an installed snapshot, or dropping a conflicting
// tail) is deleted as asked.
func (c *logCache) DeleteRange(lo, hi uint64) error {
	if c.retaining {
		last, err := c.LogStore.LastIndex()
		if err != nil {
			return err
		}
		if hi < last {
			keep := c.keepFrom.Load()
			if keep <= lo {
				return nil // every entry asked for is to be kept
			}
			hi = min(hi, keep-1)
		}
	}
	c.mu.Lock()
	clear(c.cache)
	c.mu.Unlock()
	return c.LogStore.DeleteRange(lo, hi)
}

// IsMonotonic passes raft-wal's promise on: it never has gaps.
func (c *logCache) IsMonotonic() bool {
	m, ok := c.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}
