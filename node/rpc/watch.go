package rpc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/txn"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// How a Watch stream sends.
const (
	// maxWatchMessage is the size a Watch response, and a watch's update,
	// is cut at, between events: an event larger than it goes alone.
	maxWatchMessage = 1 << 20
	// maxWatchOutbox bounds the bytes of updates a stream holds that it
	// has not sent: a watch with more to send waits, and its own buffer
	// fills (txn.ErrWatchBehind) if the client reads too slowly.
	maxWatchOutbox = 4 << 20
	// maxStreamWatches bounds the watches open on one stream.
	maxStreamWatches = 10000
)

// errDuplicateWatch: a create named a watch open on the stream.
var errDuplicateWatch = errors.New("rpc: a watch with this id is open on the stream")

// Watch serves the watches a client creates on one stream (see
// txn.Service.Watch for each). Every watch runs on a goroutine of its own
// and hands its updates to the stream's outbox; one sender drains it, as
// many updates per message as are waiting, so that many watches on one
// stream cost a message per batch applied rather than one each. Once
// Closing is closed the stream ends with SHUTTING_DOWN, and the client
// goes on watching elsewhere.
func (s *KV) Watch(stream galenapb.KV_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	ws := &watchStream{kv: s, out: newOutbox(), watches: map[uint64]*context.CancelFunc{}}
	sent := make(chan error, 1)
	go func() { sent <- ws.out.sendLoop(ctx, stream) }()
	// The reader ends when the stream does: at once when Watch returns.
	read := make(chan error, 1)
	go func() { read <- ws.readLoop(ctx, stream) }()
	var err error
	select {
	case err = <-read: // the client closed its side, or the stream broke
	case err = <-sent:
		sent = nil
	case <-s.Closing:
		err = toStatus(txn.ErrShuttingDown)
	}
	cancel()
	ws.shut()
	if sent != nil {
		<-sent
	}
	return err
}

// shut ends every watch and waits for them; no watch starts afterwards.
func (ws *watchStream) shut() {
	ws.mu.Lock()
	ws.shutting = true
	for _, cancel := range ws.watches {
		(*cancel)()
	}
	ws.mu.Unlock()
	ws.wg.Wait()
}

// watchStream is one Watch stream: its watches and its outbox.
type watchStream struct {
	kv  *KV
	out *outbox
	wg  sync.WaitGroup // the watches' goroutines

	mu       sync.Mutex
	watches  map[uint64]*context.CancelFunc // by id, until its goroutine returns
	shutting bool                           // set by shut: no watch starts
}

// readLoop creates and cancels watches as the client asks, until the
// stream ends; it returns nil when the client closed its side.
func (ws *watchStream) readLoop(ctx context.Context, stream galenapb.KV_WatchServer) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		switch r := req.GetRequest().(type) {
		case *galenapb.WatchRequest_Create:
			if err := ws.create(ctx, r.Create); err != nil {
				return toStatus(err)
			}
		case *galenapb.WatchRequest_Cancel:
			ws.cancel(r.Cancel)
		}
	}
}

// create starts the watch c asks for; it refuses, ending the stream, an id
// in use and more than maxStreamWatches at once.
func (ws *watchStream) create(ctx context.Context, c *galenapb.WatchCreate) error {
	id := c.GetId()
	ws.mu.Lock()
	defer ws.mu.Unlock()
	switch _, open := ws.watches[id]; {
	case ws.shutting:
		return nil
	case open:
		return fmt.Errorf("%w: watch %d", errDuplicateWatch, id)
	case len(ws.watches) >= maxStreamWatches:
		return fmt.Errorf("%w: %d watches open on one stream", txn.ErrOverloaded, len(ws.watches))
	}
	wctx, cancel := context.WithCancel(ctx)
	self := &cancel
	ws.watches[id] = self
	ws.wg.Go(func() {
		err := ws.kv.svc.Watch(wctx, c.GetStart(), c.GetEnd(), c.GetAfter(), c.GetMinSeqno(),
			func(events []txn.Event, progress uint64) error { return ws.out.put(wctx, id, events, progress) })
		if wctx.Err() == nil { // not cancelled by the client or the stream's end
			end := &galenapb.WatchUpdate{Id: id, Error: CallError(toStatus(err))}
			_ = ws.out.queue(ctx, end, proto.Size(end)) // fails only once the stream ends
		}
		ws.mu.Lock()
		defer ws.mu.Unlock()
		if ws.watches[id] == self { // not a later watch with the same id
			delete(ws.watches, id)
		}
		cancel()
	})
	return nil
}

// cancel ends watch id, as the client asked; no update says so.
func (ws *watchStream) cancel(id uint64) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if cancel, ok := ws.watches[id]; ok {
		(*cancel)()
		delete(ws.watches, id)
	}
}

// outbox holds the updates of a stream's watches until its sender takes
// them.
type outbox struct {
	mu      sync.Mutex
	updates []sizedUpdate
	size    int
	ready   chan struct{} // signalled when updates arrive
	// drained is closed, and replaced, when the sender takes the updates
	// while watches wait for room (waiting of them): all of them wake.
	drained chan struct{}
	waiting int
}

func newOutbox() *outbox {
	return &outbox{ready: make(chan struct{}, 1), drained: make(chan struct{})}
}

// put queues the updates of watch id that carry events and progress: as
// many as it takes to keep each under maxWatchMessage (an event larger
// than it goes alone), the progress on the last.
func (o *outbox) put(ctx context.Context, id uint64, events []txn.Event, progress uint64) error {
	u, size := &galenapb.WatchUpdate{Id: id}, 0
	for _, e := range events {
		pe := watchEvent(e)
		n := protowire.SizeTag(2) + protowire.SizeBytes(proto.Size(pe)) // as a field of the update
		if len(u.Events) > 0 && size+n > maxWatchMessage {
			u.Progress = u.Events[len(u.Events)-1].GetSeqno()
			if err := o.queue(ctx, u, size+updateOverhead); err != nil {
				return err
			}
			u, size = &galenapb.WatchUpdate{Id: id}, 0
		}
		u.Events, size = append(u.Events, pe), size+n
	}
	u.Progress = progress
	return o.queue(ctx, u, size+updateOverhead)
}

// updateOverhead bounds what an update adds to its events: its id and
// progress.
const updateOverhead = 2 * (1 + binary.MaxVarintLen64)

// queue queues u, of about n bytes, waiting while the outbox is full
// (unless it is empty: one update always goes in) or until ctx ends.
func (o *outbox) queue(ctx context.Context, u *galenapb.WatchUpdate, n int) error {
	for {
		o.mu.Lock()
		if len(o.updates) == 0 || o.size+n <= maxWatchOutbox {
			o.updates, o.size = append(o.updates, sizedUpdate{u, n}), o.size+n
			o.mu.Unlock()
			signal(o.ready)
			return nil
		}
		drained := o.drained
		o.waiting++
		o.mu.Unlock()
		select {
		case <-drained:
		case <-ctx.Done():
		}
		o.mu.Lock()
		o.waiting--
		o.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// take empties the outbox and wakes every watch waiting for room.
func (o *outbox) take() []sizedUpdate {
	o.mu.Lock()
	defer o.mu.Unlock()
	updates := o.updates
	o.updates, o.size = nil, 0
	if o.waiting > 0 {
		close(o.drained)
		o.drained = make(chan struct{})
	}
	return updates
}

// sendLoop sends what is queued, in messages of about maxWatchMessage,
// until ctx ends or a send fails.
func (o *outbox) sendLoop(ctx context.Context, stream galenapb.KV_WatchServer) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-o.ready:
		}
		runtime.Gosched() // let the other watches woken by the same batch queue theirs
		updates := o.take()
		for len(updates) > 0 {
			resp := &galenapb.WatchResponse{}
			size := 0
			for len(updates) > 0 && (len(resp.Updates) == 0 || size+updates[0].size <= maxWatchMessage) {
				size += updates[0].size
				resp.Updates, updates = append(resp.Updates, updates[0].u), updates[1:]
			}
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
	}
}

// sizedUpdate is an update and its encoded size.
type sizedUpdate struct {
	u    *galenapb.WatchUpdate
	size int
}

// signal wakes the receiver of ch, a channel of capacity one, if it is
// not already woken.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// watchEvent is the wire form of e.
func watchEvent(e txn.Event) *galenapb.WatchEvent {
	pe := &galenapb.WatchEvent{Seqno: e.Seqno, Changes: make([]*galenapb.Change, len(e.Changes))}
	for i, c := range e.Changes {
		pe.Changes[i] = &galenapb.Change{Key: c.Key, Value: c.Value, Delete: c.Delete}
	}
	return pe
}
