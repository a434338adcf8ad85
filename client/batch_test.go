package client

import (
	"fmt"
	"math"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/api/writesetpb"
)

// putGet puts and reads back n keys.
func putGet(t *testing.T, c *Client, n int) {
	t.Helper()
	ctx := testCtx(t)
	for i := range n {
		k := []byte(fmt.Sprint("k", i))
		if err := c.Put(ctx, k, []byte("v")); err != nil {
			t.Fatal(err)
		}
		if v, err := c.Get(ctx, k); err != nil || string(v) != "v" {
			t.Fatalf("Get %s = %q, %v", k, v, err)
		}
	}
}

// Get and Commit travel on one Batch stream once the connection is up,
// and are answered as their unary calls are; a member without the stream
// (one that predates it) gets unary calls, and is asked for it once.
func TestCallsTravelOnTheStreamOrUnary(t *testing.T) {
	for _, noBatch := range []bool{false, true} {
		t.Run(fmt.Sprint("noBatch=", noBatch), func(t *testing.T) {
			n := newFakeCluster(t, 1)[0]
			n.noBatch = noBatch
			c := newTestClient(t, n.addr)
			waitConnected(t, c)
			putGet(t, c, 5)
			gets, unaryGets := n.batchedCalls("Get")
			commits, unaryCommits := n.batchedCalls("Commit")
			if noBatch {
				gets, unaryGets, commits, unaryCommits = unaryGets, gets, unaryCommits, commits
			}
			if gets != 5 || commits != 5 || unaryGets+unaryCommits != 0 {
				t.Fatalf("%d gets and %d commits the expected way, %d and %d the other", gets, commits, unaryGets, unaryCommits)
			}
			if s := n.streams.Load(); s != 1 {
				t.Fatalf("asked for the Batch stream %d times, want once", s)
			}
		})
	}
}

// A stream that breaks fails the calls in flight as a broken connection
// fails unary calls, and the next call opens a new stream.
func TestBrokenBatchStreamIsReplaced(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c := newTestClient(t, n.addr)
	waitConnected(t, c)
	putGet(t, c, 1)
	kv := c.endpoints[0].kv
	kv.mu.Lock()
	s := kv.stream
	kv.mu.Unlock()
	if s == nil {
		t.Fatal("no stream open after a call on a connected endpoint")
	}
	n.dropConns()
	select {
	case <-s.done:
	case <-testCtx(t).Done():
		t.Fatal("the stream outlived its connection")
	}
	deadline := time.Now().Add(30 * time.Second)
	for n.streams.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no new Batch stream after the connection broke")
		}
		waitConnected(t, c)
		putGet(t, c, 1) // unary until the connection is back
	}
}

// Calls that together exceed the largest message the client may send go
// in several messages, and a call whose message alone would (its unary
// call just fits) goes as a unary call.
func TestBatchMessagesStayWithinMaxCallSize(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	const max = 64 << 10
	c := newClientCfg(t, Config{Endpoints: []string{n.addr}, MaxCallSize: max})
	waitConnected(t, c)
	putGet(t, c, 1) // the stream is open
	ctx := testCtx(t)
	errs := make(chan error, 8)
	for i := range 8 {
		go func() { errs <- c.Put(ctx, []byte(fmt.Sprint("big", i)), make([]byte, 40<<10)) }()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatalf("Put of 40 KiB with MaxCallSize 64 KiB: %v", err)
		}
	}
	// A value whose unary Commit is a few bytes short of the limit (the
	// request's fields other than the value take at most 8 bytes more
	// than here): its batched call does not fit.
	v := 0
	for proto.Size(edgeCommit(v+1)) <= max-10 {
		v++
	}
	if err := c.Put(ctx, []byte("edge"), make([]byte, v)); err != nil {
		t.Fatalf("Put whose unary call just fits: %v", err)
	}
	if batched, unary := n.batchedCalls("Commit"); batched < 9 || unary != 1 {
		t.Fatalf("%d commits batched, %d unary; want the 9 smaller ones batched and the edge one unary", batched, unary)
	}
}

// edgeCommit is a Commit of "edge" with a value of n bytes, its other
// fields as large as the client makes them.
func edgeCommit(n int) *galenapb.CommitRequest {
	return &galenapb.CommitRequest{MinSeqno: math.MaxUint64, WriteSet: &writesetpb.WriteSet{
		Id: make([]byte, 16), Snapshot: math.MaxUint64, Origin: math.MaxUint64,
		Writes: []*writesetpb.Write{{Key: []byte("edge"), Value: make([]byte, n)}},
	}}
}
