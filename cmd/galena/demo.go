package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/workload/bank"
	"github.com/galenadb/galena/node"
	"github.com/galenadb/galena/node/local"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
)

const (
	// demoMembers is the size of the cluster of demo and bench --local.
	demoMembers = 3
	// The demo's accounts: each starts with initialBalance, and a transfer
	// moves 1 to demoMaxTransfer.
	initialBalance  = 100
	accountPrefix   = "acct/"
	demoMaxTransfer = 5
	// setupTimeout bounds the election and loading before a workload, and
	// the convergence check after it.
	setupTimeout = 30 * time.Second
)

// demoOptions are the flags of `galena demo`.
type demoOptions struct {
	Duration time.Duration // how long the bank workload runs
	Exit     bool          // stop after the report instead of serving
	Accounts int           // accounts, each starting with initialBalance
	Clients  int           // concurrent transfer loops, spread over the members
	BasePort int           // n1's port; 0: ports the system picks
}

// validate checks the options of both demos; geo: the shop's, which has
// no accounts.
func (o demoOptions) validate(geo bool) error {
	switch {
	case o.Duration <= 0:
		return usagef("--duration must be positive, got %v", o.Duration)
	case !geo && (o.Accounts < 2 || o.Accounts > 10000):
		return usagef("--accounts must be in 2..10000, got %d", o.Accounts)
	case o.Clients < 1:
		return usagef("--clients must be at least 1, got %d", o.Clients)
	case o.BasePort < 0 || o.BasePort > 65535-demoMembers+1:
		return usagef("--base-port must be in 1..%d (or 0: any free ports), got %d", 65535-demoMembers+1, o.BasePort)
	}
	return nil
}

func newDemoCmd() *cobra.Command {
	var o demoOptions
	var geo bool
	g := geoOptions{Delays: defaultGeoDelays, Third: "arbitrator", Users: 40, Items: 20, Stock: 1000000, EUShare: 0.5}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a 3-member cluster in-process under a bank-transfer workload",
		Long: `Run a 3-member cluster in-process under a bank-transfer workload, check that
every member ends with the same total, then (unless --exit) keep serving until
Ctrl-C so other galena commands can talk to it.

With --geo, run a shop instead, with members in three regions: eu and asia keep
data and serve the users of their region; me, a place between them, runs an
arbitrator (--third data: a third data member). Every connection between members
is delayed as --delays says. Users change their profiles, read them, check out
and move between regions; the report gives each region's commit and read
latency, the floor a commit cannot beat, the conflicts retried, and checks that
no acknowledged change was lost.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := checkDemoFlags(cmd.Flags(), geo); err != nil {
				return err
			}
			if geo {
				_, err := runGeo(cmd.Context(), o, g, cmd.OutOrStdout(), cmd.ErrOrStderr())
				return err
			}
			_, err := runDemo(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
			return err
		}),
	}
	fl := cmd.Flags()
	fl.DurationVar(&o.Duration, "duration", 5*time.Second, "how long the workload runs")
	fl.BoolVar(&o.Exit, "exit", false, "stop after the report instead of serving until Ctrl-C")
	fl.IntVar(&o.Accounts, "accounts", 20, "number of accounts")
	fl.IntVar(&o.Clients, "clients", 12, "concurrent clients, spread evenly over the members")
	fl.BoolVar(&geo, "geo", false, "run the shop across three simulated regions (eu, asia, me) instead of the bank")
	fl.StringVar(&g.Delays, "delays", g.Delays, "with --geo: one-way delays between the regions")
	fl.StringVar(&g.Third, "third", g.Third, "with --geo: what runs in me, arbitrator or data")
	fl.StringVar(&g.Leader, "leader", "", "with --geo: the member that should lead (eu, asia or, with --third data, me), "+
		"or writes: the leader follows the commits; empty: wherever the election puts it")
	fl.Float64Var(&g.EUShare, "eu-share", g.EUShare, "with --geo: the fraction of the clients in eu; the others are in asia")
	fl.IntVar(&g.Users, "users", g.Users, "with --geo: users, half in each region")
	fl.IntVar(&g.Items, "items", g.Items, "with --geo: items in stock")
	fl.IntVar(&o.BasePort, "base-port", 0, "listen on 127.0.0.1 from this port on (7001: n1 on 7001, n2 on 7002, n3 on 7003, "+
		"where the other commands look by default); 0: any free ports")
	return cmd
}

// geoFlags are the flags of the shop alone; bankFlags those of the bank.
var (
	geoFlags  = []string{"delays", "third", "leader", "eu-share", "users", "items"}
	bankFlags = []string{"accounts"}
)

// checkDemoFlags refuses a flag given that the chosen demo would ignore.
func checkDemoFlags(fl *pflag.FlagSet, geo bool) error {
	for _, name := range geoFlags {
		if fl.Changed(name) && !geo {
			return usagef("--%s applies only with --geo", name)
		}
	}
	for _, name := range bankFlags {
		if fl.Changed(name) && geo {
			return usagef("--%s applies to the bank, not with --geo", name)
		}
	}
	return nil
}

// runDemo is `galena demo`: the report goes to out, progress and member logs
// to errOut. It fails if the members disagree or the money is not conserved.
func runDemo(ctx context.Context, o demoOptions, out, errOut io.Writer) (bankReport, error) {
	if err := o.validate(false); err != nil {
		return bankReport{}, err
	}
	b, err := bank.New(bank.Config{Prefix: accountPrefix, Accounts: o.Accounts, Initial: initialBalance, MaxTransfer: demoMaxTransfer})
	if err != nil {
		return bankReport{}, err
	}
	tty := isTerminal(errOut)
	errOut = &lockedWriter{w: errOut}
	c, err := startLocal(errOut, o.BasePort)
	if err != nil {
		return bankReport{}, err
	}
	defer c.close(errOut)
	fmt.Fprintf(out, "galena demo: %d members on %s (data in %s)\n", demoMembers, strings.Join(c.Endpoints(), ", "), c.Dir())
	rep, err := runBank(ctx, c, b, o, progress{w: errOut, tty: tty})
	if err != nil {
		return rep, err
	}
	rep.print(out, b)
	if err := rep.check(b); err != nil || o.Exit || ctx.Err() != nil {
		return rep, err
	}
	return rep, serveUntilDone(ctx, c, b, out)
}

// bankReport is the outcome of the demo's bank workload.
type bankReport struct {
	loadResult
	Accounts int
	Seqno    uint64 // the seqno every member had applied when totals were read
	Totals   []memberTotal
}

// memberTotal is the money one member holds, read from its own storage.
type memberTotal struct {
	ID, Addr string
	bank.Holding
}

// runBank loads the accounts, runs the transfers and reads every member's
// total once they have all applied the same seqno.
func runBank(ctx context.Context, c *localCluster, b *bank.Bank, o demoOptions, p progress) (bankReport, error) {
	rep := bankReport{Accounts: o.Accounts}
	setup, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	if err := c.WaitSynced(setup); err != nil {
		return rep, err
	}
	clients, err := pinnedClients(o.Clients, c.Endpoints(), client.Config{})
	if err != nil {
		return rep, err
	}
	defer closeClients(clients)
	if err := b.Load(setup, clients[0]); err != nil {
		return rep, fmt.Errorf("load accounts: %w", err)
	}
	// Each transfer client is a new session: let every member apply the
	// accounts before one reads from it.
	if _, err := c.WaitSame(setup); err != nil {
		return rep, err
	}
	rep.loadResult = measure(ctx, transfers(b, clients, true), 0, o.Duration, p)
	// Check even after Ctrl-C: the workload stopped, the cluster did not.
	verify, cancel := context.WithTimeout(context.WithoutCancel(ctx), setupTimeout)
	defer cancel()
	if rep.Seqno, err = c.WaitSame(verify); err != nil {
		return rep, err
	}
	for i, ep := range c.Endpoints() {
		id := c.Nodes[i].ID()
		h, err := readHolding(verify, b, client.Config{}, ep, id)
		if err != nil {
			return rep, err
		}
		rep.Totals = append(rep.Totals, memberTotal{ID: id, Addr: ep, Holding: h})
	}
	return rep, nil
}

// check reports a workload that committed nothing or a member that does
// not hold what the accounts started with.
func (r bankReport) check(b *bank.Bank) error {
	errs := []error{b.Check(r.holdings())}
	if r.Commits == 0 {
		errs = append([]error{errors.New("demo: no transfer committed")}, errs...)
	}
	return errors.Join(errs...)
}

func (r bankReport) holdings() []bank.Holding {
	hs := make([]bank.Holding, len(r.Totals))
	for i, t := range r.Totals {
		hs[i] = t.Holding
	}
	return hs
}

func (r bankReport) print(w io.Writer, b *bank.Bank) {
	secs := r.Elapsed.Seconds()
	fmt.Fprintf(w, "commits     %d in %.1fs (%.1f commits/s)\n", r.Commits, secs, float64(r.Commits)/max(secs, 1e-9))
	fmt.Fprintf(w, "conflicts   %d (certification conflicts, retried)\n", r.Conflicts)
	if r.Errors > 0 {
		fmt.Fprintf(w, "errors      %d (first: %s)\n", r.Errors, r.FirstError)
	} else {
		fmt.Fprintln(w, "errors      0")
	}
	fmt.Fprintf(w, "latency     p50 %v  p99 %v (begin to commit of committed transfers)\n",
		rank(r.Latencies, 0.50).Round(10*time.Microsecond), rank(r.Latencies, 0.99).Round(10*time.Microsecond))
	fmt.Fprintf(w, "applied     seqno %d on every member, digests equal\n", r.Seqno)
	for _, t := range r.Totals {
		verdict := "ok"
		if b.CheckHolding(t.Holding) != nil {
			verdict = "WRONG"
		}
		fmt.Fprintf(w, "total       %s %s: %d in %d accounts (want %d) %s\n", t.ID, t.Addr, t.Total, t.Accounts, b.Total(), verdict)
	}
}

// serveUntilDone prints how to reach the cluster and serves until ctx ends.
func serveUntilDone(ctx context.Context, c *localCluster, b *bank.Bank, out io.Writer) error {
	fmt.Fprintln(out, "\nThe cluster keeps serving until Ctrl-C:")
	for i, ep := range c.Endpoints() {
		fmt.Fprintf(out, "  %s  %s\n", c.Nodes[i].ID(), ep)
	}
	fmt.Fprintf(out, "Try:\n  galena --endpoints %s get %s\n", strings.Join(c.Endpoints(), ","), b.Key(0))
	err := c.Wait(ctx)
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(out, "stopping")
		return nil
	}
	return err
}

// localCluster is the in-process cluster of demo and bench --local.
type localCluster struct {
	*local.Cluster
	logLevel zap.AtomicLevel // silenced while the members stop
}

// startLocal starts demoMembers members on loopback, from basePort on (0:
// any free ports), with data in a new temporary directory; they log
// warnings and errors to logOut.
func startLocal(logOut io.Writer, basePort int) (*localCluster, error) {
	return startLocalWith(logOut, local.Config{Members: demoMembers, BasePort: basePort, Member: func(_ int, cfg *node.Config) {
		// Raft timeouts shortened for loopback.
		cfg.Group.HeartbeatTimeout, cfg.Group.ElectionTimeout, cfg.Group.LeaderLeaseTimeout = 500*time.Millisecond, 500*time.Millisecond, 250*time.Millisecond
	}})
}

// startLocalWith starts the members of lc, in a new temporary directory,
// logging warnings and errors to logOut, each stopping within 2 s.
func startLocalWith(logOut io.Writer, lc local.Config) (*localCluster, error) {
	lvl := zap.NewAtomicLevelAt(zap.WarnLevel)
	lg, _ := newLogger(lvl, "console", logOut) // a constant, valid format: cannot fail
	edit := lc.Member
	lc.Member = func(i int, cfg *node.Config) {
		if edit != nil {
			edit(i, cfg)
		}
		cfg.ShutdownTimeout, cfg.Logger = 2*time.Second, lg
	}
	c, err := local.Start(lc)
	if err != nil {
		return nil, err
	}
	return &localCluster{Cluster: c, logLevel: lvl}, nil
}

// close stops the members and removes their data. Members log the peers
// they lose while stopping one after another: those logs are muted; Close
// still reports real errors.
func (c *localCluster) close(w io.Writer) {
	c.logLevel.SetLevel(zap.FatalLevel)
	if err := c.Close(); err != nil {
		fmt.Fprintf(w, "galena: %v\n", err)
	}
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// lockedWriter serialises writes from the member loggers and the progress line.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
