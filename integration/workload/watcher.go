package workload

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/checker"
)

// watchSpec says what one watcher follows, and where.
type watchSpec struct {
	name string
	// node is the member it starts on; endpoints list it first.
	node      string
	endpoints []string
	// start and end bound its range; end "" means no upper bound.
	start, end string
	// after is the seqno it starts after; initial are the keys and values
	// at after, of its range or more.
	after   uint64
	initial []checker.WatchChange
}

// watcher follows one range of the change feed on a goroutine of its own,
// recording every event, until it is stopped; finish then brings it up to
// a seqno with a new watch and returns what it recorded.
type watcher struct {
	watchSpec
	cl     *client.Client
	cancel context.CancelFunc // ends the goroutine's watch
	done   chan struct{}      // closed once the goroutine returned

	// Owned by the goroutine until done is closed, then by finish.
	log checker.WatchLog
	err error // why the watch failed, nil while it works
}

// startWatcher starts a watcher of spec, on a client of its own, once a
// member accepted its watch (within watchAccept). The watcher runs until
// stop, close or the end of ctx.
func startWatcher(ctx context.Context, spec watchSpec) (*watcher, error) {
	cl, err := client.New(client.Config{Endpoints: spec.endpoints, DialTimeout: runDialTimeout})
	if err != nil {
		return nil, fmt.Errorf("watcher %s: %w", spec.name, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	accepted := time.AfterFunc(watchAccept, cancel)
	cw, err := cl.Watch(wctx, []byte(spec.start), []byte(spec.end), spec.after)
	if !accepted.Stop() && err == nil {
		err = fmt.Errorf("no member accepted the watch within %v", watchAccept)
	}
	if err != nil {
		cancel()
		cl.Close()
		return nil, fmt.Errorf("watcher %s: watch %q to %q after seqno %d: %w", spec.name, spec.start, spec.end, spec.after, err)
	}
	wt := &watcher{watchSpec: spec, cl: cl, cancel: cancel, done: make(chan struct{})}
	wt.log = checker.WatchLog{Name: spec.name, Start: spec.start, End: spec.end, After: spec.after, Progress: spec.after}
	for _, kv := range spec.initial {
		if kv.Key >= spec.start && (spec.end == "" || kv.Key < spec.end) {
			wt.log.Initial = append(wt.log.Initial, kv)
		}
	}
	go wt.run(wctx, cw)
	return wt, nil
}

// run records the events of cw until ctx ends or the watch fails.
func (wt *watcher) run(ctx context.Context, cw *client.Watcher) {
	defer close(wt.done)
	defer cw.Close()
	err := wt.follow(ctx, cw, 0)
	if ctx.Err() != nil {
		err = nil // stopped, not failed
	}
	wt.err = err
	wt.log.Resumes += cw.Resumes()
}

// follow records the events cw returns until its progress reaches until
// (with until 0: never), or until ctx ends or Next fails; a Next that
// failed for want of a member is made again after failPause, as the
// client documents.
func (wt *watcher) follow(ctx context.Context, cw *client.Watcher, until uint64) error {
	defer func() { wt.log.Progress = cw.Progress() }()
	for until == 0 || cw.Progress() < until {
		e, err := cw.Next()
		switch {
		case err == nil && len(e.Changes) == 0: // progress alone (client.WithProgress)
		case err == nil:
			wt.log.Events = append(wt.log.Events, watchEvent(e))
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, client.ErrUnavailable):
			wt.log.Unavailable++
			idle(ctx, failPause)
		default:
			return fmt.Errorf("next event after seqno %d: %w", cw.Progress(), err)
		}
	}
	return nil
}

func watchEvent(e client.Event) checker.WatchEvent {
	out := checker.WatchEvent{Seqno: e.Seqno, Changes: make([]checker.WatchChange, len(e.Changes))}
	for i, c := range e.Changes {
		out.Changes[i] = checker.WatchChange{Key: string(c.Key), Value: string(c.Value), Delete: c.Deleted}
	}
	return out
}

// finish stops the watcher's goroutine, then, unless the watch failed,
// brings it up to seqno until with a new watch after its progress (within
// ctx), and returns what it recorded as an op: ok, or fail with the
// watch's error. It may be called again, with a later until.
func (wt *watcher) finish(ctx context.Context, until uint64) checker.Op {
	wt.stop()
	if wt.err == nil && wt.log.Progress < until {
		wt.err = wt.catchUp(ctx, until)
	}
	log := wt.log
	log.Initial, log.Events = slices.Clone(log.Initial), slices.Clone(log.Events)
	return outcome(&checker.WatchOp{F: checker.WatchFollow, Log: &log}, wt.err, true)
}

// catchUp records the events of a new watch after the progress until its
// progress reaches until: Next returns the progress too (WithProgress), so
// that it returns once the watch got there, events or not.
func (wt *watcher) catchUp(ctx context.Context, until uint64) error {
	after := wt.log.Progress
	cw, err := wt.cl.Watch(ctx, []byte(wt.start), []byte(wt.end), after, client.WithProgress())
	if err != nil {
		return fmt.Errorf("watch again after seqno %d: %w", after, err)
	}
	defer cw.Close()
	wt.log.Rewatches++
	err = wt.follow(ctx, cw, until)
	wt.log.Resumes += cw.Resumes()
	if err != nil {
		return fmt.Errorf("catch up from seqno %d to %d: %w", after, until, err)
	}
	return nil
}

// stop ends the goroutine and waits for it; it may be called more than
// once.
func (wt *watcher) stop() {
	wt.cancel()
	<-wt.done
}

// close stops the watcher and closes its client.
func (wt *watcher) close() {
	wt.stop()
	wt.cl.Close()
}
