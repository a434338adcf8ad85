package client

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/galenadb/galena/api/galenapb"
)

// putKeys writes n keys <prefix><i, 5 digits> = v<i>, in one transaction.
func putKeys(t *testing.T, c *Client, prefix string, n int) {
	t.Helper()
	err := c.Update(testCtx(t), func(tx *Txn) error {
		for i := range n {
			if err := tx.Put(fmt.Appendf(nil, "%s%05d", prefix, i), fmt.Appendf(nil, "v%d", i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// All pages through a range of any size at the transaction's snapshot,
// merged with its own writes, and stops reading when the loop breaks.
func TestAll(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	ctx := testCtx(t)
	putKeys(t, c, "k/", 2500)
	mustPut(t, c, "l", "outside")
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := tx.Delete([]byte("k/00007")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Put([]byte("k/99999"), []byte("mine")); err != nil {
		t.Fatal(err)
	}
	var got []string
	for kv, err := range tx.All(ctx, []byte("k/"), PrefixEnd([]byte("k/"))) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(kv.Key))
	}
	if len(got) != 2500 || got[7] != "k/00008" || got[2499] != "k/99999" || !slicesSorted(got) {
		t.Fatalf("All yielded %d keys (8th %q, last %q); want 2,500 in order, k/00007 deleted and k/99999 added", len(got), got[7], got[len(got)-1])
	}
	scans := len(n.callsOf("Scan"))
	for range tx.All(ctx, []byte("k/"), nil) {
		break
	}
	if d := len(n.callsOf("Scan")) - scans; d != 1 {
		t.Fatalf("a loop that broke at once made %d Scan calls; want 1", d)
	}
}

func slicesSorted(s []string) bool {
	for i := 1; i < len(s); i++ {
		if s[i-1] >= s[i] {
			return false
		}
	}
	return true
}

// Client.Scan says whether keys remain after the page it returns.
func TestClientScan(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	ctx := testCtx(t)
	putKeys(t, c, "s/", 25)
	for _, tc := range []struct {
		limit    int
		want     int
		wantMore bool
	}{{10, 10, true}, {25, 25, false}, {30, 25, false}, {0, 25, false}} {
		kvs, more, err := c.Scan(ctx, []byte("s/"), PrefixEnd([]byte("s/")), tc.limit)
		if err != nil || len(kvs) != tc.want || more != tc.wantMore {
			t.Errorf("Scan limit %d = %d keys, more %v, %v; want %d, %v", tc.limit, len(kvs), more, err, tc.want, tc.wantMore)
		}
	}
	if _, _, err := c.Scan(ctx, nil, nil, -1); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Scan with a negative limit: %v", err)
	}
}

// DeleteRange deletes what the range holds at the snapshot, and its
// write-set carries the range, so that a key written into it meanwhile
// fails the commit.
func TestDeleteRange(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	ctx := testCtx(t)
	putKeys(t, c, "d/", 1500)
	mustPut(t, c, "e", "stays")
	deleted, err := c.DeleteRange(ctx, []byte("d/"), PrefixEnd([]byte("d/")))
	if err != nil || deleted != 1500 {
		t.Fatalf("DeleteRange = %d, %v; want 1500", deleted, err)
	}
	ws := lastReq[*galenapb.CommitRequest](t, n, "Commit").GetWriteSet()
	if len(ws.Scans) != 1 || string(ws.Scans[0].Start) != "d/" || string(ws.Scans[0].End) != "d0" {
		t.Fatalf("the write-set's ranges %v; want [d/, d0)", ws.Scans)
	}
	if kvs, _, err := c.Scan(ctx, nil, nil, 0); err != nil || len(kvs) != 1 || string(kvs[0].Key) != "e" {
		t.Fatalf("after DeleteRange: %d keys, %v; want e alone", len(kvs), err)
	}
	// Serializable, the pages read make one range, which the deleted range
	// adds nothing to.
	putKeys(t, c, "d/", 1500)
	if _, err := Transact(ctx, c, func(tx *Txn) (int, error) { return tx.DeleteRange(ctx, []byte("d/"), PrefixEnd([]byte("d/"))) },
		Serializable()); err != nil {
		t.Fatal(err)
	}
	ws = lastReq[*galenapb.CommitRequest](t, n, "Commit").GetWriteSet()
	if len(ws.Scans) != 1 || string(ws.Scans[0].Start) != "d/" || string(ws.Scans[0].End) != "d0" {
		t.Fatalf("a serializable DeleteRange's ranges %v; want [d/, d0) alone", ws.Scans)
	}
	for _, tc := range []struct {
		start, end string
		want       error
	}{{"a", "", ErrInvalidArgument}, {"b", "a", ErrInvalidArgument}, {"a", "a", ErrInvalidArgument}} {
		if _, err := c.DeleteRange(ctx, []byte(tc.start), []byte(tc.end)); !errors.Is(err, tc.want) {
			t.Errorf("DeleteRange(%q, %q) = %v; want %v", tc.start, tc.end, err, tc.want)
		}
	}
	err = c.View(ctx, func(tx *Txn) error {
		_, err := tx.DeleteRange(ctx, []byte("a"), []byte("b"))
		return err
	})
	if !errors.Is(err, ErrReadOnly) {
		t.Fatalf("DeleteRange in View = %v; want ErrReadOnly", err)
	}
}

// Transact returns the value of the run that committed.
func TestTransact(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	ctx := testCtx(t)
	runs := 0
	got, err := Transact(ctx, c, func(tx *Txn) (string, error) {
		runs++
		if runs == 1 {
			return "discarded", &ConflictError{Key: []byte("k")} // a conflict: run again
		}
		return "kept", tx.Put([]byte("k"), []byte("v"))
	})
	if err != nil || got != "kept" || runs != 2 {
		t.Fatalf("Transact = %q, %v after %d runs; want kept after 2", got, err, runs)
	}
	boom := errors.New("boom")
	if got, err := Transact(ctx, c, func(*Txn) (int, error) { return 7, boom }); got != 0 || !errors.Is(err, boom) {
		t.Fatalf("Transact of a failing function = %d, %v; want 0 and its error", got, err)
	}
}

// The limits are the client's to say: a value or a write-set over them is
// refused before it is sent, naming the limit; a missing key is named.
func TestClientLimits(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	ctx := testCtx(t)
	commits := len(n.callsOf("Commit"))
	err := c.Put(ctx, []byte("big"), make([]byte, 20<<20))
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "exceeds the 1048576-byte limit of a value") {
		t.Fatalf("a 20 MiB put: %v", err)
	}
	err = c.Update(ctx, func(tx *Txn) error {
		for i := range 17 {
			if err := tx.Put(fmt.Appendf(nil, "k%d", i), bytes.Repeat([]byte("v"), 1<<20)); err != nil {
				return err
			}
		}
		return nil
	})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "(17 writes) exceeds the 16777216-byte limit of a write-set") {
		t.Fatalf("a write-set of 17 values of 1 MiB: %v", err)
	}
	if d := len(n.callsOf("Commit")) - commits; d != 0 {
		t.Fatalf("%d commits sent; want none", d)
	}
	if _, err := c.Get(ctx, []byte("nosuch")); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"nosuch"`) {
		t.Fatalf("Get of a missing key: %v; want ErrNotFound naming it", err)
	}
}
