package node

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/galenadb/galena/txn"
	"go.uber.org/zap"
)

// DefaultQuotaFraction is the quota of a member whose Config.QuotaBytes is
// zero: this fraction of the size of the filesystem holding its DataDir.
const DefaultQuotaFraction = 0.8

// spaceInterval is how often a data member measures its data directory
// and the free space of its filesystem.
const spaceInterval = 250 * time.Millisecond

// MinFreeBytes is the free space a data member needs on the filesystem
// holding its data directory. Under twice as much it refuses commits that
// put values, as over its quota; under MinFreeBytes it stops (ErrDiskFull)
// before a write fails: badger writes through memory mappings, and a write
// to a mapped page the filesystem cannot back kills the process (SIGBUS)
// instead of returning an error. The margin also covers the Raft log's
// next segment, which it allocates whole (64 MiB).
const MinFreeBytes = 96 << 20

// ErrDiskFull stops a data member whose filesystem has less than
// MinFreeBytes free. Nothing is lost or corrupt: started again once space
// is freed, the member catches up from the log.
var ErrDiskFull = errors.New("node: disk full")

// quota is the member's space quota in bytes: Config.QuotaBytes, or
// DefaultQuotaFraction of the filesystem holding DataDir.
func (c Config) quota() (int64, error) {
	if c.QuotaBytes > 0 {
		return c.QuotaBytes, nil
	}
	size, _, err := filesystem(c.DataDir)
	if err != nil {
		return 0, fmt.Errorf("node: %w", err)
	}
	return int64(float64(size) * DefaultQuotaFraction), nil
}

// filesystem is the size of the filesystem holding dir, and the space free
// on it for an unprivileged process.
func filesystem(dir string) (size, free int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("the filesystem holding %s: %w", dir, err)
	}
	return int64(st.Blocks) * st.Bsize, int64(st.Bavail) * st.Bsize, nil
}

// spaceLoop measures the data directory and the free space of its
// filesystem every spaceInterval for the member's life. It makes the txn
// service refuse commits that put values while the directory holds more
// than the quota or the filesystem has less than twice MinFreeBytes free,
// and take them again as soon as neither holds (compactions discard
// history, forgotten deletes go, an operator frees space): no step is
// needed to recover. Under MinFreeBytes free it stops the member.
func (n *Node) spaceLoop() {
	t := time.NewTicker(spaceInterval)
	defer t.Stop()
	var refusing, failed error
	for {
		_, free, ferr := filesystem(n.cfg.DataDir)
		size, serr := dirSize(n.cfg.DataDir)
		if serr == nil {
			n.dataBytes.Store(size)
		}
		err := errors.Join(ferr, serr)
		switch {
		case err != nil && failed == nil:
			n.lg.Warn("cannot measure the data directory or its filesystem", zap.String("dir", n.cfg.DataDir), zap.Error(err))
		case err == nil && failed != nil:
			n.lg.Info("measuring the data directory again", zap.String("dir", n.cfg.DataDir))
		}
		failed = err
		switch {
		case ferr == nil && free < MinFreeBytes:
			err := fmt.Errorf("%w: the filesystem holding %s has %s free, under the %s a member needs to write safely: "+
				"the member stopped before a write could fail; free space, then start it again (it catches up, losing nothing)",
				ErrDiskFull, n.cfg.DataDir, humanize.IBytes(uint64(free)), humanize.IBytes(MinFreeBytes))
			n.lg.Error("disk full: stopping", zap.Int64("free_bytes", free), zap.Error(err))
			n.onFatal(err)
			return
		case err == nil:
			refusing = n.refuseWithoutSpace(refusing, size, free)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refuseWithoutSpace makes the txn service refuse or take commits that put
// values, given the data directory's size and the free space, and logs a
// change; prev is the refusal in force, and it returns the new one.
func (n *Node) refuseWithoutSpace(prev error, size, free int64) error {
	quota := n.quotaBytes.Load()
	var why error
	switch {
	case size > quota:
		why = fmt.Errorf("%w: member %s holds %s of data in %s, over its quota of %s: it refuses commits that put "+
			"values until it is under again; delete data (space returns as compactions run) or raise --quota-bytes",
			txn.ErrNoSpace, n.cfg.ID, humanize.IBytes(uint64(size)), n.cfg.DataDir, humanize.IBytes(uint64(quota)))
	case free < 2*MinFreeBytes:
		why = fmt.Errorf("%w: the filesystem holding %s of member %s has %s free, under %s: it refuses commits that put "+
			"values until more is free; free space on that filesystem",
			txn.ErrNoSpace, n.cfg.DataDir, n.cfg.ID, humanize.IBytes(uint64(free)), humanize.IBytes(2*MinFreeBytes))
	}
	switch {
	case why != nil && prev == nil:
		n.lg.Error("out of space: refusing commits that put values", zap.Int64("data_bytes", size),
			zap.Int64("quota_bytes", quota), zap.Int64("free_bytes", free), zap.Error(why))
	case why == nil && prev != nil:
		n.lg.Info("space again: taking commits", zap.Int64("data_bytes", size),
			zap.Int64("quota_bytes", quota), zap.Int64("free_bytes", free))
	}
	if why != nil || prev != nil {
		n.svc.SetNoSpace(why) // the reason, or its figures, may have changed
	}
	return why
}

// dirSize is the disk space the files under dir take: their allocated
// blocks, not their apparent sizes, which badger's and the Raft log's
// preallocated, sparse files inflate to gigabytes. Files removed while it
// walks (compactions delete tables) are skipped.
func dirSize(dir string) (int64, error) {
	var size int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			size += st.Blocks * 512 // st_blocks counts 512-byte units
		} else {
			size += info.Size()
		}
		return nil
	})
	return size, err
}
