package storage

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// valueLogBytes is the disk space the store's value-log files take (their
// blocks: badger sizes a file it writes ahead of its contents).
func valueLogBytes(t *testing.T, s *Store) int64 {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(s.dir, "*.vlog"))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, name := range names {
		if fi, err := os.Stat(name); err == nil {
			n += fi.Sys().(*syscall.Stat_t).Blocks * 512
		}
	}
	return n
}

// overwriteLarge applies seqnos from..to, each rewriting key "big" with an
// 8 KiB value, which lives in the value log.
func overwriteLarge(t *testing.T, s *Store, from, to uint64) {
	t.Helper()
	rewrite(t, s, "big", from, to, func(n uint64) string {
		return fmt.Sprintf("%d-%s", n, bytes.Repeat([]byte{'y'}, 8<<10))
	})
}

// Values in the value log that retention discarded give their space back:
// the files mostly discarded are rewritten, where a store that keeps every
// version rewrites none.
func TestValueLogGC(t *testing.T) {
	s := openCfg(t, Config{Dir: t.TempDir(), Retain: 10, memTableSize: 64 << 10, valueLogFileSize: 1 << 20})
	overwriteLarge(t, s, 1, 1000)
	before := valueLogBytes(t, s)
	deadline := time.Now().Add(time.Minute)
	rewritten := 0
	for valueLogBytes(t, s) > before/4 {
		if time.Now().After(deadline) {
			t.Fatalf("value log still %d bytes of %d after a minute, %d files rewritten", valueLogBytes(t, s), before, rewritten)
		}
		compact(t, s)
		n, err := s.collectValueLog()
		if err != nil {
			t.Fatal(err)
		}
		rewritten += n
		next := s.Applied().Seqno + 1
		overwriteLarge(t, s, next, next+9) // move to a new file
	}
	at := s.Applied().Seqno
	if v, err := s.Get([]byte("big"), at); err != nil || !bytes.HasPrefix(v, []byte(fmt.Sprint(at, "-"))) {
		t.Fatalf("Get(big, %d) = %.8q, %v after the value log GC", at, v, err)
	}

	all := openCfg(t, Config{Dir: t.TempDir(), Retain: math.MaxUint64, memTableSize: 64 << 10, valueLogFileSize: 1 << 20})
	overwriteLarge(t, all, 1, 1000)
	compactRounds(t, all, 2)
	if n, err := all.collectValueLog(); err != nil || n != 0 {
		t.Fatalf("keeping every version, the value log GC rewrote %d files (%v), want none", n, err)
	}
}
