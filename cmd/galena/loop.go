package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/workload/bank"
)

// The client loops of galena demo and galena bench: each client of a run
// runs one transaction after another, and the run counts what commits,
// what conflicts and what fails, with a progress line.

// errorPause keeps a loop from spinning on a broken cluster.
const errorPause = 10 * time.Millisecond

// step runs one transaction; committed is false after a conflict.
type step func(ctx context.Context) (committed bool, err error)

// loadStats are a run's live counters, shared by its loops and the
// progress line.
type loadStats struct {
	commits, conflicts, errors atomic.Int64
	mu                         sync.Mutex
	first                      error
}

func (s *loadStats) fail(err error) {
	s.errors.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first == nil {
		s.first = err
	}
}

// loadResult is what a measured run did.
type loadResult struct {
	Commits, Conflicts, Errors int64
	FirstError                 string
	Elapsed                    time.Duration
	Latencies                  []time.Duration // of the counted commits, sorted
}

// measure runs each of steps in a loop of its own, for warmup and then for
// duration, and counts what ends after the warm-up; the progress line
// starts then.
func measure(ctx context.Context, steps []step, warmup, duration time.Duration, p progress) loadResult {
	var st loadStats
	lats := make([][]time.Duration, len(steps))
	from := time.Now().Add(warmup)
	until := from.Add(duration)
	ctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	var wg sync.WaitGroup
	for i, s := range steps {
		wg.Go(func() { lats[i] = loop(ctx, s, from, &st) })
	}
	if warmup > 0 {
		pause(ctx, warmup)
	}
	stop := p.start(&st, from)
	wg.Wait()
	end := time.Now()
	if end.After(until) {
		end = until
	}
	stop()
	res := loadResult{Commits: st.commits.Load(), Conflicts: st.conflicts.Load(), Errors: st.errors.Load(),
		Elapsed: max(end.Sub(from), 0), Latencies: slices.Concat(lats...)}
	slices.Sort(res.Latencies)
	if st.first != nil {
		res.FirstError = st.first.Error()
	}
	return res
}

// loop runs s until ctx ends and counts the transactions that end at or
// after from; it returns the latencies of the counted commits.
func loop(ctx context.Context, s step, from time.Time, st *loadStats) []time.Duration {
	var lat []time.Duration
	for ctx.Err() == nil {
		began := time.Now()
		committed, err := s(ctx)
		ended := time.Now()
		if err != nil {
			pause(ctx, errorPause) // counted or not, do not spin on a broken cluster
		}
		switch {
		case ended.Before(from) || over(ctx): // warm-up, or cut short by the end
		case err != nil:
			st.fail(err)
		case committed:
			st.commits.Add(1)
			lat = append(lat, ended.Sub(began))
		default:
			st.conflicts.Add(1)
		}
	}
	return lat
}

// commitOnce runs fn in a new transaction and commits it, once. A conflict
// is reported as committed=false with no error.
func commitOnce(ctx context.Context, cl *client.Client, fn func(tx *client.Txn) error) (committed bool, err error) {
	_, committed, err = commitSeqno(ctx, cl, fn)
	return committed, err
}

// commitSeqno is commitOnce, and the seqno of the commit.
func commitSeqno(ctx context.Context, cl *client.Client, fn func(tx *client.Txn) error) (seqno uint64, committed bool, err error) {
	tx, err := cl.Begin(ctx)
	if err != nil {
		return 0, false, err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return 0, false, err
	}
	info, err := tx.Commit(ctx)
	if errors.Is(err, client.ErrConflict) {
		return 0, false, nil
	}
	return info.Seqno, err == nil, err
}

// pinnedClients returns n clients of cfg, client i bound to eps[i mod
// len(eps)] alone: it does not fail over.
func pinnedClients(n int, eps []string, cfg client.Config) ([]*client.Client, error) {
	var cls []*client.Client
	for i := range n {
		cfg.Endpoints = []string{eps[i%len(eps)]}
		cl, err := client.New(cfg)
		if err != nil {
			closeClients(cls)
			return nil, err
		}
		cls = append(cls, cl)
	}
	return cls, nil
}

func closeClients(cls []*client.Client) {
	for _, cl := range cls {
		cl.Close()
	}
}

// over reports whether ctx is done or past its deadline: a gRPC call can
// notice the deadline before ctx's own timer fires.
func over(ctx context.Context) bool {
	deadline, ok := ctx.Deadline()
	return ctx.Err() != nil || ok && !time.Now().Before(deadline)
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// rank returns the nearest-rank q-quantile of sorted, 0 when it is empty.
func rank(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[max(0, int(q*float64(len(sorted))+0.999999)-1)]
}

// progress prints a live line of a run's counters once a second.
type progress struct {
	w     io.Writer
	tty   bool   // rewrite one line with \r instead of printing lines
	label string // printed before the counters, if set
}

// start prints until the returned stop is called; stop returns after the
// printing goroutine has exited.
func (p progress) start(st *loadStats, began time.Time) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last int64
		printed := false
		report := func(now time.Time) {
			commits := st.commits.Load()
			p.line(fmt.Sprintf("%5.1fs  commits %7d  %6d/s  conflicts %6d  errors %d",
				now.Sub(began).Seconds(), commits, commits-last, st.conflicts.Load(), st.errors.Load()))
			last, printed = commits, true
		}
		for {
			select {
			case <-done:
				if !printed { // a run shorter than a tick still shows one line
					report(time.Now())
				}
				if p.tty {
					fmt.Fprintln(p.w)
				}
				return
			case now := <-t.C:
				report(now)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

func (p progress) line(s string) {
	if p.label != "" {
		s = p.label + "  " + s
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r%-72s", s)
		return
	}
	fmt.Fprintln(p.w, s)
}

// transfers are steps of bank transfers between random accounts, one per
// client. With retry a transfer that conflicts is tried again, the same
// accounts and amount; without, the next step draws a new one.
func transfers(b *bank.Bank, clients []*client.Client, retry bool) []step {
	steps := make([]step, len(clients))
	for i, cl := range clients {
		rng := rand.New(rand.NewPCG(uint64(i), rand.Uint64()))
		var from, to int
		var amount int64
		again := false
		steps[i] = func(ctx context.Context) (bool, error) {
			if !again {
				from, to, amount = b.Pick(rng)
			}
			committed, err := commitOnce(ctx, cl, func(tx *client.Txn) error {
				_, err := b.Transfer(ctx, tx, from, to, amount)
				return err
			})
			again = retry && err == nil && !committed
			return committed, err
		}
	}
	return steps
}

// readHolding reads every account on the member at ep, through a client of
// cfg bound to it alone, as member's.
func readHolding(ctx context.Context, b *bank.Bank, cfg client.Config, ep, member string, opts ...client.TxnOption) (bank.Holding, error) {
	cfg.Endpoints = []string{ep}
	cl, err := client.New(cfg)
	if err != nil {
		return bank.Holding{Member: member}, err
	}
	defer cl.Close()
	return b.Read(ctx, cl, member, opts...)
}
