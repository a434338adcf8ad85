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
	"github.com/galenadb/galena/integration/workload/bank"
	"github.com/spf13/cobra"
)

// Workloads of `galena bench`: the reference harness kvbench's, and skew.
const (
	workloadPut  = "put"  // blind single-key write
	workloadRMW  = "rmw"  // read two keys at one snapshot, write both
	workloadHot  = "hot"  // rmw over benchHotKeys keys: contention
	workloadRead = "read" // single-key snapshot read
	workloadBank = "bank" // transfers between benchAccounts accounts
	workloadSkew = "skew" // read two keys at one snapshot, write the first
)

var benchWorkloads = []string{workloadPut, workloadRMW, workloadHot, workloadRead, workloadBank, workloadSkew}

const (
	benchHotKeys = 100
	// benchPrefix holds every key bench writes.
	benchPrefix    = "bench/"
	benchKeyPrefix = benchPrefix + "k"
	// benchMaxValue is the largest --value-size: a member's default
	// MaxValueSize.
	benchMaxValue = 1 << 20
	// Loading writes at most loadBatchKeys keys or loadBatchBytes bytes per
	// transaction, with loadParallel transactions in flight.
	loadBatchKeys  = 500
	loadBatchBytes = 4 << 20
	loadParallel   = 4
)

// benchBank are the accounts of the bank workload.
var benchBank = bank.Config{Prefix: benchPrefix + "acct/", Accounts: 100, Initial: 1000, MaxTransfer: 5}

func benchKey(i int) []byte { return fmt.Appendf(nil, "%s%08d", benchKeyPrefix, i) }

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
	Watchers     int // watches open on the first endpoint during put
	Serializable bool
	Keep         bool // leave the keys under bench/ when done
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
	case o.Watchers < 0:
		return usagef("--watchers must not be negative, got %d", o.Watchers)
	case o.Watchers > 0 && !slices.Equal(o.Workloads, []string{workloadPut}):
		return usagef("--watchers measures the put workload alone: give --workload put")
	case o.Watchers > o.Keys:
		return usagef("--watchers (%d) must not exceed --keys (%d): each watch follows a slice of the keys", o.Watchers, o.Keys)
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
		return benchBank.Accounts
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
one after the other (the first five are the reference harness kvbench's):

  put   blind single-key write, uniform over --keys keys
  rmw   read 2 keys at one snapshot, write both, uniform over --keys keys
  hot   rmw over only 100 keys: high contention
  read  single-key snapshot read, uniform over --keys keys
  skew  read 2 keys at one snapshot, write the first, uniform over --keys
        keys (with --serializable, the other key is in its read set)
  bank  transfers of 1..5 between 100 accounts of 1000 each; at the end the
        total is read on every endpoint (with --local, every member) at a
        linearizable snapshot and must still be 100000, with no balance
        below zero

Each of --clients clients is a client.Client bound to one endpoint only
(client i to endpoint i mod the number of endpoints; it does not fail over,
as in kvbench) and runs one transaction after another. Every transaction is
tried once, as kvbench does: a certification conflict is counted (CONFLICTS)
and not retried (the client goes on with new random keys), so the latency percentiles are those of single committed
attempts, from Begin to the commit's answer (for read, of the read). An
error is any failure other than a conflict. Transactions that end during
--warmup are not counted. The key space is preloaded before timing
(--load; by default for rmw, hot, read and skew, not for put); bank always creates
its accounts.

A progress line goes to stderr once a second; the results go to stdout as a
table, or with --json as one JSON object per workload: workload, clients,
keys, value_size, duration_s, commits, commits_per_s, conflicts, conflict_ratio,
errors, p50_ms, p99_ms, p999_ms, first_error, for bank bank_ok and
bank_detail, and with --watchers watchers, watch_events, watch_missed,
watch_p50_ms, watch_p99_ms and watch_error.

--watchers N opens N watches on the first endpoint during put, each on its
own slice of the keys, so that every commit reaches one watch: it measures
what following the commits costs them, and how long an event takes to
reach its watch after the writer learned of the commit. Every acknowledged
commit must reach its watch (watch_missed 0), or the run fails.

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
	fl.IntVar(&o.Watchers, "watchers", 0, "watches to open on the first endpoint during put, each on a slice of the keys")
	fl.BoolVar(&o.Keep, "keep", false, "leave the keys the run wrote under "+benchPrefix+" (by default, against --endpoints, every key under it is deleted at the end)")
	fl.BoolVar(&o.Serializable, "serializable", false, "run every transaction serializable (client.Config.Serializable) instead of under snapshot isolation")
	return cmd
}

// benchResult is one workload's outcome, printed as is by --json.
type benchResult struct {
	Workload      string  `json:"workload"`
	Serializable  bool    `json:"serializable,omitempty"`
	Clients       int     `json:"clients"`
	Keys          int     `json:"keys"`
	ValueSize     int     `json:"value_size"`
	DurationS     float64 `json:"duration_s"`
	Commits       int64   `json:"commits"`
	CommitsPerS   float64 `json:"commits_per_s"`
	Conflicts     int64   `json:"conflicts"` // certification conflicts, not retried
	ConflictRatio float64 `json:"conflict_ratio"`
	Errors        int64   `json:"errors"`
	P50ms         float64 `json:"p50_ms"`
	P99ms         float64 `json:"p99_ms"`
	P999ms        float64 `json:"p999_ms"`
	FirstError    string  `json:"first_error,omitempty"`
	BankOK        *bool   `json:"bank_ok,omitempty"`
	BankDetail    string  `json:"bank_detail,omitempty"`
	Watchers      int     `json:"watchers,omitempty"`
	WatchEvents   int64   `json:"watch_events,omitempty"`
	WatchMissed   int64   `json:"watch_missed,omitempty"`
	WatchP50ms    float64 `json:"watch_p50_ms,omitempty"`
	WatchP99ms    float64 `json:"watch_p99_ms,omitempty"`
	WatchError    string  `json:"watch_error,omitempty"`
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
	if r.WatchMissed > 0 {
		errs = append(errs, fmt.Errorf("%s: %d acknowledged commits never reached their watch", r.Workload, r.WatchMissed))
	}
	if r.WatchError != "" {
		errs = append(errs, fmt.Errorf("%s: %s", r.Workload, r.WatchError))
	}
	return errors.Join(errs...)
}

// runBench is `galena bench`: results go to out, progress and member logs to
// errOut.
func runBench(ctx context.Context, o benchOptions, g *globalFlags, out, errOut io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	b, err := bank.New(benchBank)
	if err != nil {
		return err
	}
	tty := isTerminal(errOut)
	errOut = &lockedWriter{w: errOut}
	r := &benchRun{o: o, errOut: errOut, tty: tty, dialTimeout: g.dialTimeout, value: benchValue(o.ValueSize), bank: b}
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
	} else if !o.Keep {
		err = errors.Join(err, r.removeKeys(ctx))
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
	bank        *bank.Bank
	local       *localCluster // with --local
	eps         []string
	clients     []*client.Client // client i is pinned to eps[i%len(eps)]
	loaded      int              // keys benchKey(0..loaded-1) are written
}

// removeKeys deletes every key under benchPrefix, in transactions of
// at most removeBatch keys (fewer when the values are large), and says how
// many.
func (r *benchRun) removeKeys(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), setupTimeout)
	defer cancel()
	cfg := r.clientConfig()
	cfg.Endpoints = r.eps
	cl, err := client.New(cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	start, end := []byte(benchPrefix), client.PrefixEnd([]byte(benchPrefix))
	// Scan reads the values too: a batch holds what loading one does.
	batch := max(1, min(removeBatch, loadBatchBytes/(r.o.ValueSize+len(benchKey(0)))))
	removed := 0
	for {
		kvs, more, err := cl.Scan(ctx, start, end, batch)
		if err == nil && len(kvs) > 0 {
			err = cl.Update(ctx, func(tx *client.Txn) error {
				for _, kv := range kvs {
					if err := tx.Delete(kv.Key); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if err != nil {
			return fmt.Errorf("removing the keys under %s (%d removed; --keep leaves them): %w", benchPrefix, removed, err)
		}
		removed += len(kvs)
		if !more {
			break
		}
	}
	fmt.Fprintf(r.errOut, "galena bench: removed the %d keys under %s\n", removed, benchPrefix)
	return nil
}

// removeBatch is how many keys one transaction of removeKeys deletes.
const removeBatch = 10000

// startLocal starts the in-process cluster and waits for its leader.
func (r *benchRun) startLocal(ctx context.Context) (*localCluster, error) {
	c, err := startLocal(r.errOut, 0)
	if err != nil {
		return nil, err
	}
	r.local, r.eps = c, c.Endpoints()
	fmt.Fprintf(r.errOut, "galena bench: %d members on %s (data in %s)\n", demoMembers, strings.Join(r.eps, ", "), c.Dir())
	setup, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	return c, c.WaitSynced(setup)
}

// checkLocal checks that the in-process members applied the same history.
func (r *benchRun) checkLocal(ctx context.Context) error {
	verify, cancel := context.WithTimeout(context.WithoutCancel(ctx), setupTimeout)
	defer cancel()
	seq, err := r.local.WaitSame(verify)
	if err == nil {
		fmt.Fprintf(r.errOut, "galena bench: every member applied seqno %d, digests equal\n", seq)
	}
	return err
}

// runAll runs the workloads in turn, printing each JSON result as it comes.
// It stops early, with the results so far, when ctx ends.
func (r *benchRun) runAll(ctx context.Context, out io.Writer) ([]benchResult, error) {
	var err error
	if r.clients, err = pinnedClients(r.o.Clients, r.eps, r.clientConfig()); err != nil {
		return nil, err
	}
	defer closeClients(r.clients)
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

// clientConfig is the configuration of the run's clients, but for their
// endpoints.
func (r *benchRun) clientConfig() client.Config {
	return client.Config{DialTimeout: r.dialTimeout, TLS: r.tls, Serializable: r.o.Serializable}
}

// runWorkload prepares the key space, measures w and, for bank, checks the
// total.
func (r *benchRun) runWorkload(ctx context.Context, w string) (benchResult, error) {
	if err := r.prepare(ctx, w); err != nil {
		return benchResult{}, err
	}
	res, err := r.measure(ctx, w)
	if err != nil {
		return benchResult{}, err
	}
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
		n := r.bank.Accounts()
		var err error
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

// loadAccounts opens every bank account in one transaction.
func (r *benchRun) loadAccounts(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	return r.bank.Load(ctx, r.clients[0])
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
// counts what ends inside the measured window; with --watchers, it watches
// the commits too.
func (r *benchRun) measure(ctx context.Context, w string) (benchResult, error) {
	steps := transfers(r.bank, r.clients, false)
	var loops []*benchLoop
	if w != workloadBank {
		steps = make([]step, len(r.clients))
		for i, cl := range r.clients {
			l := &benchLoop{w: w, cl: cl, keys: r.o.keySpace(w), value: r.value, id: i,
				rng: rand.New(rand.NewPCG(uint64(i), rand.Uint64())), keepAcks: r.o.Watchers > 0}
			steps[i], loops = l.step, append(loops, l)
		}
	}
	var bw *benchWatch
	if r.o.Watchers > 0 {
		var err error
		if bw, err = startWatches(ctx, r.o.Watchers, r.o.keySpace(w), r.eps[0], r.clientConfig()); err != nil {
			return benchResult{}, err
		}
		fmt.Fprintf(r.errOut, "%s: %d watches open on %s\n", w, r.o.Watchers, r.eps[0])
	}
	if r.o.Warmup > 0 {
		fmt.Fprintf(r.errOut, "%s: warming up for %v\n", w, r.o.Warmup)
	}
	res := r.result(w, measure(ctx, steps, r.o.Warmup, r.o.Duration, progress{w: r.errOut, tty: r.tty, label: fmt.Sprintf("%-4s", w)}))
	if bw != nil {
		var acks []ack
		for _, l := range loops {
			acks = append(acks, l.acks...)
		}
		bw.finish(ctx, &res, acks)
	}
	return res, nil
}

func (r *benchRun) result(w string, lr loadResult) benchResult {
	res := benchResult{
		Workload: w, Serializable: r.o.Serializable, Clients: r.o.Clients, Keys: r.o.keySpace(w), ValueSize: r.o.ValueSize,
		DurationS: lr.Elapsed.Seconds(),
		Commits:   lr.Commits, Conflicts: lr.Conflicts, Errors: lr.Errors, FirstError: lr.FirstError,
	}
	if w == workloadBank {
		res.ValueSize = 0
	}
	if lr.Elapsed > 0 {
		res.CommitsPerS = float64(res.Commits) / lr.Elapsed.Seconds()
	}
	if n := res.Commits + res.Conflicts; n > 0 {
		res.ConflictRatio = float64(res.Conflicts) / float64(n)
	}
	lat := lr.Latencies
	res.P50ms, res.P99ms, res.P999ms = ms(rank(lat, 0.5)), ms(rank(lat, 0.99)), ms(rank(lat, 0.999))
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
	// keepAcks: record in acks every commit's seqno and when it was
	// acknowledged (put only, for --watchers).
	keepAcks bool
	acks     []ack
}

// step runs one transaction; committed is false after a conflict.
func (l *benchLoop) step(ctx context.Context) (committed bool, err error) {
	switch l.w {
	case workloadPut:
		seqno, committed, err := commitSeqno(ctx, l.cl, func(tx *client.Txn) error {
			return tx.Put(benchKey(l.rng.IntN(l.keys)), l.fresh())
		})
		if committed && l.keepAcks {
			l.acks = append(l.acks, ack{seqno, time.Now()})
		}
		return committed, err
	case workloadRead:
		_, err := l.cl.Get(ctx, benchKey(l.rng.IntN(l.keys)))
		if errors.Is(err, client.ErrNotFound) {
			err = nil
		}
		return err == nil, err
	case workloadRMW, workloadHot:
		a, b := l.pickPair()
		return commitOnce(ctx, l.cl, func(tx *client.Txn) error { return l.readWrite(ctx, tx, benchKey(a), benchKey(b)) })
	case workloadSkew:
		a, b := l.pickPair()
		return commitOnce(ctx, l.cl, func(tx *client.Txn) error {
			if _, err := tx.Get(ctx, benchKey(b)); err != nil && !errors.Is(err, client.ErrNotFound) {
				return err
			}
			return l.readWrite(ctx, tx, benchKey(a))
		})
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

// pickPair returns two different random keys.
func (l *benchLoop) pickPair() (int, int) {
	a, b := l.rng.IntN(l.keys), l.rng.IntN(l.keys-1)
	if b >= a {
		b++
	}
	return a, b
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

// checkBank reads every account on every endpoint at a linearizable
// snapshot and checks that each holds the bank's total.
func (r *benchRun) checkBank(ctx context.Context) (ok bool, detail string) {
	var errs []error
	var hs []bank.Holding
	for _, ep := range r.eps {
		h, err := readHolding(ctx, r.bank, r.clientConfig(), ep, ep, client.Linearizable())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		hs = append(hs, h)
	}
	if err := errors.Join(append(errs, r.bank.Check(hs))...); err != nil {
		return false, strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	return true, fmt.Sprintf("total %d in %d accounts on each of %s", r.bank.Total(), r.bank.Accounts(), strings.Join(r.eps, ", "))
}

// printBench prints one row per workload, then each failure's detail.
func printBench(w io.Writer, results []benchResult) error {
	const row = "%-8s %10s %9s %10s %7s %8s %8s %9s %6s\n"
	var b strings.Builder
	fmt.Fprintf(&b, row, "WORKLOAD", "COMMITS/S", "COMMITS", "CONFLICTS", "ERRORS", "P50 MS", "P99 MS", "P99.9 MS", "CHECK")
	for _, r := range results {
		check := "-"
		if r.BankOK != nil {
			check = map[bool]string{true: "ok", false: "FAILED"}[*r.BankOK]
		}
		fmt.Fprintf(&b, row, r.Workload, fmt.Sprintf("%.1f", r.CommitsPerS), strconv.FormatInt(r.Commits, 10),
			strconv.FormatInt(r.Conflicts, 10), strconv.FormatInt(r.Errors, 10),
			fmt.Sprintf("%.2f", r.P50ms), fmt.Sprintf("%.2f", r.P99ms), fmt.Sprintf("%.2f", r.P999ms), check)
	}
	for _, r := range results {
		if r.Watchers > 0 {
			fmt.Fprintf(&b, "%s: %d watches on one member saw %d events, %d commits missed; delivery after the commit's answer p50 %.2f ms, p99 %.2f ms\n",
				r.Workload, r.Watchers, r.WatchEvents, r.WatchMissed, r.WatchP50ms, r.WatchP99ms)
		}
		if r.WatchError != "" {
			fmt.Fprintf(&b, "%s: %s\n", r.Workload, r.WatchError)
		}
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
