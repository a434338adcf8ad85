package client

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/galenadb/galena/api"
	"github.com/galenadb/galena/api/galenapb"
)

// Event is one committed write-set's changes to a watched range: a
// transaction is one event, never split.
type Event struct {
	// Seqno is the write-set's place in the cluster's order.
	Seqno uint64
	// Changes are its writes to keys in the range, in key order.
	Changes []Change
}

// Change is one write of a committed write-set: a put of Value, or a
// delete.
type Change struct {
	Key, Value []byte
	Deleted    bool
}

// Watcher follows the committed changes to a range of keys, in seqno
// order, across the failures of the members it watches on. Create it with
// Client.Watch; it is not safe for concurrent use, except Close. The
// watches of one client on one member share a stream.
type Watcher struct {
	c          *Client
	ctx        context.Context
	cancel     context.CancelFunc
	start, end []byte

	ep       int                      // the endpoint of sub, or the one to try first
	sub      atomic.Pointer[watchSub] // the watch on the member; nil between members
	buf      []*galenapb.WatchEvent
	bufUntil uint64 // the progress of the update buf came in
	progress uint64 // every event at or below it was returned
	reported uint64 // the last progress Next returned, with WithProgress
	opts     watchOptions
	resumes  int
	closed   atomic.Bool
}

// WatchOption configures a watch.
type WatchOption func(*watchOptions)

type watchOptions struct{ progress bool }

// WithProgress makes Next also return the watch's progress when it moves
// on without an event: an Event without Changes, whose Seqno is the new
// Progress. A member reports it at least once a second while the range is
// idle. It lets a caller learn that it has seen everything up to a seqno.
func WithProgress() WatchOption { return func(o *watchOptions) { o.progress = true } }

// Watch starts following the committed changes to keys in [start, end) (a
// nil or empty end: no upper bound) after seqno after: Next returns every
// write-set above it that wrote a key in the range, in seqno order, each
// once, deletes included. after 0 starts at the present: at a member's
// applied seqno no older than what this session has seen.
//
// Watch returns once a member accepted the watch. It fails with
// ErrSnapshotTooOld when no member holds the changes after after any more
// (members keep about the last --retain-seqnos seqnos, or --retain-age),
// ErrInvalidArgument or ErrTooLarge for a bad range, and as calls do when no
// member answers. The watch lasts until ctx ends or Close is called.
//
// To keep a copy of a range in step, read it in a transaction and watch
// after the transaction's snapshot (Txn.Snapshot): the events then apply
// exactly to what was read.
func (c *Client) Watch(ctx context.Context, start, end []byte, after uint64, opts ...WatchOption) (*Watcher, error) {
	if err := c.check(ctx); err != nil {
		return nil, err
	}
	if len(end) > 0 && string(start) >= string(end) {
		return nil, fmt.Errorf("%w: watch range start %q is not before end %q", ErrInvalidArgument, start, end)
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &Watcher{c: c, ctx: wctx, cancel: cancel, start: start, end: end, ep: c.start(), progress: after, reported: after}
	for _, o := range opts {
		o(&w.opts)
	}
	// Once the watch ends, its member need not go on with it, whether Next
	// runs then or not.
	context.AfterFunc(wctx, func() {
		if sub := w.sub.Load(); sub != nil {
			sub.close()
		}
	})
	if err := w.open(); err != nil {
		cancel()
		return nil, err
	}
	return w, nil
}

// WatchPrefix is Watch of the keys that start with prefix.
func (c *Client) WatchPrefix(ctx context.Context, prefix []byte, after uint64, opts ...WatchOption) (*Watcher, error) {
	return c.Watch(ctx, prefix, PrefixEnd(prefix), after, opts...)
}

// Next returns the next event, waiting for it. When the member it watches
// on fails, is cut off from the majority, stops, goes silent for
// Config.WatchTimeout, or cuts the watch because the caller read too
// slowly, it watches again after Progress, on that member or another,
// without a gap or a repeat. It returns an error when it cannot: ctx's
// error, or ErrClosed once the watch was closed; ErrSnapshotTooOld when no
// member holds the changes after Progress any more; ErrUnavailable when no
// member answered (calling Next again tries again).
func (w *Watcher) Next() (Event, error) {
	for {
		if w.closed.Load() {
			return Event{}, ErrClosed
		}
		if len(w.buf) > 0 {
			e := w.buf[0]
			w.buf[0], w.buf = nil, w.buf[1:]
			w.progress = e.GetSeqno()
			if len(w.buf) == 0 {
				w.progress = max(w.progress, w.bufUntil)
			}
			w.c.observe(e.GetSeqno())
			w.reported = w.progress
			return fromWatchEvent(e), nil
		}
		if w.opts.progress && w.progress > w.reported {
			w.reported = w.progress
			return Event{Seqno: w.progress}, nil
		}
		sub := w.sub.Load()
		if sub == nil {
			if err := w.open(); err != nil {
				return Event{}, err
			}
			continue
		}
		updates, err := sub.next(w.ctx)
		if err != nil {
			if err = w.broken(sub, err); err != nil {
				return Event{}, err
			}
			continue
		}
		w.take(updates)
	}
}

// Progress is the seqno at or below which every event was returned by
// Next: a later watch after it continues this one exactly.
func (w *Watcher) Progress() uint64 { return w.progress }

// Resumes is how often the watch started again, on the same member or
// another, since Watch returned.
func (w *Watcher) Resumes() int { return w.resumes }

// Close ends the watch; Next then returns ErrClosed. It is safe to call
// concurrently with Next, and more than once.
func (w *Watcher) Close() error {
	w.closed.Store(true)
	w.cancel()
	return nil
}

// take keeps the events of updates above the progress; an update without
// events moves the progress on.
func (w *Watcher) take(updates []*galenapb.WatchUpdate) {
	for _, u := range updates {
		for _, e := range u.GetEvents() {
			if e.GetSeqno() > w.progress && (len(w.buf) == 0 || e.GetSeqno() > w.buf[len(w.buf)-1].GetSeqno()) {
				w.buf = append(w.buf, e)
			}
		}
		if len(w.buf) == 0 {
			w.progress = max(w.progress, u.GetProgress())
		}
		w.bufUntil = u.GetProgress()
	}
}

// open starts a watch after the progress, on the endpoints in turn from
// w.ep, and takes its first update (the watch started).
func (w *Watcher) open() error {
	create := &galenapb.WatchCreate{Start: w.start, End: w.end, After: w.progress}
	if w.progress == 0 {
		create.MinSeqno = w.c.seen.Load()
	}
	var tooOld error              // a member that does not hold the history; another may
	tooOldAt := map[string]bool{} // the members that said so
	idx, err := w.c.callEndpoints(w.ctx, w.ep, func(ctx context.Context, ep *endpoint) error {
		sub, err := ep.watch.watch(create)
		if err != nil {
			return err
		}
		first, err := sub.next(ctx)
		if err == nil {
			w.sub.Store(sub)
			if w.ctx.Err() != nil {
				sub.close() // the watch ended meanwhile
			}
			w.take(first)
			return nil
		}
		sub.close()
		if status.Code(err) == codes.FailedPrecondition && reasonOf(status.Convert(err)) == api.ReasonSnapshotTooOld {
			tooOld, tooOldAt[ep.addr] = err, true
			return status.Error(codes.Unavailable, err.Error())
		}
		return err
	})
	switch {
	case err == nil:
		w.ep = idx
		return nil
	case w.c.closed.Load() || w.closed.Load():
		return ErrClosed
	case w.ctx.Err() != nil:
		return w.ctx.Err()
	case len(tooOldAt) == len(w.c.endpoints) && errors.Is(err, ErrUnavailable):
		return fromStatus(tooOld) // every member: no other can take the watch
	}
	return err
}

// broken handles the end of sub, the watch on its member: nil when it can
// go on (open then starts it again), else the error Next returns.
func (w *Watcher) broken(sub *watchSub, err error) error {
	sub.close()
	w.sub.CompareAndSwap(sub, nil)
	switch {
	case w.c.closed.Load() || w.closed.Load() || errors.Is(err, ErrClosed):
		return ErrClosed
	case w.ctx.Err() != nil:
		return w.ctx.Err()
	}
	switch reason := reasonOf(status.Convert(err)); {
	case errors.Is(err, errSubBehind), reason == api.ReasonWatchBehind:
		// Watch again on the same member: what was dropped is read back
		// from its storage.
	case reason == api.ReasonSnapshotTooOld, shouldFailover(err):
		w.ep = (w.ep + 1) % len(w.c.endpoints)
	default:
		return fromStatus(err)
	}
	w.resumes++
	w.c.lg.Debug("watch resumes", zap.Uint64("after", w.progress), zap.Int("resumes", w.resumes), zap.Error(err))
	return nil
}

func fromWatchEvent(e *galenapb.WatchEvent) Event {
	out := Event{Seqno: e.GetSeqno(), Changes: make([]Change, len(e.GetChanges()))}
	for i, c := range e.GetChanges() {
		out.Changes[i] = Change{Key: c.GetKey(), Value: c.GetValue(), Deleted: c.GetDelete()}
	}
	return out
}
