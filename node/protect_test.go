package node_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/node"
	"github.com/galenadb/galena/node/nodetest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// floodResult counts what a flood of commits got back.
type floodResult struct {
	ok, overloaded atomic.Int64
	mu             sync.Mutex
	other          []error
}

func (r *floodResult) note(err error) {
	switch {
	case err == nil:
		r.ok.Add(1)
	case errors.Is(err, client.ErrOverloaded):
		r.overloaded.Add(1)
	default:
		r.mu.Lock()
		r.other = append(r.other, err)
		r.mu.Unlock()
	}
}

// flood commits from clients×workers goroutines, attempts each, to ep, each
// client on its own connection, and closes done when all have finished.
func flood(t *testing.T, ep string, clients, workers, attempts int, r *floodResult, done chan<- struct{}) {
	var wg sync.WaitGroup
	ctx := ctxT(t)
	for c := range clients {
		cl := newClient(t, ep)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range attempts {
					tx, _ := cl.Begin(ctx)
					tx.Put([]byte(fmt.Sprintf("flood/%d/%d/%d", c, w, i)), make([]byte, 512))
					_, err := tx.Commit(ctx)
					r.note(err)
				}
			}()
		}
	}
	go func() { wg.Wait(); close(done) }()
}

// A flood of commits beyond MaxInflightCommits is refused at once with
// ErrOverloaded rather than queued: the member keeps answering reads and
// status calls within a deadline, never holds more commits than the bound,
// and its heap does not grow with the flood.
func TestCommitFloodIsRefusedNotQueued(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	const (
		bound = 4
		// probeTimeout bounds each read and status call during the flood:
		// generous for a busy machine that runs the 128 committers too,
		// and still failing a member whose reads hang behind the flood.
		probeTimeout = 10 * time.Second
	)
	c := nodetest.MakeClusterWith(t, 1, func(_ int, cfg *node.Config) { cfg.Txn.MaxInflightCommits = bound })
	c.Leader()
	ep := c.Endpoints()[0]
	putN(t, newClient(t, ep), "probe", 1)
	probe := newClient(t, ep)
	kv := rawKV(t, ep)
	heapBefore := heapAlloc()

	var r floodResult
	done := make(chan struct{})
	flood(t, ep, 16, 8, 30, &r, done) // 128 committers
	probes := 0
	var slowest time.Duration
	for flooding := true; flooding; {
		select {
		case <-done:
			flooding = false
		default:
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		_, gerr := probe.Get(ctx, []byte("probe0000"))
		_, serr := kv.Status(ctx, &galenapb.StatusRequest{})
		cancel()
		if gerr != nil || serr != nil {
			t.Fatalf("during the flood: Get %v, Status %v", gerr, serr)
		}
		slowest = max(slowest, time.Since(start))
		if n, _ := sum(scrape(t, ep), "galena_inflight_commits"); n > bound {
			t.Fatalf("%v commits in flight, bound %d", n, bound)
		}
		probes++
	}
	heapAfter := heapAlloc()

	t.Logf("flood: %d committed, %d overloaded; %d probes, slowest %v; heap %d KiB → %d KiB",
		r.ok.Load(), r.overloaded.Load(), probes, slowest, heapBefore>>10, heapAfter>>10)
	if len(r.other) > 0 {
		t.Fatalf("%d commits failed otherwise than ErrOverloaded, e.g. %v", len(r.other), r.other[0])
	}
	if r.ok.Load() == 0 || r.overloaded.Load() == 0 {
		t.Fatalf("%d committed, %d overloaded; want both", r.ok.Load(), r.overloaded.Load())
	}
	if n, _ := sum(scrape(t, ep), "galena_commits_overloaded_total"); n != float64(r.overloaded.Load()) {
		t.Errorf("galena_commits_overloaded_total = %v, clients saw %d", n, r.overloaded.Load())
	}
	if heapAfter > heapBefore+32<<20 {
		t.Errorf("heap grew from %d KiB to %d KiB over the flood", heapBefore>>10, heapAfter>>10)
	}
}

// observed tees each member's log into one observer, to look for lines.
func observed(logs *observer.ObservedLogs, core zapcore.Core) func(int, *node.Config) {
	return func(_ int, cfg *node.Config) {
		cfg.Logger = zap.New(zapcore.NewTee(cfg.Logger.Core(), core)).Named(cfg.ID)
	}
}

// Closing the leader while commits are in flight lets them finish or
// refuses them cleanly (never an unknown outcome), and hands leadership
// over: the member that leads next was told to stand by the old leader,
// rather than standing after its heartbeat timeout ran out.
func TestCloseLeaderHandsOver(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	core, logs := observer.New(zap.InfoLevel)
	const timeout = 2 * time.Second
	c := nodetest.MakeClusterWith(t, 3, func(i int, cfg *node.Config) {
		observed(logs, core)(i, cfg)
		cfg.Group.HeartbeatTimeout, cfg.Group.ElectionTimeout, cfg.Group.LeaderLeaseTimeout = timeout, timeout, timeout/2
	})
	ld := c.Leader()
	old := c.Nodes[ld].ID()
	cl := newClient(t, c.Endpoints()[ld])

	type result struct {
		key string
		err error
	}
	results := make(chan result, 1024)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var committed atomic.Int64
	started := make(chan struct{})
	var startOnce sync.Once
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := ctxT(t)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("close/%d/%d", w, i)
				err := cl.Put(ctx, []byte(key), []byte("v"))
				results <- result{key, err}
				if err != nil {
					return
				}
				if committed.Add(1) == 40 {
					startOnce.Do(func() { close(started) })
				}
			}
		}()
	}
	<-started
	before := logs.Len()
	c.Stop(ld)
	stopped := time.Now()
	close(stop)
	wg.Wait()
	close(results)

	next := c.Leader()
	t.Logf("new leader %s %v after %s stopped", c.Nodes[next].ID(), time.Since(stopped), old)
	if logs.FilterMessage("leadership handed over").FilterField(zap.String("node", old)).Len() != 1 {
		t.Errorf("%s did not log handing leadership over", old)
	}
	// Raft logs this when a follower stands for election because it stopped
	// hearing from its leader; a member told to stand by the leader does not.
	for _, e := range logs.All()[before:] {
		if e.Message == "heartbeat timeout reached, starting election" && e.ContextMap()["node"] == c.Nodes[next].ID() {
			t.Errorf("%s led next after its heartbeat timeout ran out, not by a hand-over", c.Nodes[next].ID())
		}
	}

	survivors := newClient(t, c.Endpoints()[next])
	var ok, refused int
	for r := range results {
		_, err := survivors.Get(ctxT(t), []byte(r.key))
		switch {
		case r.err == nil && err == nil:
			ok++
		case r.err == nil:
			t.Errorf("commit of %s acknowledged, but it reads %v", r.key, err)
		case errors.Is(r.err, client.ErrIndeterminate):
			t.Errorf("commit of %s in flight at Close ended without an outcome: %v", r.key, r.err)
		case !errors.Is(r.err, client.ErrUnavailable):
			t.Errorf("commit of %s: %v, want success or ErrUnavailable", r.key, r.err)
		case !errors.Is(err, client.ErrNotFound):
			t.Errorf("commit of %s refused (%v), but it reads %v", r.key, r.err, err)
		default:
			refused++
		}
	}
	t.Logf("%d commits acknowledged, %d refused while %s stopped", ok, refused, old)

	start := time.Now()
	c.Start(ld)
	// The new leader's first entry is raft's own and is never applied; a
	// commit after it gives every member a seqno to reach.
	putN(t, survivors, "after", 1)
	c.EnsureSame()
	t.Logf("%s restarted and caught up in %v", old, time.Since(start))
}
