package storage

import (
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// Values over valueThreshold live in badger's value log, not in the LSM
// tree: discarding their versions (retain.go) drops the pointers, and the
// space stays in the value-log files until a file is rewritten without
// them. Every vlogGCEvery the store rewrites the files that compactions
// found at least vlogDiscardRatio discarded, one after another, until none
// is left (badger's RunValueLogGC). Badger never rewrites the file being
// written.
const (
	vlogGCEvery      = time.Minute
	vlogDiscardRatio = 0.5
)

// collectValueLog rewrites the value-log files mostly discarded and
// returns how many it rewrote.
func (s *Store) collectValueLog() (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed || s.dir == "" {
		return 0, nil
	}
	n := 0
	for {
		err := s.db.RunValueLogGC(vlogDiscardRatio)
		switch {
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return n, nil
		case err != nil:
			return n, fmt.Errorf("storage: value log GC: %w", err)
		}
		n++
	}
}

// logValueLogGC runs collectValueLog and logs what it did.
func (s *Store) logValueLogGC() {
	start := time.Now()
	n, err := s.collectValueLog()
	switch {
	case err != nil:
		s.lg.Warn("value log GC failed", zap.Int("files_rewritten", n), zap.Error(err))
	case n > 0:
		s.lg.Debug("value log GC", zap.Int("files_rewritten", n), zap.Duration("took", time.Since(start)))
	}
}
