package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/spf13/cobra"
)

// Workloads of `galena bench`, the same as the reference harness kvbench's.
const (
	workloadPut  = "put"  // blind single-key write
	workloadRMW  = "rmw"  // read two keys at one snapshot, write both
	workloadHot  = "hot"  // rmw over benchHotKeys keys: contention
	workloadRead = "read" // single-key snapshot read
	workloadBank = "bank" // transfers between benchAccounts accounts
)

var benchWorkloads = []string{workloadPut, workloadRMW, workloadHot, workloadRead, workloadBank}

const (
	benchHotKeys    = 100
	benchAccounts   = 100
	benchBalance    = 1000 // each account's balance when loaded
	benchKeyPrefix  = "bench/k"
	benchAcctPrefix = "bench/acct/"
	// benchMaxValue is the largest --value-size: a member's default
	// MaxValueSize.
	benchMaxValue = 1 << 20
	// Loading writes at most loadBatchKeys keys or loadBatchBytes bytes per
	// transaction, with loadParallel transactions in flight.
	loadBatchKeys  = 500
	loadBatchBytes = 4 << 20
	loadParallel   = 4
	// errorPause keeps a loop from spinning on a broken cluster.
	errorPause = 10 * time.Millisecond
)

func benchKey(i int) []byte     { return fmt.Appendf(nil, "%s%08d", benchKeyPrefix, i) }
func benchAccount(i int) []byte { return fmt.Appendf(nil, "%s%04d", benchAcctPrefix, i) }

// loadFlag is --load: unset means each workload's default.
type loadFlag struct{ set, on bool }

func (l *loadFlag) String() string {
	if !l.set {
		return "auto"
	}
	return strconv.FormatBool(l.on)
}

func (l *loadFlag) Set(s string) error {
	on, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	l.set, l.on = true, on
	return nil
}

func (l *loadFlag) Type() string { return "bool" }

// benchOptions are the flags of `galena bench`.
type benchOptions struct {
	Workloads    []string
	Keys         int // key space of put, rmw and read
	ValueSize    int
	Clients      int
	Duration     time.Duration // measured, per workload
	Warmup       time.Duration // run but not measured, before each workload
	Local        bool          // start an in-process cluster
	EndpointsSet bool          // --endpoints was given
	JSON         bool
	Load         loadFlag
}

func (o benchOptions) validate() error {
	for _, w := range o.Workloads {
		if !slices.Contains(benchWorkloads, w) {
			return usagef("--workload: unknown workload %q (want a comma list of %s)", w, strings.Join(benchWorkloads, ", "))
		}
	}
	switch {
	case len(o.Workloads) == 0:
		return usagef("--workload names no workload")
	case o.Keys < 2:
		return usagef("--keys must be at least 2, got %d", o.Keys)
	case o.ValueSize < 0 || o.ValueSize > benchMaxValue:
		return usagef("--value-size must be in 0..%d, got %d", benchMaxValue, o.ValueSize)
	case o.Clients < 1:
		return usagef("--clients must be at least 1, got %d", o.Clients)
	case o.Duration <= 0:
		return usagef("--duration must be positive, got %v", o.Duration)
	case o.Warmup < 0:
		return usagef("--warmup must not be negative, got %v", o.Warmup)
	case o.Local && o.EndpointsSet:
		return usagef("--local (start a cluster in-process) and --endpoints (use a running one) exclude each other")
	}
	return nil
}

// keySpace is the number of keys workload w draws from.
func (o benchOptions) keySpace(w string) int {
	switch w {
	case workloadHot:
		return benchHotKeys
	case workloadBank:
		return benchAccounts
	}
	return o.Keys
}

// load reports whether the key space of w is written before it runs. Bank
// always creates its accounts: its check needs their starting total.
func (o benchOptions) load(w string) bool {
	switch {
	case w == workloadBank:
		return true
	case o.Load.set:
		return o.Load.on
	}
	return w != workloadPut
}

func newBenchCmd(g *globalFlags) *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the cluster's throughput and latency under a workload",
		Long: `Measure the cluster's throughput and latency under one or more workloads, run
one after the other (the workloads of the reference harness kvbench):

  put   blind single-key write, uniform over --keys keys
  rmw   read 2 keys at one snapshot, write both, uniform over --keys keys
  hot   rmw over only 100 keys: high contention
  read  single-key snapshot read, uniform over --keys keys
  bank  transfers of 1..5 between 100 accounts of 1000 each; at the end the
        total is read on every endpoint (with --local, every member) at a
        linearizable snapshot and must still be 100000, with no balance
        below zero

Each of --clients clients is a client.Client bound to one endpoint only
(client i to endpoint i mod the number of endpoints; it does not fail over,
as in kvbench) and runs one transaction after another. Every transaction is tried once, as kvbench does: a certification
conflict counts as an abort and is not retried (the client goes on with new
random keys), so the latency percentiles are those of single committed
attempts, from Begin to the commit's answer (for read, of the read). An
error is any failure other than a conflict. Transactions that end during
--warmup are not counted. The key space is preloaded before timing
(--load; by default for rmw, hot and read, not for put); bank always creates
its accounts.

A progress line goes to stderr once a second; the results go to stdout as a
table, or with --json as one JSON object per workload: workload, clients,
keys, value_size, duration_s, commits, commits_per_s, aborts, abort_ratio,
errors, p50_ms, p99_ms, p999_ms, first_error, and for bank bank_ok and
bank_detail.

With --local a 3-member cluster runs in this process, its data in a temporary
directory removed at the end, and the members' digests are compared at the
end. Otherwise the workloads run against --endpoints, and --dial-timeout
bounds each connection attempt (--timeout does not apply: --duration bounds
the run).

Exit status 1 when any workload had errors or the bank total did not hold.`,
		Example: `  galena bench --local --workload put,rmw,hot,read,bank --duration 5s
  galena --endpoints 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 bench --workload rmw --json`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			o.EndpointsSet = cmd.Flags().Changed("endpoints")
			for i, w := range o.Workloads {
				o.Workloads[i] = strings.TrimSpace(w)
			}
			return runBench(cmd.Context(), o, g, cmd.OutOrStdout(), cmd.ErrOrStderr())
		}),
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&o.Workloads, "workload", []string{workloadPut}, "workloads to run in turn: "+strings.Join(benchWorkloads, ", "))
	fl.IntVar(&o.Keys, "keys", 100000, "key space of put, rmw and read (hot uses 100 keys, bank 100 accounts)")
	fl.IntVar(&o.ValueSize, "value-size", 100, "bytes per written value (not bank's)")
	fl.IntVar(&o.Clients, "clients", 48, "concurrent clients, spread round-robin over the endpoints")
	fl.DurationVar(&o.Duration, "duration", 10*time.Second, "measured time per workload")
	fl.DurationVar(&o.Warmup, "warmup", 2*time.Second, "time run before each measurement and not counted")
	fl.BoolVar(&o.Local, "local", false, "start a 3-member cluster in-process (data in a temporary directory) instead of using --endpoints")
	fl.BoolVar(&o.JSON, "json", false, "print one JSON object per workload instead of the table")
	fl.Var(&o.Load, "load", "preload the key space before timing; auto loads it for rmw, hot and read")
	fl.Lookup("load").NoOptDefVal = "true"
	return cmd
}

// benchResult is one workload's outcome, printed as is by --json.
type benchResult struct {
	Workload    string  `json:"workload"`
	Clients     int     `json:"clients"`
	Keys        int     `json:"keys"`
	ValueSize   int     `json:"value_size"`
	DurationS   float64 `json:"duration_s"`
	Commits     int64   `json:"commits"`
	CommitsPerS float64 `json:"commits_per_s"`
	Aborts      int64   `json:"aborts"` // certification conflicts, not retried
	AbortRatio  float64 `json:"abort_ratio"`
	Errors      int64   `json:"errors"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	P999ms      float64 `json:"p999_ms"`
	FirstError  string  `json:"first_error,omitempty"`
	BankOK      *bool   `json:"bank_ok,omitempty"`
	BankDetail  string  `json:"bank_detail,omitempty"`
}

// failure is the result's error: errors, or a bank total that did not hold.
func (r benchResult) failure() error {
	var errs []error
	if r.Errors > 0 {
		errs = append(errs, fmt.Errorf("%s: %d errors (first: %s)", r.Workload, r.Errors, r.FirstError))
	}
	if r.BankOK != nil && !*r.BankOK {
		errs = append(errs, fmt.Errorf("%s: the total did not hold: %s", r.Workload, r.BankDetail))
	}
	return errors.Join(errs...)
}

// runBench is `galena bench`: results go to out, progress and member logs to
// errOut.
func runBench(ctx context.Context, o benchOptions, g *globalFlags, out, errOut io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	tty := isTerminal(errOut)
	errOut = &lockedWriter{w: errOut}
	r := &benchRun{o: o, errOut: errOut, tty: tty, dialTimeout: g.dialTimeout, value: benchValue(o.ValueSize)}
	if o.Local {
		c, err := r.startLocal(ctx)
		if c != nil {
			defer c.close(errOut)
		}
		if err != nil {
			return err
		}
	} else {
		eps, err := g.endpointList()
		if err != nil {
			return err
		}
		if r.tls, err = g.clientTLS(); err != nil {
			return err
		}
		r.eps = eps
	}
	results, err := r.runAll(ctx, out)
	if !o.JSON && len(results) > 0 {
		err = errors.Join(err, printBench(out, results))
	}
	if r.local != nil {
		err = errors.Join(err, r.checkLocal(ctx))
	}
	for _, res := range results {
		err = errors.Join(err, res.failure())
	}
	return err
}

// benchRun is one `galena bench` invocation.
type benchRun struct {
	o           benchOptions
	errOut      io.Writer
	tty         bool
	dialTimeout time.Duration
	tls         *tls.Config // --tls-*, against a running cluster
	value       []byte
	local       *demoCluster // with --local
	eps         []string
	clients     []*client.Client // client i is pinned to eps[i%len(eps)]
	loaded      int              // keys benchKey(0..loaded-1) are written
}

// startLocal starts the in-process cluster and waits for its leader.
func (r *benchRun) startLocal(ctx context.Context) (*demoCluster, error) {
	c, err := startDemoCluster(r.errOut)
	if err != nil {
		return nil, err
	}
	r.local, r.eps = c, c.endpoints
	fmt.Fprintf(r.errOut, "galena bench: %d members on %s (data in %s)\n", demoMembers, strings.Join(c.endpoints, ", "), c.dir)
	setup, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	return c, c.waitSynced(setup)
}

// checkLocal checks that the in-process members applied the same history.
func (r *benchRun) checkLocal(ctx context.Context) error {
	verify, cancel := context.WithTimeout(context.WithoutCancel(ctx), setupTimeout)
	defer cancel()
	seq, err := r.local.waitSame(verify)
	if err == nil {
		fmt.Fprintf(r.errOut, "galena bench: every member applied seqno %d, digests equal\n", seq)
	}
	return err
}

// runAll runs the workloads in turn, printing each JSON result as it comes.
// It stops early, with the results so far, when ctx ends.
func (r *benchRun) runAll(ctx context.Context, out io.Writer) ([]benchResult, error) {
	defer r.closeClients()
	for i := range r.o.Clients {
		cl, err := r.newClient(r.eps[i%len(r.eps)])
		if err != nil {
			return nil, err
		}
		r.clients = append(r.clients, cl)
	}
	var results []benchResult
	for _, w := range r.o.Workloads {
		res, err := r.runWorkload(ctx, w)
		if err != nil {
			return results, fmt.Errorf("%s: %w", w, explain(err, r.eps, setupTimeout))
		}
		results = append(results, res)
		if r.o.JSON {
			if err := json.NewEncoder(out).Encode(res); err != nil {
				return results, err
			}
		}
		if ctx.Err() != nil {
			return results, fmt.Errorf("interrupted during %s", w)
		}
	}
	return results, nil
}

func (r *benchRun) newClient(ep string) (*client.Client, error) {
	return client.New(client.Config{Endpoints: []string{ep}, DialTimeout: r.dialTimeout, TLS: r.tls})
}

func (r *benchRun) closeClients() {
	for _, cl := range r.clients {
		cl.Close()
	}
	r.clients = nil
}

// runWorkload prepares the key space, measures w and, for bank, checks the
// total.
func (r *benchRun) runWorkload(ctx context.Context, w string) (benchResult, error) {
	if err := r.prepare(ctx, w); err != nil {
		return benchResult{}, err
	}
	res := r.measure(ctx, w)
	if w == workloadBank {
		verify, cancel := context.WithTimeout(context.WithoutCancel(ctx), setupTimeout)
		defer cancel()
		ok, detail := r.checkBank(verify)
		res.BankOK, res.BankDetail = &ok, detail
	}
	return res, nil
}

// prepare writes w's key space if it is to be loaded, then brings every
// client's session up to date, so that no client reads from a member that
// has not applied the load yet.
func (r *benchRun) prepare(ctx context.Context, w string) error {
	if r.o.load(w) {
		began := time.Now()
		n, err := benchAccounts, error(nil)
		if w == workloadBank {
			err = r.loadAccounts(ctx)
		} else {
			n, err = r.loadKeys(ctx, r.o.keySpace(w))
		}
		if err != nil {
			return fmt.Errorf("load: %w", err)
		}
		if n > 0 {
			fmt.Fprintf(r.errOut, "%s: loaded %d keys in %v\n", w, n, time.Since(began).Round(time.Millisecond))
		}
	}
	return r.catchUp(ctx)
}

// loadAccounts sets every bank account to benchBalance in one transaction.
func (r *benchRun) loadAccounts(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	value := []byte(strconv.Itoa(benchBalance))
	return r.clients[0].Update(ctx, func(tx *client.Txn) error {
		for i := range benchAccounts {
			if err := tx.Put(benchAccount(i), value); err != nil {
				return err
			}
		}
		return nil
	})
}

// loadKeys writes benchKey(0..n-1), in batches, loadParallel at a time
// through clients on different endpoints, and returns how many it wrote:
// keys an earlier workload loaded are not written again.
func (r *benchRun) loadKeys(ctx context.Context, n int) (int, error) {
	if n <= r.loaded {
		return 0, nil
	}
	batch := max(1, min(loadBatchKeys, loadBatchBytes/(r.o.ValueSize+len(benchKey(0)))))
	var next atomic.Int64
	next.Store(int64(r.loaded))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, cl := range r.clients[:min(len(r.clients), loadParallel)] {
		wg.Go(func() {
			for ctx.Err() == nil {
				lo := int(next.Add(int64(batch))) - batch
				if lo >= n {
					return
				}
				if err := r.loadRange(ctx, cl, lo, min(lo+batch, n)); err != nil {
					cancel(err)
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return 0, err
	}
	wrote := n - r.loaded
	r.loaded = n
	return wrote, nil
}

func (r *benchRun) loadRange(ctx context.Context, cl *client.Client, lo, hi int) error {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	return cl.Update(ctx, func(tx *client.Txn) error {
		for i := lo; i < hi; i++ {
			if err := tx.Put(benchKey(i), r.value); err != nil {
				return err
			}
		}
		return nil
	})
}

// catchUp makes one linearizable read through every client: its session
// then sees every commit made so far, whichever member took it.
func (r *benchRun) catchUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	errs := make([]error, len(r.clients))
	var wg sync.WaitGroup
	for i, cl := range r.clients {
		wg.Go(func() {
			_, err := cl.Get(ctx, benchKey(0), client.Linearizable())
			if err != nil && !errors.Is(err, client.ErrNotFound) {
				errs[i] = fmt.Errorf("catch up on %s: %w", r.eps[i%len(r.eps)], err)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err // the others are most likely the same
		}
	}
	return nil
}

// measure runs w on every client for the warm-up and the duration, and
// counts what ends inside the measured window.
func (r *benchRun) measure(ctx context.Context, w string) benchResult {
	var st workloadStats
	lats := make([][]time.Duration, len(r.clients))
	from := time.Now().Add(r.o.Warmup)
	until := from.Add(r.o.Duration)
	ctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	var wg sync.WaitGroup
	for i, cl := range r.clients {
		l := &benchLoop{w: w, cl: cl, keys: r.o.keySpace(w), value: r.value, id: i,
			rng: rand.New(rand.NewPCG(uint64(i), rand.Uint64()))}
		wg.Go(func() { lats[i] = l.run(ctx, from, &st) })
	}
	if r.o.Warmup > 0 {
		fmt.Fprintf(r.errOut, "%s: warming up for %v\n", w, r.o.Warmup)
		pause(ctx, r.o.Warmup)
	}
	stop := progress{w: r.errOut, tty: r.tty, label: fmt.Sprintf("%-4s", w)}.start(&st, from)
	wg.Wait()
	end := time.Now()
	if end.After(until) {
		end = until
	}
	stop()
	return r.result(w, &st, slices.Concat(lats...), max(end.Sub(from), 0))
}

func (r *benchRun) result(w string, st *workloadStats, lat []time.Duration, elapsed time.Duration) benchResult {
	res := benchResult{
		Workload: w, Clients: r.o.Clients, Keys: r.o.keySpace(w), ValueSize: r.o.ValueSize,
		DurationS: elapsed.Seconds(),
		Commits:   st.commits.Load(), Aborts: st.conflicts.Load(), Errors: st.errors.Load(),
	}
	if w == workloadBank {
		res.ValueSize = 0
	}
	if elapsed > 0 {
		res.CommitsPerS = float64(res.Commits) / elapsed.Seconds()
	}
	if n := res.Commits + res.Aborts; n > 0 {
		res.AbortRatio = float64(res.Aborts) / float64(n)
	}
	slices.Sort(lat)
	res.P50ms, res.P99ms, res.P999ms = ms(rank(lat, 0.5)), ms(rank(lat, 0.99)), ms(rank(lat, 0.999))
	if st.first != nil {
		res.FirstError = st.first.Error()
	}
	return res
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// benchLoop is one client's transaction loop.
type benchLoop struct {
	w     string
	cl    *client.Client
	keys  int
	value []byte
	id    int
	rng   *rand.Rand
}

// run runs transactions until ctx ends and counts those that end at or
// after from; it returns the latencies of the counted commits.
func (l *benchLoop) run(ctx context.Context, from time.Time, st *workloadStats) []time.Duration {
	var lat []time.Duration
	for ctx.Err() == nil {
		began := time.Now()
		committed, err := l.step(ctx)
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

// step runs one transaction; committed is false after a conflict.
func (l *benchLoop) step(ctx context.Context) (committed bool, err error) {
	switch l.w {
	case workloadPut:
		return commitOnce(ctx, l.cl, func(tx *client.Txn) error {
			return tx.Put(benchKey(l.rng.IntN(l.keys)), l.fresh())
		})
	case workloadRead:
		_, err := l.cl.Get(ctx, benchKey(l.rng.IntN(l.keys)))
		if errors.Is(err, client.ErrNotFound) {
			err = nil
		}
		return err == nil, err
	case workloadRMW, workloadHot:
		a, b := pickPair(l.keys)
		return commitOnce(ctx, l.cl, func(tx *client.Txn) error { return l.readWrite(ctx, tx, benchKey(a), benchKey(b)) })
	case workloadBank:
		a, b := pickPair(l.keys)
		return commitOnce(ctx, l.cl, func(tx *client.Txn) error { return l.transfer(ctx, tx, benchAccount(a), benchAccount(b)) })
	}
	return false, fmt.Errorf("unknown workload %q", l.w)
}

// readWrite reads keys (absent is fine) and writes a fresh value to each.
func (l *benchLoop) readWrite(ctx context.Context, tx *client.Txn, keys ...[]byte) error {
	for _, k := range keys {
		if _, err := tx.Get(ctx, k); err != nil && !errors.Is(err, client.ErrNotFound) {
			return err
		}
	}
	for _, k := range keys {
		if err := tx.Put(k, l.fresh()); err != nil {
			return err
		}
	}
	return nil
}

// transfer moves 1..5 from one account to the other, or writes both back
// unchanged when the payer holds less (as kvbench does).
func (l *benchLoop) transfer(ctx context.Context, tx *client.Txn, from, to []byte) error {
	a, err := balance(ctx, tx, from)
	if err != nil {
		return err
	}
	b, err := balance(ctx, tx, to)
	if err != nil {
		return err
	}
	if amount := 1 + l.rng.IntN(5); a >= amount {
		a, b = a-amount, b+amount
	}
	if err := tx.Put(from, []byte(strconv.Itoa(a))); err != nil {
		return err
	}
	return tx.Put(to, []byte(strconv.Itoa(b)))
}

// fresh returns a copy of the value whose head is unique to this write, so
// that no write is an unchanged value.
func (l *benchLoop) fresh() []byte {
	v := slices.Clone(l.value)
	copy(v, fmt.Appendf(nil, "%d-%d-", l.id, l.rng.Uint64()))
	return v
}

// benchValue is the loaded value: size bytes of a..z.
func benchValue(size int) []byte {
	v := make([]byte, size)
	for i := range v {
		v[i] = 'a' + byte(i%26)
	}
	return v
}

// commitOnce runs fn in a new transaction and commits it, once. A conflict
// is reported as committed=false with no error.
func commitOnce(ctx context.Context, cl *client.Client, fn func(tx *client.Txn) error) (committed bool, err error) {
	tx, err := cl.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return false, err
	}
	_, err = tx.Commit(ctx)
	if errors.Is(err, client.ErrConflict) {
		return false, nil
	}
	return err == nil, err
}

// checkBank reads every account on every endpoint at a linearizable
// snapshot and checks the count, the total and that no balance is negative.
func (r *benchRun) checkBank(ctx context.Context) (ok bool, detail string) {
	want := benchAccounts * benchBalance
	var bad []string
	for _, ep := range r.eps {
		bs, err := r.endpointBalances(ctx, ep)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", ep, err))
			continue
		}
		total, negative := 0, 0
		for _, b := range bs {
			total += b
			if b < 0 {
				negative++
			}
		}
		if total != want || len(bs) != benchAccounts || negative > 0 {
			bad = append(bad, fmt.Sprintf("%s: %d in %d accounts (%d negative), want %d in %d",
				ep, total, len(bs), negative, want, benchAccounts))
		}
	}
	if len(bad) > 0 {
		return false, strings.Join(bad, "; ")
	}
	return true, fmt.Sprintf("total %d in %d accounts on each of %s", want, benchAccounts, strings.Join(r.eps, ", "))
}

func (r *benchRun) endpointBalances(ctx context.Context, ep string) ([]int, error) {
	cl, err := r.newClient(ep)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var bs []int
	err = cl.View(ctx, func(tx *client.Txn) (err error) {
		bs, err = balances(ctx, tx, benchAcctPrefix)
		return err
	}, client.Linearizable())
	return bs, err
}

// printBench prints one row per workload, then each failure's detail.
func printBench(w io.Writer, results []benchResult) error {
	const row = "%-8s %10s %9s %8s %7s %8s %8s %9s %6s\n"
	var b strings.Builder
	fmt.Fprintf(&b, row, "WORKLOAD", "COMMITS/S", "COMMITS", "ABORTS", "ERRORS", "P50 MS", "P99 MS", "P99.9 MS", "CHECK")
	for _, r := range results {
		check := "-"
		if r.BankOK != nil {
			check = map[bool]string{true: "ok", false: "FAILED"}[*r.BankOK]
		}
		fmt.Fprintf(&b, row, r.Workload, fmt.Sprintf("%.1f", r.CommitsPerS), strconv.FormatInt(r.Commits, 10),
			strconv.FormatInt(r.Aborts, 10), strconv.FormatInt(r.Errors, 10),
			fmt.Sprintf("%.2f", r.P50ms), fmt.Sprintf("%.2f", r.P99ms), fmt.Sprintf("%.2f", r.P999ms), check)
	}
	for _, r := range results {
		if r.FirstError != "" {
			fmt.Fprintf(&b, "%s: %d errors, the first: %s\n", r.Workload, r.Errors, r.FirstError)
		}
		if r.BankDetail != "" {
			fmt.Fprintf(&b, "%s: %s\n", r.Workload, r.BankDetail)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
