package txn

import (
	"errors"
	"fmt"
	"time"

	"github.com/galenadb/galena/storage"

	"go.uber.org/zap"
)

// Limits bound what one request may carry.
type Limits struct {
	MaxKeySize      int // bytes
	MaxValueSize    int // bytes
	MaxWriteSetSize int // bytes, encoded, read set included
	MaxScanBatch    int // key-values per Scan response
	// MaxReadSetSize bounds the read set of a serializable write-set: the
	// bytes of its keys and range bounds, and 8 more for each.
	MaxReadSetSize int
}

// DefaultLimits are the limits members use unless configured otherwise.
func DefaultLimits() Limits {
	return Limits{MaxKeySize: 4 << 10, MaxValueSize: 1 << 20, MaxWriteSetSize: 16 << 20, MaxScanBatch: 10000, MaxReadSetSize: 1 << 20}
}

// Config configures a Service.
type Config struct {
	Limits Limits
	// CausalWait bounds how long a request waits for this member to apply the
	// seqno it names (a snapshot or a session's min_seqno).
	CausalWait time.Duration
	// CommitTimeout bounds a commit on the server, whatever the client's
	// deadline.
	CommitTimeout time.Duration
	// Window is the certification window (seqnos); commits read at older
	// snapshots are refused early.
	Window uint64
	// MaxInflightCommits bounds the commits this member serves at once
	// (admission control): one more is refused at once with ErrOverloaded,
	// so a flood of commits costs the member a bounded amount of memory and
	// leaves it responsive to reads and status calls.
	MaxInflightCommits int
	// MaxInflightBytes bounds the bytes of the write-sets of the commits this
	// member serves at once, as MaxInflightCommits bounds their number: a
	// commit that would exceed it is refused at once with ErrOverloaded,
	// unless none is in flight. It must be at least Limits.MaxWriteSetSize.
	MaxInflightBytes int
	// WatchBuffer bounds the bytes of events a watch holds that it has not
	// sent yet; a watch whose client reads slower than the commits it
	// follows is cut with ErrWatchBehind when it fills up. It also sizes
	// the reads of history from storage.
	WatchBuffer int
	// MaxWatches bounds the watches open on this member at once; one more
	// is refused with ErrOverloaded. Each holds up to WatchBuffer bytes of
	// events, and a piece of history while it catches up.
	MaxWatches int
	// WatchProgress is how often an idle watch tells its client how far
	// it got (which also tells the client the member is alive), and checks
	// that the member is still primary. Clients take a member silent for
	// several of these to be gone: keep it at a second or less.
	WatchProgress time.Duration
	Logger        *zap.Logger
}

// DefaultMaxInflightCommits is the default Config.MaxInflightCommits.
const DefaultMaxInflightCommits = 1024

// DefaultMaxInflightBytes is the default Config.MaxInflightBytes: four
// write-sets of the default largest size.
const DefaultMaxInflightBytes = 64 << 20

// DefaultWatchBuffer and DefaultMaxWatches are the defaults of
// Config.WatchBuffer and Config.MaxWatches.
const (
	DefaultWatchBuffer = 1 << 20
	DefaultMaxWatches  = 10000
)

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Limits: DefaultLimits(), CausalWait: 5 * time.Second, CommitTimeout: 30 * time.Second,
		MaxInflightCommits: DefaultMaxInflightCommits, MaxInflightBytes: DefaultMaxInflightBytes,
		WatchBuffer: DefaultWatchBuffer, MaxWatches: DefaultMaxWatches, WatchProgress: time.Second}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	l := c.Limits
	switch {
	case l.MaxKeySize <= 0 || l.MaxValueSize <= 0 || l.MaxWriteSetSize <= 0 || l.MaxScanBatch <= 0 || l.MaxReadSetSize <= 0:
		return errors.New("txn: limits must be positive")
	case l.MaxKeySize > l.MaxWriteSetSize || l.MaxValueSize > l.MaxWriteSetSize:
		return errors.New("txn: key and value limits must not exceed the write-set limit")
	case l.MaxKeySize > storage.MaxKeySize:
		return fmt.Errorf("txn: MaxKeySize must not exceed storage's %d bytes", storage.MaxKeySize)
	case l.MaxValueSize > storage.MaxValueSize:
		return fmt.Errorf("txn: MaxValueSize must not exceed storage's %d bytes", storage.MaxValueSize)
	case c.CausalWait <= 0 || c.CommitTimeout <= 0 || c.WatchProgress <= 0:
		return errors.New("txn: CausalWait, CommitTimeout and WatchProgress must be positive")
	case c.WatchBuffer <= 0:
		return fmt.Errorf("txn: WatchBuffer must be positive, got %d", c.WatchBuffer)
	case c.MaxWatches <= 0:
		return fmt.Errorf("txn: MaxWatches must be positive, got %d", c.MaxWatches)
	case c.MaxInflightCommits <= 0:
		return fmt.Errorf("txn: MaxInflightCommits must be positive, got %d", c.MaxInflightCommits)
	case c.MaxInflightBytes < l.MaxWriteSetSize:
		return fmt.Errorf("txn: MaxInflightBytes (%d) must be at least MaxWriteSetSize (%d), so that the largest write-set fits",
			c.MaxInflightBytes, l.MaxWriteSetSize)
	}
	return nil
}
