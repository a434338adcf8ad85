package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/node"
	"github.com/galenadb/galena/node/nodetest"
)

// commitPut puts key=value in a transaction of its own and returns its
// seqno.
func commitPut(ctx context.Context, cl *client.Client, key, value string) (uint64, error) {
	tx, err := cl.Begin(ctx)
	if err != nil {
		return 0, err
	}
	if err := tx.Put([]byte(key), []byte(value)); err != nil {
		return 0, err
	}
	info, err := tx.Commit(ctx)
	return info.Seqno, err
}

// A client lists a prefix, then watches it from the snapshot it read,
// while writes go through the other members and the member it watches on
// stops: it sees every acknowledged write once, in seqno order, and the
// copy it keeps ends equal to the cluster's.
func TestWatchKeepsACopyAcrossMemberFailure(t *testing.T) {
	c := cluster(t, 3)
	ctx := ctxT(t)
	eps := c.Endpoints()
	writer := newClient(t, eps[1], eps[2])
	for i := range 5 {
		if _, err := commitPut(ctx, writer, fmt.Sprintf("w/%d", i), "initial"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := commitPut(ctx, writer, "other", "x"); err != nil {
		t.Fatal(err)
	}

	watcher := newClient(t, eps...) // starts on eps[0]
	copyOf := map[string]string{}
	var listed uint64
	err := watcher.View(ctx, func(tx *client.Txn) error {
		kvs, err := tx.Scan(ctx, []byte("w/"), client.PrefixEnd([]byte("w/")), 0)
		for _, kv := range kvs {
			copyOf[string(kv.Key)] = string(kv.Value)
		}
		listed = tx.Snapshot()
		return err
	}, client.Linearizable())
	if err != nil || len(copyOf) != 5 {
		t.Fatalf("listed %d keys, %v", len(copyOf), err)
	}
	w, err := watcher.WatchPrefix(ctx, []byte("w/"), listed)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	const writes = 60
	acked := map[uint64]string{} // seqno -> key=value; read once done
	done := make(chan error, 1)
	go func() {
		for i := range writes {
			if i == writes/3 {
				c.Stop(0) // the member the watch is on
			}
			key, value := fmt.Sprintf("w/%d", i%7), fmt.Sprint("v", i)
			seq, err := commitPut(ctx, writer, key, value)
			if errors.Is(err, client.ErrIndeterminate) {
				continue // it may or may not show: the copy's final check covers it
			}
			if err != nil {
				done <- err
				return
			}
			acked[seq] = key + "=" + value
			if _, err := commitPut(ctx, writer, fmt.Sprint("other/", i), "x"); err != nil && !errors.Is(err, client.ErrIndeterminate) {
				done <- err
				return
			}
		}
		_, err := commitPut(ctx, writer, "w/end", "end") // the watch reads up to it
		done <- err
	}()

	seen := map[uint64]string{}
	last := listed
	for seen[last] != "w/end=end" {
		select { // a writer that failed would leave Next waiting for its end
		case err := <-done:
			if err != nil {
				t.Fatalf("writer: %v", err)
			}
			done <- nil
		default:
		}
		e, err := w.Next()
		if err != nil {
			t.Fatalf("Next after seqno %d: %v", last, err)
		}
		if e.Seqno <= last {
			t.Fatalf("event at seqno %d after %d: repeated or out of order", e.Seqno, last)
		}
		last = e.Seqno
		if len(e.Changes) != 1 || !bytes.HasPrefix(e.Changes[0].Key, []byte("w/")) || e.Changes[0].Deleted {
			t.Fatalf("event at seqno %d = %+v: not one put of the prefix", e.Seqno, e)
		}
		ch := e.Changes[0]
		seen[e.Seqno] = string(ch.Key) + "=" + string(ch.Value)
		copyOf[string(ch.Key)] = string(ch.Value)
	}
	if err := <-done; err != nil {
		t.Fatalf("writer: %v", err)
	}
	if w.Resumes() == 0 {
		t.Fatal("the watch never resumed, though its member stopped")
	}
	for seq, kv := range acked {
		if seen[seq] != kv {
			t.Errorf("acknowledged write %s at seqno %d: the watch saw %q", kv, seq, seen[seq])
		}
	}
	var got []client.KV
	err = newClient(t, eps[1]).View(ctx, func(tx *client.Txn) (err error) {
		got, err = tx.Scan(ctx, []byte("w/"), client.PrefixEnd([]byte("w/")), 0)
		return err
	}, client.Linearizable())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(copyOf) {
		t.Fatalf("the copy has %d keys, the cluster %d", len(copyOf), len(got))
	}
	for _, kv := range got {
		if copyOf[string(kv.Key)] != string(kv.Value) {
			t.Errorf("key %s: the copy has %q, the cluster %q", kv.Key, copyOf[string(kv.Key)], kv.Value)
		}
	}
}

// A watch from a seqno older than every member's history is refused with
// ErrSnapshotTooOld, which says what is still held.
func TestWatchRefusesHistoryNoMemberHolds(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	c := nodetest.MakeClusterWith(t, 1, func(_ int, cfg *node.Config) { cfg.Storage.Retain, cfg.Storage.RetainAge = 4, 0 })
	c.Leader()
	ctx := ctxT(t)
	cl := newClient(t, c.Endpoints()...)
	for i := range 20 {
		if err := cl.Put(ctx, []byte(fmt.Sprint("k", i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	_, err := cl.Watch(ctx, nil, nil, 1)
	if !errors.Is(err, client.ErrSnapshotTooOld) {
		t.Fatalf("watch after seqno 1 with 4 seqnos retained: %v, want ErrSnapshotTooOld", err)
	}
	t.Logf("refusal: %v", err)
	w, err := cl.Watch(ctx, nil, nil, 0)
	if err != nil {
		t.Fatalf("watch from now: %v", err)
	}
	defer w.Close()
	if err := cl.Put(ctx, []byte("k"), []byte("now")); err != nil {
		t.Fatal(err)
	}
	e, err := w.Next()
	if err != nil || len(e.Changes) != 1 || string(e.Changes[0].Value) != "now" {
		t.Fatalf("first event of a watch from now = %+v, %v", e, err)
	}
}

// A watch whose reader stalls while commits go on is dropped once its
// buffer fills (the client's: the member's is emptied into it), and the
// client watches again from its progress: the reader sees every write-set
// once, in order.
func TestWatchSlowReaderIsCutAndResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	c := nodetest.MakeClusterWith(t, 1, func(_ int, cfg *node.Config) { cfg.Txn.WatchBuffer = 4 << 10 })
	c.Leader()
	ctx := ctxT(t)
	cl := newClient(t, c.Endpoints()...)
	w, err := cl.WatchPrefix(ctx, []byte("slow/"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// 6 MB of events while nobody reads: more than the client holds for one
	// watch.
	const txns, keys = 600, 10
	value := bytes.Repeat([]byte("v"), 1<<10)
	var last uint64
	for i := range txns {
		tx, err := cl.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for k := range keys {
			if err := tx.Put(fmt.Appendf(nil, "slow/%03d/%d", i, k), value); err != nil {
				t.Fatal(err)
			}
		}
		info, err := tx.Commit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		last = info.Seqno
	}
	var prev uint64
	for n := 0; prev < last; n++ {
		e, err := w.Next()
		if err != nil {
			t.Fatalf("Next after %d events: %v", n, err)
		}
		if e.Seqno <= prev || len(e.Changes) != keys || !bytes.HasPrefix(e.Changes[0].Key, fmt.Appendf(nil, "slow/%03d/", n)) {
			var first []byte
			if len(e.Changes) > 0 {
				first = e.Changes[0].Key
			}
			t.Fatalf("event %d: seqno %d after %d, %d changes, first key %q", n, e.Seqno, prev, len(e.Changes), first)
		}
		prev = e.Seqno
	}
	if w.Resumes() == 0 {
		t.Fatal("the watch was never cut, though its reader stalled through 6 MB of events")
	}
}
