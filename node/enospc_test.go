package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/node"
	"github.com/galenadb/galena/node/local"
	"go.uber.org/zap/zaptest"
)

// mountSmall mounts a tmpfs of size bytes on a new directory for the test,
// or skips the test where mounting is not allowed.
func mountSmall(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a small filesystem here (%v): needs CAP_SYS_ADMIN", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill appends zeros to the file name in dir until the filesystem has at
// most leave bytes free, as another process filling the disk would; with
// leave 0, until a write fails with ENOSPC.
func fill(t *testing.T, dir, name string, leave int64) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		if leave > 0 && int64(st.Bavail)*st.Bsize <= leave {
			return
		}
		if _, err := f.Write(chunk); err != nil {
			if leave > 0 || !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return
		}
	}
}

// A disk that fills stops the member with a loud error while it still has
// the margin to stop cleanly (as galena start does, at once); the disk
// then fills to the last byte; once space is freed the member starts
// again, nothing corrupt, and every acknowledged write is there.
func TestDiskFullStopsCleanlyAndResumes(t *testing.T) {
	dir := mountSmall(t, 512<<20)
	lc, err := local.Start(local.Config{Members: 1, Dir: dir, Member: func(_ int, cfg *node.Config) {
		cfg.Logger = zaptest.NewLogger(t).Named(cfg.ID)
		cfg.QuotaBytes = 1 << 50 // the quota is not what stops it here
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	cl := newClient(t, lc.Endpoints()...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	value := bytes.Repeat([]byte("v"), 8<<10)
	for i := range 200 {
		if err := cl.Put(ctx, []byte(fmt.Sprintf("k%03d", i)), value); err != nil {
			t.Fatal(err)
		}
	}

	// Short of space, it refuses puts first, and still serves reads.
	fill(t, dir, "filler", 2*node.MinFreeBytes-8<<20)
	err = nil
	deadline := time.Now().Add(time.Minute)
	for !errors.Is(err, client.ErrNoSpace) {
		if time.Now().After(deadline) {
			t.Fatalf("puts still taken with little space left; the last: %v", err)
		}
		err = cl.Put(ctx, []byte("more"), value)
	}
	if !strings.Contains(err.Error(), "free space on that filesystem") {
		t.Errorf("refusal %q does not say what to do", err)
	}
	if _, err := cl.Get(ctx, []byte("k000")); err != nil {
		t.Fatalf("a read short of space: %v", err)
	}

	fill(t, dir, "filler", node.MinFreeBytes-8<<20)
	var fatal error
	select {
	case fatal = <-lc.Nodes[0].Fatal():
	case <-ctx.Done():
		t.Fatal("the member did not stop when its disk filled")
	}
	if !errors.Is(fatal, node.ErrDiskFull) || !strings.Contains(fatal.Error(), "free space, then start it again") {
		t.Fatalf("the member stopped with %v; want ErrDiskFull saying what to do", fatal)
	}
	if st := lc.Nodes[0].Status(); st.State != node.StateFailed {
		t.Fatalf("state %s after the disk filled, want %s", st.State, node.StateFailed)
	}
	if err := lc.Stop(0); err != nil {
		t.Fatalf("stopping the member: %v", err)
	}
	fill(t, dir, "filler", 0)
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	if err := lc.Restart(0); err != nil {
		t.Fatalf("restart once space was freed: %v", err)
	}
	for i := range 200 {
		k := fmt.Sprintf("k%03d", i)
		if v, err := cl.Get(ctx, []byte(k)); err != nil || !bytes.Equal(v, value) {
			t.Fatalf("after the restart, Get(%s) = %d bytes, %v; want the acknowledged value", k, len(v), err)
		}
	}
	if err := cl.Put(ctx, []byte("after"), value); err != nil {
		t.Fatalf("a put after the restart: %v", err)
	}
}
