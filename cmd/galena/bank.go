package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/galenadb/galena/client"
)

const (
	initialBalance = 100
	accountPrefix  = "acct/"
	// setupTimeout bounds the election and loading before the workload, and
	// the convergence check after it.
	setupTimeout = 30 * time.Second
)

func accountKey(i int) []byte { return fmt.Appendf(nil, "%s%04d", accountPrefix, i) }

// bankReport is the outcome of the bank workload.
type bankReport struct {
	Accounts   int
	Commits    int64 // committed transfers
	Conflicts  int64 // transfer attempts certified as conflicts, then retried
	Errors     int64 // transfers that failed otherwise
	FirstError string
	Elapsed    time.Duration
	P50, P99   time.Duration // begin→commit of committed transfers
	Seqno      uint64        // the seqno every member had applied when totals were read
	Totals     []memberTotal
}

// memberTotal is the money one member holds, read from its own storage.
type memberTotal struct {
	ID, Addr        string
	Accounts, Total int
}

// runBank loads the accounts, runs the transfers and reads every member's
// total once they have all applied the same seqno.
func (c *demoCluster) runBank(ctx context.Context, o demoOptions, p progress) (bankReport, error) {
	rep := bankReport{Accounts: o.Accounts}
	setup, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	if err := c.waitSynced(setup); err != nil {
		return rep, err
	}
	if err := c.loadAccounts(setup, o.Accounts); err != nil {
		return rep, fmt.Errorf("load accounts: %w", err)
	}
	// Each transfer client is a new session: let every member apply the
	// accounts before one reads from it.
	if _, err := c.waitSame(setup); err != nil {
		return rep, err
	}
	if err := c.transfers(ctx, o, p, &rep); err != nil {
		return rep, err
	}
	// Check even after Ctrl-C: the workload stopped, the cluster did not.
	verify, cancel := context.WithTimeout(context.WithoutCancel(ctx), setupTimeout)
	defer cancel()
	var err error
	if rep.Seqno, err = c.waitSame(verify); err != nil {
		return rep, err
	}
	rep.Totals, err = c.totals(verify)
	return rep, err
}

// loadAccounts creates every account with initialBalance in one transaction.
func (c *demoCluster) loadAccounts(ctx context.Context, accounts int) error {
	cl, err := c.newClient(0)
	if err != nil {
		return err
	}
	defer cl.Close()
	value := []byte(strconv.Itoa(initialBalance))
	return cl.Update(ctx, func(tx *client.Txn) error {
		for i := range accounts {
			if err := tx.Put(accountKey(i), value); err != nil {
				return err
			}
		}
		return nil
	})
}

// workloadStats are a workload's live counters, shared by its loops and the
// progress line.
type workloadStats struct {
	commits, conflicts, errors atomic.Int64
	mu                         sync.Mutex
	first                      error
}

func (s *workloadStats) fail(err error) {
	s.errors.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first == nil {
		s.first = err
	}
}

// transfers runs o.Clients transfer loops for o.Duration, loop i on its own
// client bound to member i mod 3, and fills rep's counters and latencies.
func (c *demoCluster) transfers(ctx context.Context, o demoOptions, p progress, rep *bankReport) error {
	clients := make([]*client.Client, 0, o.Clients)
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
	}()
	for i := range o.Clients {
		cl, err := c.newClient(i)
		if err != nil {
			return err
		}
		clients = append(clients, cl)
	}
	var st workloadStats
	lats := make([][]time.Duration, len(clients))
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	began := time.Now()
	stop := p.start(&st, began)
	var wg sync.WaitGroup
	for i, cl := range clients {
		wg.Go(func() { lats[i] = transferLoop(ctx, cl, o.Accounts, &st) })
	}
	wg.Wait()
	rep.Elapsed = time.Since(began)
	stop()
	rep.Commits, rep.Conflicts, rep.Errors = st.commits.Load(), st.conflicts.Load(), st.errors.Load()
	if st.first != nil {
		rep.FirstError = st.first.Error()
	}
	rep.P50, rep.P99 = percentiles(slices.Concat(lats...))
	return nil
}

// transferLoop runs random transfers until ctx ends, retrying a transfer
// after a conflict, and returns the latencies of the committed ones.
func transferLoop(ctx context.Context, c *client.Client, accounts int, st *workloadStats) []time.Duration {
	var lat []time.Duration
	for ctx.Err() == nil {
		from, to := pickPair(accounts)
		for {
			began := time.Now()
			err := transfer(ctx, c, from, to)
			switch {
			case err == nil:
				st.commits.Add(1)
				lat = append(lat, time.Since(began))
			case over(ctx): // the workload is over; this attempt does not count
			case errors.Is(err, client.ErrConflict):
				st.conflicts.Add(1)
				continue
			default:
				st.fail(err)
				pause(ctx, errorPause) // do not spin on a broken cluster
			}
			break
		}
	}
	return lat
}

// transfer moves a random amount, at most the payer's balance, between two
// accounts in one explicit transaction.
func transfer(ctx context.Context, c *client.Client, from, to int) error {
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	a, err := balance(ctx, tx, accountKey(from))
	if err != nil {
		return err
	}
	b, err := balance(ctx, tx, accountKey(to))
	if err != nil {
		return err
	}
	if a == 0 { // pay the other way
		from, to, a, b = to, from, b, a
	}
	amount := 0
	if a > 0 {
		amount = 1 + rand.IntN(a)
	}
	tx.Put(accountKey(from), []byte(strconv.Itoa(a-amount)))
	tx.Put(accountKey(to), []byte(strconv.Itoa(b+amount)))
	_, err = tx.Commit(ctx)
	return err
}

// balance reads the balance of the account at key.
func balance(ctx context.Context, tx *client.Txn, key []byte) (int, error) {
	v, err := tx.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("account %s holds %q, not a balance", key, v)
	}
	return n, nil
}

// pickPair returns two different random accounts.
func pickPair(accounts int) (int, int) {
	from, to := rand.IntN(accounts), rand.IntN(accounts-1)
	if to >= from {
		to++
	}
	return from, to
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

// percentiles returns the nearest-rank 50th and 99th percentiles of lat.
func percentiles(lat []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(lat)
	return rank(lat, 0.50), rank(lat, 0.99)
}

// rank returns the nearest-rank q-quantile of sorted, 0 when it is empty.
func rank(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[max(0, int(q*float64(len(sorted))+0.999999)-1)]
}

// totals reads all accounts from each member through a client bound to it.
func (c *demoCluster) totals(ctx context.Context) ([]memberTotal, error) {
	var out []memberTotal
	for i, n := range c.nodes {
		t := memberTotal{ID: n.ID(), Addr: c.endpoints[i]}
		var err error
		if t.Accounts, t.Total, err = c.memberTotal(ctx, i); err != nil {
			return out, fmt.Errorf("read the total on %s: %w", n.ID(), err)
		}
		out = append(out, t)
	}
	return out, nil
}

func (c *demoCluster) memberTotal(ctx context.Context, i int) (accounts, total int, err error) {
	cl, err := c.newClient(i)
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	var bs []int
	err = cl.View(ctx, func(tx *client.Txn) (err error) {
		bs, err = balances(ctx, tx, accountPrefix)
		return err
	})
	for _, b := range bs {
		total += b
	}
	return len(bs), total, err
}

// balances reads every account under prefix at tx's snapshot. A balance
// may be negative; a value that is not a number is an error.
func balances(ctx context.Context, tx *client.Txn, prefix string) ([]int, error) {
	kvs, err := tx.Scan(ctx, []byte(prefix), prefixEnd([]byte(prefix)), 0)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(kvs))
	for i, kv := range kvs {
		if out[i], err = strconv.Atoi(string(kv.Value)); err != nil {
			return nil, fmt.Errorf("account %s holds %q, not a balance", kv.Key, kv.Value)
		}
	}
	return out, nil
}

// check reports a workload that committed nothing or a member whose total
// is not what the accounts started with.
func (r bankReport) check() error {
	want := r.Accounts * initialBalance
	var errs []error
	if r.Commits == 0 {
		errs = append(errs, errors.New("demo: no transfer committed"))
	}
	for _, t := range r.Totals {
		if t.Total != want || t.Accounts != r.Accounts {
			errs = append(errs, fmt.Errorf("demo: %s holds %d in %d accounts, want %d in %d",
				t.ID, t.Total, t.Accounts, want, r.Accounts))
		}
	}
	return errors.Join(errs...)
}

func (r bankReport) print(w io.Writer) {
	secs := r.Elapsed.Seconds()
	fmt.Fprintf(w, "commits     %d in %.1fs (%.1f commits/s)\n", r.Commits, secs, float64(r.Commits)/max(secs, 1e-9))
	fmt.Fprintf(w, "conflicts   %d (certification conflicts, retried)\n", r.Conflicts)
	if r.Errors > 0 {
		fmt.Fprintf(w, "errors      %d (first: %s)\n", r.Errors, r.FirstError)
	} else {
		fmt.Fprintln(w, "errors      0")
	}
	fmt.Fprintf(w, "latency     p50 %v  p99 %v (begin to commit of committed transfers)\n",
		r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond))
	fmt.Fprintf(w, "applied     seqno %d on every member, digests equal\n", r.Seqno)
	want := r.Accounts * initialBalance
	for _, t := range r.Totals {
		verdict := "ok"
		if t.Total != want || t.Accounts != r.Accounts {
			verdict = "WRONG"
		}
		fmt.Fprintf(w, "total       %s %s: %d in %d accounts (want %d) %s\n", t.ID, t.Addr, t.Total, t.Accounts, want, verdict)
	}
}

// progress prints a live line of the workload's counters once a second.
type progress struct {
	w     io.Writer
	tty   bool   // rewrite one line with \r instead of printing lines
	label string // printed before the counters, if set
}

// start prints until the returned stop is called; stop returns after the
// printing goroutine has exited.
func (p progress) start(st *workloadStats, began time.Time) (stop func()) {
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
