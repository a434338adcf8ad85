package storage

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"go.uber.org/zap"
)

// Badger tuning: modest memory, versions below the retention window
// discarded (retain.go) and their value-log space collected (vlog.go), no
// fsync per write (the Raft log is the durable record until Sync; see the
// package comment), no badger-level conflict detection (certification
// decides conflicts).
//
// Memtables are 8 MiB: while one is flushed, its arena, the next one's and
// the table being built are all on the heap, and with 32 MiB memtables that
// burst dominated a member's peak memory. Applying batches was as fast
// (BenchmarkApplyBatch 64.0k records/s at 32 MiB, 62.2k at 8 MiB, p=0.69).
const (
	defaultMemTableSize = 8 << 20
	numMemtables        = 3
	// No block cache: tables are neither compressed nor encrypted, so a
	// block is read straight from the table's file mapping, and the cache
	// only added its own bookkeeping and up to its size in memory
	// (BenchmarkGet 6.5 µs and 20 allocations with a 64 MiB cache, 4.4 µs
	// and 15 without, p=0.002).
	blockCacheSize = 0
	numCompactors  = 2
	valueThreshold = 4 << 10
)

// DefaultSyncEvery is the default Config.SyncEvery. A sync costs a few
// fsyncs, off the apply path; at it, a restart after a power loss re-applies
// at most a fraction of a second's worth of batches.
const DefaultSyncEvery = 8192

// Config configures a Store. The zero value, with Dir set, is valid.
type Config struct {
	// Dir is the data directory (badger's files live directly in it). It is
	// required unless InMemory is set, and must be empty if it is.
	Dir string
	// InMemory keeps everything in memory (tests). Values are then limited to
	// badger's value threshold (1 MiB).
	InMemory bool
	// Logger receives the store's logs and badger's own (badger's Info
	// messages at Debug level). Nil means zap.NewNop().
	Logger *zap.Logger
	// SyncEvery is how many seqnos may be applied beyond the durable state
	// before the store syncs in the background (see Sync): after a power
	// loss, the caller re-applies at most about that many seqnos from its
	// log. Zero means DefaultSyncEvery.
	SyncEvery uint64
	// Retain is how many seqnos of history below the applied seqno stay
	// readable; older versions are discarded (see retain.go). Zero means
	// DefaultRetain.
	Retain uint64
	// RetainAge keeps history readable for at least this long too,
	// whatever Retain: a version stays readable while it is among the last
	// Retain seqnos or was current less than RetainAge ago. Zero means no
	// age bound; DefaultConfig sets DefaultRetainAge.
	RetainAge time.Duration
	// Window is the certification window (certification.Config.Window):
	// deletes and write-set id records older than the applied seqno minus
	// Window are forgotten (see forget.go). Zero keeps them forever.
	Window uint64

	// memTableSize overrides the memtable size; tests shrink it to force
	// flushes to SSTables. Zero means defaultMemTableSize.
	memTableSize int64
	// valueLogFileSize overrides badger's value-log file size; tests shrink
	// it to have several files. Zero means badger's (1 GiB).
	valueLogFileSize int64
}

// DefaultConfig returns the default configuration. Callers must still set Dir
// or InMemory.
func DefaultConfig() Config {
	return Config{Retain: DefaultRetain, RetainAge: DefaultRetainAge}
}

// Validate reports whether c can be used to open a Store.
func (c Config) Validate() error {
	switch {
	case c.InMemory && c.Dir != "":
		return errors.New("storage: config: Dir must be empty when InMemory is set")
	case !c.InMemory && c.Dir == "":
		return errors.New("storage: config: Dir is required unless InMemory is set")
	case c.memTableSize < 0:
		return errors.New("storage: config: negative memtable size")
	case c.RetainAge < 0:
		return fmt.Errorf("storage: config: RetainAge %v is negative", c.RetainAge)
	}
	return nil
}

func (c Config) retain() uint64 {
	if c.Retain == 0 {
		return DefaultRetain
	}
	return c.Retain
}

func (c Config) syncEvery() uint64 {
	if c.SyncEvery == 0 {
		return DefaultSyncEvery
	}
	return c.SyncEvery
}

// badgerOptions translates c into badger options; lg is the store's logger.
func (c Config) badgerOptions(lg *zap.Logger) badger.Options {
	mem := c.memTableSize
	if mem == 0 {
		mem = defaultMemTableSize
	}
	opts := badger.DefaultOptions(c.Dir)
	if c.valueLogFileSize > 0 {
		opts.ValueLogFileSize = c.valueLogFileSize
	}
	if !c.InMemory {
		// Values over valueThreshold go to the value log, keys and small
		// values stay in the LSM tree: memtables, flushes and compactions
		// then handle pointers, not large values, which keeps memory flat
		// whatever the values' sizes (importing a 200 MiB snapshot of
		// 64 KiB values peaked at 0.3 GiB of RSS this way, 0.7 GiB inline).
		opts.ValueThreshold = valueThreshold
	}
	if maxBatch := mem * 15 / 100; opts.ValueThreshold > maxBatch/2 {
		// Only small test memtables: badger requires the threshold to be
		// below its maximum batch size (15% of the memtable).
		opts.ValueThreshold = maxBatch / 2
	}
	return opts.
		WithInMemory(c.InMemory).
		WithLogger(badgerLogger{lg.Named("badger").Sugar()}).
		WithSyncWrites(false).
		WithNumVersionsToKeep(1). // below the discard timestamp; see retain.go
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithCompression(options.None).
		WithMemTableSize(mem).
		WithNumMemtables(numMemtables).
		WithBlockCacheSize(blockCacheSize).
		WithNumCompactors(numCompactors)
}

// maxValueSize is the largest value badger accepts with opts.
func maxValueSize(opts badger.Options) int64 {
	if opts.InMemory {
		return opts.ValueThreshold
	}
	return opts.ValueLogFileSize
}

// badgerLogger routes badger's logger into zap. Badger's Info messages are
// chatty (compactions, flushes), so they go to Debug.
type badgerLogger struct{ s *zap.SugaredLogger }

func (l badgerLogger) Errorf(f string, args ...any)   { l.s.Errorf(trimNL(f), args...) }
func (l badgerLogger) Warningf(f string, args ...any) { l.s.Warnf(trimNL(f), args...) }
func (l badgerLogger) Infof(f string, args ...any)    { l.s.Debugf(trimNL(f), args...) }
func (l badgerLogger) Debugf(f string, args ...any)   { l.s.Debugf(trimNL(f), args...) }

func trimNL(f string) string { return strings.TrimRight(f, "\n") }
