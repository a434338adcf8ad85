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

// collectValueLog rewrites the value-log files mostly discarded, one at a
// time, until none is left or Close begins, and returns how many it
// rewrote. It holds mu for one file at a time, so that Close and Import
// wait for one rewrite at most.
func (s *Store) collectValueLog() (int, error) {
	for n := 0; ; n++ {
		select {
		case <-s.stopLoop:
			return n, nil
		default:
		}
		done, err := s.collectOne()
		if done || err != nil {
			return n, err
		}
	}
}

// collectOne rewrites one value-log file if one is mostly discarded; done
// is true when none was.
func (s *Store) collectOne() (done bool, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed || s.dir == "" {
		return true, nil
	}
	err = s.db.RunValueLogGC(vlogDiscardRatio)
	switch {
	case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
		return true, nil
	case err != nil:
		return true, fmt.Errorf("storage: value log GC: %w", err)
	}
	return false, nil
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
