package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/node"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
)

// demoMembers is the size of the demo cluster.
const demoMembers = 3

// demoOptions are the flags of `galena demo`.
type demoOptions struct {
	Duration time.Duration // how long the bank workload runs
	Exit     bool          // stop after the report instead of serving
	Accounts int           // accounts, each starting with initialBalance
	Clients  int           // concurrent transfer loops, spread over the members
}

func (o demoOptions) validate() error {
	switch {
	case o.Duration <= 0:
		return usagef("--duration must be positive, got %v", o.Duration)
	case o.Accounts < 2 || o.Accounts > 10000:
		return usagef("--accounts must be in 2..10000, got %d", o.Accounts)
	case o.Clients < 1:
		return usagef("--clients must be at least 1, got %d", o.Clients)
	}
	return nil
}

func newDemoCmd() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a 3-member cluster in-process under a bank-transfer workload",
		Long: `Run a 3-member cluster in-process under a bank-transfer workload, check that
every member ends with the same total, then (unless --exit) keep serving until
Ctrl-C so other galena commands can talk to it.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			_, err := runDemo(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
			return err
		}),
	}
	fl := cmd.Flags()
	fl.DurationVar(&o.Duration, "duration", 5*time.Second, "how long the workload runs")
	fl.BoolVar(&o.Exit, "exit", false, "stop after the report instead of serving until Ctrl-C")
	fl.IntVar(&o.Accounts, "accounts", 20, "number of accounts")
	fl.IntVar(&o.Clients, "clients", 12, "concurrent clients, spread evenly over the members")
	return cmd
}

// runDemo is `galena demo`: the report goes to out, progress and member logs
// to errOut. It fails if the members disagree or the money is not conserved.
func runDemo(ctx context.Context, o demoOptions, out, errOut io.Writer) (bankReport, error) {
	if err := o.validate(); err != nil {
		return bankReport{}, err
	}
	tty := isTerminal(errOut)
	errOut = &lockedWriter{w: errOut}
	c, err := startDemoCluster(errOut)
	if err != nil {
		return bankReport{}, err
	}
	defer c.close(errOut)
	fmt.Fprintf(out, "galena demo: %d members on %s (data in %s)\n", demoMembers, strings.Join(c.endpoints, ", "), c.dir)
	rep, err := c.runBank(ctx, o, progress{w: errOut, tty: tty})
	if err != nil {
		return rep, err
	}
	rep.print(out)
	if err := rep.check(); err != nil || o.Exit || ctx.Err() != nil {
		return rep, err
	}
	return rep, c.serveUntilDone(ctx, out)
}

// demoCluster is the demo's in-process cluster.
type demoCluster struct {
	dir       string
	logLevel  zap.AtomicLevel // silenced while the members stop
	nodes     []*node.Node
	endpoints []string
}

// startDemoCluster starts demoMembers members on loopback with data in a new
// temporary directory.
func startDemoCluster(logOut io.Writer) (*demoCluster, error) {
	dir, err := os.MkdirTemp("", "galena-demo-")
	if err != nil {
		return nil, err
	}
	c := &demoCluster{dir: dir, logLevel: zap.NewAtomicLevelAt(zap.WarnLevel)}
	lns, peers, err := listenLoopback(demoMembers)
	if err != nil {
		c.close(io.Discard)
		return nil, err
	}
	lg := demoLogger(logOut, c.logLevel)
	for i, ln := range lns {
		n, err := node.New(demoConfig(peers, i, ln, dir, lg))
		if err != nil {
			closeAll(lns[i:]) // New closes its listener only once it got that far
			c.close(io.Discard)
			return nil, fmt.Errorf("start %s: %w", peers[i].ID, err)
		}
		c.nodes = append(c.nodes, n)
		c.endpoints = append(c.endpoints, n.Addr())
	}
	return c, nil
}

// listenLoopback pre-opens n loopback listeners and names their members.
func listenLoopback(n int) ([]net.Listener, []node.Peer, error) {
	var lns []net.Listener
	var peers []node.Peer
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			closeAll(lns)
			return nil, nil, err
		}
		lns = append(lns, ln)
		peers = append(peers, node.Peer{ID: fmt.Sprintf("n%d", i+1), Addr: ln.Addr().String()})
	}
	return lns, peers, nil
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// demoConfig configures member i: Raft timeouts shortened for loopback.
func demoConfig(peers []node.Peer, i int, ln net.Listener, dir string, lg *zap.Logger) node.Config {
	cfg := node.DefaultConfig()
	cfg.ID, cfg.Addr, cfg.Listener = peers[i].ID, peers[i].Addr, ln
	cfg.DataDir, cfg.InitialCluster, cfg.Logger = filepath.Join(dir, peers[i].ID), peers, lg
	cfg.Group.HeartbeatTimeout, cfg.Group.ElectionTimeout, cfg.Group.LeaderLeaseTimeout = 500*time.Millisecond, 500*time.Millisecond, 250*time.Millisecond
	cfg.ShutdownTimeout = 2 * time.Second
	return cfg
}

// demoLogger logs warnings and errors only, so the screen stays clean.
func demoLogger(w io.Writer, lvl zap.AtomicLevel) *zap.Logger {
	lg, _ := newLogger(lvl, "console", w) // a constant, valid format: cannot fail
	return lg
}

// close stops the members and removes their data. Members log the peers
// they lose while stopping one after another: those logs are muted; Close
// still reports real errors.
func (c *demoCluster) close(w io.Writer) {
	c.logLevel.SetLevel(zap.FatalLevel)
	for i := len(c.nodes) - 1; i >= 0; i-- {
		if err := c.nodes[i].Close(); err != nil {
			fmt.Fprintf(w, "galena: stop %s: %v\n", c.nodes[i].ID(), err)
		}
	}
	if err := os.RemoveAll(c.dir); err != nil {
		fmt.Fprintf(w, "galena: remove %s: %v\n", c.dir, err)
	}
}

// failed returns the error of a member whose apply loop stopped, if any.
func (c *demoCluster) failed() error {
	for _, n := range c.nodes {
		select {
		case err := <-n.Fatal():
			return fmt.Errorf("member %s failed: %w", n.ID(), err)
		default:
		}
	}
	return nil
}

// poll calls done every interval until it reports true, a member fails, or
// ctx ends.
func (c *demoCluster) poll(ctx context.Context, interval time.Duration, done func() bool) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for !done() {
		if err := c.failed(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// waitSynced waits until every member is SYNCED and knows the leader.
func (c *demoCluster) waitSynced(ctx context.Context) error {
	err := c.poll(ctx, 20*time.Millisecond, func() bool {
		for _, n := range c.nodes {
			if st := n.Status(); st.State != node.StateSynced || st.LeaderID == "" {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("waiting for the cluster to elect a leader: %w", err)
	}
	return nil
}

// waitSame waits until every member has applied the same seqno and checks
// that their digests agree there.
func (c *demoCluster) waitSame(ctx context.Context) (uint64, error) {
	var seq uint64
	var digests [][32]byte
	err := c.poll(ctx, 10*time.Millisecond, func() bool {
		digests = digests[:0]
		for i, n := range c.nodes {
			s, d := n.Digest()
			if i > 0 && s != seq {
				return false
			}
			seq, digests = s, append(digests, d)
		}
		return true
	})
	if err != nil {
		return 0, fmt.Errorf("waiting for the members to apply the same seqno: %w", err)
	}
	for i, d := range digests {
		if d != digests[0] {
			return seq, fmt.Errorf("members %s and %s have different digests at seqno %d", c.nodes[0].ID(), c.nodes[i].ID(), seq)
		}
	}
	return seq, nil
}

// serveUntilDone prints how to reach the cluster and serves until ctx ends.
func (c *demoCluster) serveUntilDone(ctx context.Context, out io.Writer) error {
	fmt.Fprintln(out, "\nThe cluster keeps serving until Ctrl-C:")
	for i, ep := range c.endpoints {
		fmt.Fprintf(out, "  %s  %s\n", c.nodes[i].ID(), ep)
	}
	fmt.Fprintf(out, "Try:\n  galena --endpoints %s get acct/0000\n", strings.Join(c.endpoints, ","))
	err := c.poll(ctx, 250*time.Millisecond, func() bool { return false })
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(out, "stopping")
		return nil
	}
	return err
}

// newClient returns a client bound to member i only.
func (c *demoCluster) newClient(i int) (*client.Client, error) {
	return client.New(client.Config{Endpoints: []string{c.endpoints[i%len(c.endpoints)]}})
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
