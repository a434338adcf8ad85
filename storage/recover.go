package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/galenadb/galena/internal/atomicfile"
	"go.uber.org/zap"
)

// bootIDPath names the running kernel's boot: it changes when the machine
// restarts, and with it whatever the page cache held.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// startState picks the state Open starts from, given the applied-state
// record, makes it durable and records it as the durable state, and records
// the running boot.
//
// The applied record is good if the store was last open under the running
// kernel (only its process died; the page cache holds every write it made),
// or if no durable state is recorded (a new store, or one last opened
// before durable states were). Otherwise the machine restarted since, and
// writes above the durable state may be lost: the store starts from the
// durable state, and rewrites the applied record to it first, so that the
// record never claims them again.
func (s *Store) startState(applied *AppliedState) (*AppliedState, error) {
	durable, ok, err := s.loadDurable()
	if err != nil {
		return nil, err
	}
	start := applied
	switch {
	case ok && durable.Seqno > applied.Seqno:
		return nil, fmt.Errorf("storage: durable state at seqno %d is ahead of the applied state at %d: "+
			"%s holds files of different stores", durable.Seqno, applied.Seqno, s.dir)
	case ok && !s.sameBoot():
		start = durable
		if err := s.rewindApplied(durable, applied); err != nil {
			return nil, err
		}
	}
	if err := s.syncData(); err != nil {
		return nil, err
	}
	if err := s.writeDurable(start); err != nil {
		return nil, fmt.Errorf("storage: record durable state: %w", err)
	}
	if err := s.writeBoot(); err != nil {
		return nil, fmt.Errorf("storage: record boot: %w", err)
	}
	return start, nil
}

// rewindApplied rewrites the applied record to the durable state, after a
// restart of the machine.
func (s *Store) rewindApplied(durable, applied *AppliedState) error {
	if durable.Seqno == applied.Seqno {
		return nil
	}
	s.lg.Info("the machine restarted since the store was last open: starting from its durable state; "+
		"the batches applied after it are applied again",
		zap.Uint64("durable_seqno", durable.Seqno), zap.Uint64("applied_seqno", applied.Seqno))
	if err := s.writeApplied(durable); err != nil {
		return fmt.Errorf("storage: rewind applied state to seqno %d: %w", durable.Seqno, err)
	}
	return nil
}

// sameBoot reports whether the store was last open under the running
// kernel. It is false when the boot is unknown.
func (s *Store) sameBoot() bool {
	boot := bootID()
	if boot == "" || s.dir == "" {
		return false
	}
	b, err := os.ReadFile(filepath.Join(s.dir, bootFileName))
	return err == nil && string(b) == boot
}

// writeBoot records the running boot (or, if unknown, forgets the last).
func (s *Store) writeBoot() error {
	boot := bootID()
	if s.dir == "" || boot == "" {
		return s.removeFile(bootFileName)
	}
	return atomicfile.Write(filepath.Join(s.dir, bootFileName), []byte(boot), 0o644, true)
}

// bootID returns the running kernel's boot id, or "" where there is none
// (outside Linux).
func bootID() string {
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
