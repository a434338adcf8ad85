package rpc

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/txn"
	"google.golang.org/protobuf/proto"
)

// put splits events into updates under maxWatchMessage, between events,
// with each update's progress at its last event and the given progress on
// the last; the size it queues an update with is at least its encoding's.
func TestOutboxPutSplitsBetweenEvents(t *testing.T) {
	o := newOutbox()
	value := bytes.Repeat([]byte("v"), 300<<10)
	var events []txn.Event
	for seq := uint64(1); seq <= 10; seq++ {
		events = append(events, txn.Event{Seqno: seq, Changes: []txn.Change{{Key: []byte("k"), Value: value}}})
	}
	if err := o.put(context.Background(), 7, events, 12); err != nil {
		t.Fatal(err)
	}
	var seqnos []uint64
	for i, su := range o.updates {
		u := su.u
		if got := proto.Size(u); got > su.size || (len(u.Events) > 1 && got > maxWatchMessage) {
			t.Fatalf("update %d: %d bytes encoded, queued as %d (limit %d)", i, got, su.size, maxWatchMessage)
		}
		last := u.Events[len(u.Events)-1].GetSeqno()
		if want := map[bool]uint64{true: 12, false: last}[i == len(o.updates)-1]; u.GetId() != 7 || u.GetProgress() != want {
			t.Fatalf("update %d: id %d progress %d, want 7 and %d", i, u.GetId(), u.GetProgress(), want)
		}
		for _, e := range u.Events {
			seqnos = append(seqnos, e.GetSeqno())
		}
	}
	if len(o.updates) != 4 || len(seqnos) != 10 || seqnos[0] != 1 || seqnos[9] != 10 {
		t.Fatalf("%d updates carrying seqnos %v; want 4 carrying 1..10 (three 300 KiB events each)", len(o.updates), seqnos)
	}
}

// Once the sender takes what a full outbox holds, every watch waiting for
// room queues its update, not only one of them.
func TestOutboxTakeWakesEveryWaiter(t *testing.T) {
	o := newOutbox()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := o.queue(ctx, &galenapb.WatchUpdate{Id: 1}, maxWatchOutbox); err != nil { // fills it
		t.Fatal(err)
	}
	const waiters = 3
	queued := make(chan error, waiters)
	for i := range waiters {
		go func() { queued <- o.queue(ctx, &galenapb.WatchUpdate{Id: uint64(2 + i)}, 10) }()
	}
	for deadline := time.Now().Add(time.Minute); ; { // until all three wait for room
		o.mu.Lock()
		n := o.waiting
		o.mu.Unlock()
		if n == waiters {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d watches waiting for room after a minute", n, waiters)
		}
		runtime.Gosched()
	}
	if got := o.take(); len(got) != 1 {
		t.Fatalf("took %d updates; want the one that filled the outbox", len(got))
	}
	for range waiters {
		if err := <-queued; err != nil {
			t.Fatalf("a waiting watch did not queue after one take: %v", err)
		}
	}
}
