package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/galenadb/galena/client"
)

// How `galena bench --watchers` runs its watches.
const (
	// watchersPerClient is how many watches share a client, and so a
	// stream: the watches of a few clients, as applications would run them.
	watchersPerClient = 500
	// watchDrain bounds the wait, after the run, for the events of the
	// last commits.
	watchDrain = 30 * time.Second
)

// ack is a seqno and a time: when a commit's writer learned it committed,
// or when a watch returned its event (an arrival).
type ack struct {
	seqno uint64
	at    time.Time
}

// benchWatch is the --watchers watches of one put run, all on the first
// endpoint, splitting the key space between them so that each commit
// reaches exactly one.
type benchWatch struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	clients  []*client.Client
	events   atomic.Int64
	arrivals [][]ack // one slice per watch, its own
	mu       sync.Mutex
	failure  error // the first watch that ended early, and why
}

// startWatches opens n watches on ep and returns once every one started.
func startWatches(ctx context.Context, n, keys int, ep string, cfg client.Config) (*benchWatch, error) {
	ctx, cancel := context.WithCancel(ctx)
	bw := &benchWatch{cancel: cancel, arrivals: make([][]ack, n)}
	var err error
	if bw.clients, err = pinnedClients((n+watchersPerClient-1)/watchersPerClient, []string{ep}, cfg); err != nil {
		cancel()
		return nil, err
	}
	setup, done := context.WithTimeout(ctx, setupTimeout)
	defer done()
	started := make(chan error, n)
	for i := range n {
		lo, hi := i*keys/n, (i+1)*keys/n
		cl := bw.clients[i/watchersPerClient]
		bw.wg.Go(func() {
			w, err := cl.Watch(ctx, benchKey(lo), benchKey(hi), 0)
			started <- err
			if err == nil {
				bw.follow(ctx, w, i)
			}
		})
	}
	for range n {
		select {
		case err = <-started:
		case <-setup.Done():
			err = fmt.Errorf("watches not started within %v: %w", setupTimeout, setup.Err())
		}
		if err != nil {
			bw.stop()
			return nil, fmt.Errorf("watch on %s: %w", ep, err)
		}
	}
	return bw, nil
}

// follow records when each event of w arrives, until ctx ends.
func (bw *benchWatch) follow(ctx context.Context, w *client.Watcher, i int) {
	defer w.Close()
	for {
		e, err := w.Next()
		if err != nil {
			if ctx.Err() == nil {
				bw.mu.Lock()
				bw.failure = cmp.Or(bw.failure, fmt.Errorf("watch %d ended after seqno %d: %w", i, w.Progress(), err))
				bw.mu.Unlock()
			}
			return
		}
		bw.arrivals[i] = append(bw.arrivals[i], ack{e.Seqno, time.Now()})
		bw.events.Add(1)
	}
}

// stop ends every watch and waits for them.
func (bw *benchWatch) stop() {
	bw.cancel()
	bw.wg.Wait()
	closeClients(bw.clients)
}

// finish waits (at most watchDrain) for the event of every acknowledged
// commit, stops the watches and adds what they saw to res: how many
// events, how many commits had none, and the delivery latency from the
// writer's acknowledgement to the watch's arrival (an event that arrived
// before its writer heard counts as 0).
func (bw *benchWatch) finish(ctx context.Context, res *benchResult, acks []ack) {
	deadline := time.Now().Add(watchDrain)
	for bw.events.Load() < int64(len(acks)) && time.Now().Before(deadline) && bw.err() == nil && ctx.Err() == nil {
		pause(ctx, 10*time.Millisecond)
	}
	bw.stop()
	ackAt := make(map[uint64]time.Time, len(acks))
	for _, a := range acks {
		ackAt[a.seqno] = a.at
	}
	var lat []time.Duration
	for _, as := range bw.arrivals {
		for _, a := range as {
			if at, ok := ackAt[a.seqno]; ok { // its first arrival
				delete(ackAt, a.seqno)
				lat = append(lat, max(a.at.Sub(at), 0))
			}
		}
	}
	slices.Sort(lat)
	res.Watchers = len(bw.arrivals)
	res.WatchEvents = bw.events.Load()
	res.WatchMissed = int64(len(ackAt)) // acknowledged, never arrived
	res.WatchP50ms, res.WatchP99ms = ms(rank(lat, 0.5)), ms(rank(lat, 0.99))
	if err := bw.err(); err != nil {
		res.WatchError = err.Error()
	}
}

func (bw *benchWatch) err() error {
	bw.mu.Lock()
	defer bw.mu.Unlock()
	return bw.failure
}
