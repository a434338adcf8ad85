package node_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/node"
	"github.com/galenadb/galena/node/nodetest"
)

// committed is one acknowledged transaction of the writer: what it put and
// deleted, and its seqno.
type committed struct {
	seqno uint64
	put   map[string]string
	del   []string
}

// writeUntil commits transactions one after another until stop is closed
// (and at least min of them), each putting a new key, overwriting "last"
// and sometimes deleting an earlier key, and returns them in order. It
// counts each commit in done.
func writeUntil(t *testing.T, cl *client.Client, stop <-chan struct{}, min int, done *atomic.Int64) []committed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out []committed
	for i := 0; ; i++ {
		select {
		case <-stop:
			if i >= min {
				return out
			}
		default:
		}
		c := committed{put: map[string]string{fmt.Sprintf("k%05d", i): fmt.Sprint("v", i), "last": fmt.Sprint(i)}}
		if i%5 == 4 {
			c.del = []string{fmt.Sprintf("k%05d", i-3)}
		}
		tx, err := cl.Begin(ctx)
		if err != nil {
			t.Error(err)
			return out
		}
		for k, v := range c.put {
			tx.Put([]byte(k), []byte(v))
		}
		for _, k := range c.del {
			tx.Delete([]byte(k))
		}
		info, err := tx.Commit(ctx)
		if err != nil {
			t.Errorf("commit %d: %v", i, err)
			return out
		}
		c.seqno = info.Seqno
		out = append(out, c)
		done.Add(1)
	}
}

// stateAt is what the writer's transactions up to seqno leave.
func stateAt(txns []committed, seqno uint64) map[string]string {
	m := map[string]string{}
	for _, c := range txns {
		if c.seqno > seqno {
			break
		}
		for k, v := range c.put {
			m[k] = v
		}
		for _, k := range c.del {
			delete(m, k)
		}
	}
	return m
}

// asMap is kvs as a map of strings.
func asMap(kvs []client.KV) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[string(kv.Key)] = string(kv.Value)
	}
	return m
}

// A backup taken from a follower while a writer commits, restored into a
// new three-member cluster, holds exactly the state at the backup's seqno;
// the new cluster takes commits, at seqnos above it.
func TestBackupRestore(t *testing.T) {
	src := cluster(t, 3)
	leader := src.Leader()
	follower := (leader + 1) % 3
	cl := newClient(t, src.Endpoints()...)

	stop := make(chan struct{})
	var txns []committed
	var wg sync.WaitGroup
	var done atomic.Int64
	wg.Add(1)
	go func() { defer wg.Done(); txns = writeUntil(t, cl, stop, 300, &done) }()

	file := filepath.Join(t.TempDir(), "backup")
	var buf bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src.WaitFor(time.Minute, "some commits before the backup", func() bool { return src.Nodes[follower].Status().AppliedSeqno > 100 })
	var calls int
	info, err := cl.Backup(ctx, src.Endpoints()[follower], &buf, func(int64) { calls++ })
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	after := done.Load() + 5 // commits on after the backup, so it was taken under load
	src.WaitFor(time.Minute, "commits after the backup", func() bool { return done.Load() >= after })
	close(stop)
	wg.Wait()
	if info.Bytes != int64(buf.Len()) || calls == 0 {
		t.Fatalf("backup of %d bytes reported %d, progress called %d times", buf.Len(), info.Bytes, calls)
	}
	if last := txns[len(txns)-1].seqno; info.Seqno >= last {
		t.Fatalf("backup at seqno %d, after the writer's last commit at %d: not taken under load", info.Seqno, last)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	want := stateAt(txns, info.Seqno)
	src.Close()

	dst := nodetest.MakeClusterWith(t, 3, func(_ int, cfg *node.Config) {
		got, err := node.Restore(*cfg, file)
		if err != nil {
			t.Fatalf("restore %s: %v", cfg.ID, err)
		}
		if got.Seqno != info.Seqno || got.Index != info.Index {
			t.Fatalf("restored %s at seqno %d index %d, want the backup's %d and %d", cfg.ID, got.Seqno, got.Index, info.Seqno, info.Index)
		}
	})
	dst.Leader()
	ncl := newClient(t, dst.Endpoints()...)
	got := asMap(scanAll(t, ncl))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the restored cluster holds %d keys (last=%s), want the %d at seqno %d (last=%s)",
			len(got), got["last"], len(want), info.Seqno, want["last"])
	}
	tx, err := ncl.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx.Put([]byte("after"), []byte("restore"))
	ci, err := tx.Commit(ctx)
	if err != nil || ci.Seqno <= info.Seqno {
		t.Fatalf("a commit in the restored cluster: seqno %d, %v; want one above %d", ci.Seqno, err, info.Seqno)
	}
	dst.EnsureSame()
}
