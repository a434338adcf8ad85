package txn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/galenadb/galena/storage"
)

// Change is one write of a committed write-set to a watched key: a put of
// Value, or a delete; the write as the apply path applied it.
type Change = storage.Write

// Event is one committed write-set's writes to a watched range, in key
// order (a key the write-set wrote twice shows its last write). A
// write-set is one Event, never split.
type Event struct {
	Seqno   uint64
	Changes []Change
}

// size is what an event counts against a watcher's buffer.
func (e *Event) size() int {
	n := 16
	for _, c := range e.Changes {
		n += len(c.Key) + len(c.Value) + 16
	}
	return n
}

// WatchSend delivers events in seqno order, then says that every event at
// or below progress was delivered (events may be empty: the watch only
// moved on). An error ends the watch with it.
type WatchSend func(events []Event, progress uint64) error

// Watch follows the committed writes to keys in [start, end) (an empty end:
// no upper bound) after seqno after, until ctx ends or the watch fails; it
// returns the reason. after 0 starts at this member's applied seqno, once
// it reached minSeqno. Events are read from storage up to the member's
// applied seqno, then taken from the apply path as it applies them.
//
// It fails with ErrOverloaded when Config.MaxWatches watches are open,
// with ErrSnapshotTooOld when the member no longer holds the
// changes after after (or a state transfer replaced them while the watch
// was open), with ErrNotPrimary when the member is or becomes cut off from
// the majority, and with ErrWatchBehind when the watcher's buffer of
// undelivered events filled up: send did not keep up with the commits.
// Every failure leaves the caller free to watch again after the last
// progress it was given, here or on another member.
func (s *Service) Watch(ctx context.Context, start, end []byte, after, minSeqno uint64, send WatchSend) error {
	if err := s.checkRange(start, end); err != nil {
		return err
	}
	if err := s.ord.Serving(false); err != nil {
		return err
	}
	if after == 0 {
		at, err := s.snapshot(ctx, 0, minSeqno)
		if err != nil {
			return err
		}
		after = at
	}
	if n := s.watches.Add(1); n > int64(s.cfg.MaxWatches) {
		s.watches.Add(-1)
		return fmt.Errorf("%w: %d watches open on this node (MaxWatches)", ErrOverloaded, n-1)
	}
	defer s.watches.Add(-1)
	w := newWatcher(start, end, s.cfg.WatchBuffer)
	applied := s.feed.add(w, s.store)
	defer s.feed.remove(w)
	err := s.watch(ctx, w, after, applied, send)
	if errors.Is(err, ErrWatchBehind) || errors.Is(err, ErrSnapshotTooOld) || errors.Is(err, ErrNotPrimary) {
		s.m.watchersCut.Inc()
	}
	return err
}

// watch sends what storage holds in (after, applied], then what the feed
// hands w.
func (s *Service) watch(ctx context.Context, w *watcher, after, applied uint64, send WatchSend) error {
	sent := after // every event at or below it was sent
	if err := s.store.HistoryHeld(after); err != nil {
		return storageErr(err)
	}
	if err := s.sendEvents(send, nil, sent); err != nil { // the watch started: say where
		return err
	}
	for sent < applied {
		changes, through, err := s.store.Changes(w.start, w.end, sent, applied, s.cfg.WatchBuffer)
		if err != nil {
			return storageErr(err)
		}
		if err := s.sendEvents(send, groupChanges(changes), through); err != nil {
			return err
		}
		sent = through
	}
	tick := time.NewTicker(s.cfg.WatchProgress)
	defer tick.Stop()
	spoke := false // sent events since the last tick
	for {
		events, err := w.take()
		if err != nil {
			return err
		}
		// Events at or below sent were read from storage already.
		events = slices.DeleteFunc(events, func(e Event) bool { return e.Seqno <= sent })
		if len(events) > 0 {
			last := events[len(events)-1].Seqno
			if err := s.sendEvents(send, events, last); err != nil {
				return err
			}
			sent, spoke = last, true
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.wake:
		case <-tick.C:
			if err := s.ord.Serving(false); err != nil {
				return err
			}
			if spoke {
				spoke = false // the client heard from this member lately
				continue
			}
			// Said even when it did not move: the client learns that the
			// member is alive.
			sent = max(sent, s.feed.progress(w))
			if err := s.sendEvents(send, nil, sent); err != nil {
				return err
			}
		}
	}
}

func (s *Service) sendEvents(send WatchSend, events []Event, progress uint64) error {
	if err := send(events, progress); err != nil {
		return err
	}
	s.m.watchEvents.Add(float64(len(events)))
	return nil
}

// checkRange checks a range read, scanned or watched: bounds no longer than
// a key, start before end (an empty end: no upper bound).
func (s *Service) checkRange(start, end []byte) error {
	if len(start) > s.cfg.Limits.MaxKeySize || len(end) > s.cfg.Limits.MaxKeySize {
		return fmt.Errorf("%w: range bound over %d bytes", ErrTooLarge, s.cfg.Limits.MaxKeySize)
	}
	if len(end) > 0 && bytes.Compare(start, end) >= 0 {
		return fmt.Errorf("%w: range start %q is not before end %q", ErrInvalidArgument, start, end)
	}
	return nil
}

// groupChanges turns storage's changes, in seqno then key order, into
// events.
func groupChanges(cs []storage.Change) []Event {
	var events []Event
	for _, c := range cs {
		if len(events) == 0 || events[len(events)-1].Seqno != c.Seqno {
			events = append(events, Event{Seqno: c.Seqno})
		}
		e := &events[len(events)-1]
		e.Changes = append(e.Changes, Change{Key: c.Key, Value: c.Value, Delete: c.Delete})
	}
	return events
}

// OnApplied hands the committed writes of a batch just applied to the
// watchers whose range they touch; seqno is the batch's applied seqno. It
// is called on the apply goroutine, in seqno order, and does not block: a
// watcher whose buffer is full is cut (ErrWatchBehind). recs and their
// Writes slices may be reused once it returns; keys and values are kept.
func (s *Service) OnApplied(recs []storage.Record, seqno uint64) { s.feed.publish(recs, seqno) }

// OnRestored cuts every watcher: a state transfer replaced this member's
// contents with those at seqno, and the changes before it are not held.
func (s *Service) OnRestored(seqno uint64) {
	s.feed.cutAll(fmt.Errorf("%w: a state transfer replaced this member's state with the one at seqno %d", ErrSnapshotTooOld, seqno))
}

// feed hands the writes the apply path applies to the watchers whose
// range they touch. The apply goroutine does the matching, in time
// proportional to the writes and the watchers they match, not to every
// watcher; the index it matches with is built by the watches as they come
// and go, off the apply path.
type feed struct {
	buildMu  sync.Mutex // serialises add, remove and cutAll; taken before mu
	watchers map[*watcher]struct{}

	mu        sync.Mutex
	index     rangeIndex // of every watcher in watchers
	published uint64     // the seqno of the last batch published
	touched   []*watcher
}

func newFeed() *feed { return &feed{watchers: map[*watcher]struct{}{}} }

// add registers w and returns the seqno the store has applied: every
// event above it reaches w through publish.
func (f *feed) add(w *watcher, store Store) uint64 {
	f.buildMu.Lock()
	defer f.buildMu.Unlock()
	f.watchers[w] = struct{}{}
	idx := newRangeIndex(f.watchers)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index = idx
	// Read under mu: a batch applied but not yet published is published to
	// w too, and its events, also read from storage, are dropped then.
	return store.Applied().Seqno
}

func (f *feed) remove(w *watcher) {
	f.buildMu.Lock()
	defer f.buildMu.Unlock()
	delete(f.watchers, w)
	idx := newRangeIndex(f.watchers)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index = idx
}

// progress returns a seqno at or below which every event of w was handed
// to it and taken, or 0.
func (f *feed) progress(w *watcher) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) > 0 || w.err != nil {
		return 0
	}
	return f.published
}

func (f *feed) publish(recs []storage.Record, seqno uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.published = seqno
	if len(f.index.bounds) == 0 {
		return // no watcher
	}
	for i := range recs {
		r := &recs[i]
		for _, wr := range r.Writes {
			for _, w := range f.index.lookup(wr.Key) {
				if len(w.building.Changes) == 0 {
					w.building.Seqno = r.Seqno
					f.touched = append(f.touched, w)
				}
				w.building.Changes = append(w.building.Changes, wr)
			}
		}
		for _, w := range f.touched {
			w.push(normalize(w.building))
			w.building = Event{}
		}
		clear(f.touched)
		f.touched = f.touched[:0]
	}
}

func (f *feed) cutAll(err error) {
	f.buildMu.Lock()
	defer f.buildMu.Unlock()
	for w := range f.watchers {
		w.cut(err)
	}
}

// normalize sorts e's changes by key, keeping the last write of a key.
func normalize(e Event) Event {
	slices.SortStableFunc(e.Changes, func(a, b Change) int { return bytes.Compare(a.Key, b.Key) })
	out := e.Changes[:0]
	for i, c := range e.Changes {
		if i+1 < len(e.Changes) && bytes.Equal(c.Key, e.Changes[i+1].Key) {
			continue // a later write of the same key wins
		}
		out = append(out, c)
	}
	e.Changes = out
	return e
}

// watcher is one open watch: its range and the events handed to it and
// not yet taken.
type watcher struct {
	start, end []byte
	limit      int           // bytes of pending events
	wake       chan struct{} // signalled when events arrive or the watcher is cut
	building   Event         // guarded by the feed's mu

	mu      sync.Mutex
	pending []Event
	size    int
	err     error // why it was cut
}

func newWatcher(start, end []byte, limit int) *watcher {
	return &watcher{start: start, end: end, limit: limit, wake: make(chan struct{}, 1)}
}

// push queues e, or cuts the watcher when its buffer is full. One event
// is always taken, however large.
func (w *watcher) push(e Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return
	}
	n := e.size()
	if len(w.pending) > 0 && w.size+n > w.limit {
		w.err = fmt.Errorf("%w: %d bytes of events waiting to be sent, at seqno %d", ErrWatchBehind, w.size, e.Seqno)
		w.pending, w.size = nil, 0
	} else {
		w.pending, w.size = append(w.pending, e), w.size+n
	}
	w.signal()
}

func (w *watcher) cut(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err, w.pending, w.size = err, nil, 0
		w.signal()
	}
}

func (w *watcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// take returns the pending events, or why the watcher was cut.
func (w *watcher) take() ([]Event, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return nil, w.err
	}
	events := w.pending
	w.pending, w.size = nil, 0
	return events, nil
}

// rangeIndex finds the watchers whose range holds a key. The bounds of
// every range cut the key space into segments; each segment lists the
// watchers covering it, so a lookup is one binary search.
type rangeIndex struct {
	bounds   [][]byte     // sorted, distinct; segment i is [bounds[i], bounds[i+1])
	segments [][]*watcher // segments[i] covers bounds[i]; the last has no upper bound
}

func newRangeIndex(ws map[*watcher]struct{}) rangeIndex {
	var bounds [][]byte
	for w := range ws {
		bounds = append(bounds, w.start)
		if len(w.end) > 0 {
			bounds = append(bounds, w.end)
		}
	}
	slices.SortFunc(bounds, bytes.Compare)
	bounds = slices.CompactFunc(bounds, bytes.Equal)
	idx := rangeIndex{bounds: bounds, segments: make([][]*watcher, len(bounds))}
	for w := range ws {
		i := idx.find(w.start)
		for ; i < len(bounds) && (len(w.end) == 0 || bytes.Compare(bounds[i], w.end) < 0); i++ {
			idx.segments[i] = append(idx.segments[i], w)
		}
	}
	return idx
}

// find returns the segment holding key, or -1 when key is below every
// bound.
func (x *rangeIndex) find(key []byte) int {
	return sort.Search(len(x.bounds), func(i int) bool { return bytes.Compare(x.bounds[i], key) > 0 }) - 1
}

func (x *rangeIndex) lookup(key []byte) []*watcher {
	if i := x.find(key); i >= 0 {
		return x.segments[i]
	}
	return nil
}
