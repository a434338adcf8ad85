package harness

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/galenadb/galena/api/galenapb"
)

// Options configure a Cluster. Zero fields take the defaults listed.
type Options struct {
	// Binary is the galena binary to run (from Build). Required.
	Binary string
	// Members is the number of members; default 3.
	Members int
	// HeartbeatTimeout and ElectionTimeout are passed to every member;
	// default 500ms each, so a lost leader is replaced within about a second.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	// LogLevel is the members' --log-level; default info.
	LogLevel string
	// WaitTimeout bounds Member.Start (until the member answers Status),
	// Leader and WaitReady; default 20s.
	WaitTimeout time.Duration
	// StopTimeout is how long Member.Stop waits after SIGTERM before it
	// kills the member; default 15s.
	StopTimeout time.Duration
	// ExtraArgs are appended to every member's `galena start` command line.
	ExtraArgs []string
	// Network, if set, puts a network of the caller's between the members,
	// such as a nemesis's proxies: NewCluster calls it once with the
	// members' addresses, in member order, and passes member i its
	// Router's PeerRoute(i) as --peer-route (Build's binary takes it). Clients still reach members directly. The cluster
	// closes the Router when it is cleaned up, once its members are killed.
	Network func(addrs []string) (Router, error)
	// IDPrefix starts every member id: member i is <IDPrefix><i+1>;
	// default "n". Two clusters of one test need different prefixes when
	// their ids must not collide.
	IDPrefix string
	// MemberArgs[i], if present, is appended to member i's `galena start`
	// command line after ExtraArgs, e.g. {nil, nil, {"--arbitrator"}}.
	MemberArgs [][]string
	// ClientTLS, if set, is the TLS configuration of the harness's own
	// connections to the members (Status, HTTPStatus, Client, Probe), for
	// members started with --tls-* flags (see ExtraArgs and MemberArgs).
	ClientTLS *tls.Config
}

func (o Options) withDefaults() Options {
	if o.Members == 0 {
		o.Members = 3
	}
	if o.IDPrefix == "" {
		o.IDPrefix = "n"
	}
	if o.HeartbeatTimeout == 0 {
		o.HeartbeatTimeout = 500 * time.Millisecond
	}
	if o.ElectionTimeout == 0 {
		o.ElectionTimeout = 500 * time.Millisecond
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.WaitTimeout == 0 {
		o.WaitTimeout = 20 * time.Second
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = 15 * time.Second
	}
	return o
}

// Router routes the members' dials of each other (see Options.Network).
type Router interface {
	// PeerRoute is member i's --peer-route: for each other member's
	// address, the address member i dials instead.
	PeerRoute(i int) string
	// Close stops routing; the cluster calls it once, after killing every
	// member.
	Close()
}

// logTailLines is how many lines of each member's log a failed test shows.
const logTailLines = 40

// KeepEnv names an environment variable: when it is set, cluster
// directories are kept even when their test passes.
const KeepEnv = "GALENA_KEEP_TEST_DIR"

// Cluster is a set of galena processes that bootstrapped one cluster, each
// with its own port, data directory and log file under one directory per
// test. The Cluster speaks for the set and for each member as clients see
// it (addresses, waits on their status); each Member controls its own
// process. Its methods are safe for concurrent use.
type Cluster struct {
	t       testing.TB
	opts    Options
	dir     string
	initial string    // --initial-cluster of the bootstrap members
	members []*Member // grows only through AddMember
	router  Router    // nil unless Options.Network

	crashMu sync.Mutex
	crashes []error // member processes that exited on their own
}

// NewCluster starts opts.Members members that bootstrap one cluster, waits
// until they are ready (see WaitReady), and stops them when the test ends.
// On failure it fails the test, so call it from the test's goroutine.
//
// Member i is n<i+1> (see Options.IDPrefix); its data directory and log
// (n1/ and n1.log) are under a directory named after the test, removed when
// the test passes (unless KeepEnv is set) and kept, with the tail of every
// log shown, when it fails. Every method of the cluster, its members and
// their processes that can fail returns an error instead of failing the
// test, so it may be called from any goroutine.
func NewCluster(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c, err := newCluster(t, opts.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range c.members {
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitReady(); err != nil {
		t.Fatal(err)
	}
	return c
}

func newCluster(t testing.TB, opts Options) (*Cluster, error) {
	if opts.Binary == "" {
		return nil, errors.New("harness: Options.Binary is required (see Build)")
	}
	ports, err := freePorts(opts.Members)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "galena-"+sanitize(t.Name())+"-")
	if err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	c := &Cluster{t: t, opts: opts, dir: dir}
	t.Cleanup(c.cleanup)
	if opts.Network != nil {
		addrs := make([]string, len(ports))
		for i, port := range ports {
			addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		}
		if c.router, err = opts.Network(addrs); err != nil {
			return nil, err
		}
	}
	for i, port := range ports {
		m, err := c.newMember(port)
		if err != nil {
			return nil, err
		}
		if i < len(opts.MemberArgs) {
			m.args = slices.Clone(opts.MemberArgs[i])
		}
		c.members = append(c.members, m)
	}
	c.initial = c.initialCluster()
	return c, nil
}

// newMember is the next member slot, <IDPrefix><n+1>, listening on port.
func (c *Cluster) newMember(port int) (*Member, error) {
	i := len(c.members)
	id := fmt.Sprintf("%s%d", c.opts.IDPrefix, i+1)
	m := &Member{
		c: c, i: i, id: id, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		dataDir: filepath.Join(c.dir, id), logPath: filepath.Join(c.dir, id+".log"),
	}
	var err error
	if m.conn, err = dialStatus(m.addr, c.opts.ClientTLS); err != nil {
		return nil, err
	}
	m.kv = galenapb.NewKVClient(m.conn)
	return m, nil
}

// dialStatus opens the harness's own connection to a member, over TLS with
// tlsCfg when it is set, retrying quickly so a restarted member is seen
// soon.
func dialStatus(addr string, tlsCfg *tls.Config) (*grpc.ClientConn, error) {
	bo := backoff.DefaultConfig
	bo.BaseDelay, bo.MaxDelay = 50*time.Millisecond, 250*time.Millisecond
	creds := insecure.NewCredentials()
	if tlsCfg != nil {
		creds = credentials.NewTLS(tlsCfg)
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: time.Second}))
	if err != nil {
		return nil, fmt.Errorf("harness: connect to %s: %w", addr, err)
	}
	return conn, nil
}

// cleanup kills every member and closes the Router, then removes the
// cluster's directory, or, when the test failed, keeps it and logs where it
// is and each log's tail.
func (c *Cluster) cleanup() {
	if c.router != nil {
		defer c.router.Close() // after the members: nothing dials through it any more
	}
	for _, m := range c.members {
		if err := m.Kill(); err != nil {
			c.t.Logf("harness: cleanup: %v", err)
		}
		m.conn.Close()
	}
	if err := c.Crashed(); err != nil {
		c.t.Error(err)
	}
	switch {
	case c.t.Failed():
	case os.Getenv(KeepEnv) != "":
		c.t.Logf("harness: %s is set; cluster directory kept: %s", KeepEnv, c.dir)
		return
	default:
		os.RemoveAll(c.dir)
		return
	}
	c.t.Logf("harness: test failed; cluster directory kept: %s", c.dir)
	for _, m := range c.members {
		c.t.Logf("harness: last %d lines of %s:\n%s", logTailLines, m.logPath, m.LogTail())
	}
}

// Member is member i, running or not.
func (c *Cluster) Member(i int) *Member { return c.members[i] }

// Options are the options the cluster was started with, defaults filled in.
func (c *Cluster) Options() Options { return c.opts }

// Size is the number of members, running or not.
func (c *Cluster) Size() int { return len(c.members) }

// ID is member i's id, n<i+1>.
func (c *Cluster) ID(i int) string { return c.members[i].id }

// IDs are the ids of the members listed.
func (c *Cluster) IDs(idx ...int) []string {
	ids := make([]string, len(idx))
	for k, i := range idx {
		ids[k] = c.members[i].id
	}
	return ids
}

// Endpoint is member i's address, for clients, peers and the CLI.
func (c *Cluster) Endpoint(i int) string { return c.members[i].addr }

// Endpoints are the addresses of every member, running or not, in order.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.addr
	}
	return eps
}

// EndpointsExcept are the addresses of every member but those listed.
func (c *Cluster) EndpointsExcept(skip ...int) []string {
	var eps []string
	for i, m := range c.members {
		if !slices.Contains(skip, i) {
			eps = append(eps, m.addr)
		}
	}
	return eps
}

// LiveEndpoints are the addresses of the running members that are not
// paused.
func (c *Cluster) LiveEndpoints() []string {
	var eps []string
	for _, i := range c.LiveMembers() {
		eps = append(eps, c.Endpoint(i))
	}
	return eps
}

// Running reports whether member i's process is running (paused or not).
func (c *Cluster) Running(i int) bool { return c.members[i].running() }

// RunningMembers lists the members whose process is running, paused or not.
func (c *Cluster) RunningMembers() []int { return c.filter((*Member).running) }

// LiveMembers lists the members that run and are not paused: the members
// the waits ask.
func (c *Cluster) LiveMembers() []int { return c.filter((*Member).live) }

// filter lists the members for which keep holds.
func (c *Cluster) filter(keep func(*Member) bool) []int {
	var idx []int
	for i, m := range c.members {
		if keep(m) {
			idx = append(idx, i)
		}
	}
	return idx
}

// Each runs fn on every member at once and joins the errors, as in
// c.Each((*Member).Kill).
func (c *Cluster) Each(fn func(*Member) error) error {
	errs := make([]error, len(c.members))
	var wg sync.WaitGroup
	for i, m := range c.members {
		wg.Go(func() { errs[i] = fn(m) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Revive resumes every paused member and starts every member that is not
// running, then waits until the cluster is ready (WaitReady).
func (c *Cluster) Revive() error {
	if err := errors.Join(c.Each((*Member).Resume), c.Each((*Member).StartIfDown)); err != nil {
		return err
	}
	return c.WaitReady()
}

// AddMember adds a member slot to the cluster, with a new port, data
// directory and log, whose process asks to join through member via's
// address (`galena start --join`) instead of bootstrapping; it returns the
// new member's index. It does not start the process: Member.Start does,
// and every later start of the slot passes --join too. args are appended to
// the member's command line after Options.ExtraArgs.
//
// AddMember changes the member list, so call it from the test's goroutine
// while no other method of the Cluster runs. It fails on a cluster started
// with Options.Network: the network has a fixed set of members.
func (c *Cluster) AddMember(via int, args ...string) (int, error) {
	if c.router != nil {
		return -1, errors.New("harness: AddMember: the cluster's Network has a fixed set of members")
	}
	ports, err := freePorts(1)
	if err != nil {
		return -1, err
	}
	m, err := c.newMember(ports[0])
	if err != nil {
		return -1, err
	}
	m.join, m.args = c.Endpoint(via), slices.Clone(args)
	c.members = append(c.members, m)
	return m.i, nil
}

// crashed records that process p of member m exited without being told to.
func (c *Cluster) crashed(m *Member, p *Process, err error) {
	m.note("start #%d exited on its own: %v", p.start, err)
	c.crashMu.Lock()
	defer c.crashMu.Unlock()
	c.crashes = append(c.crashes, fmt.Errorf("%s (start #%d) exited on its own: %v", m.id, p.start, err))
}

// Crashed reports every member process that exited without the harness
// stopping or killing it, or nil. The waits fail as soon as there is one,
// and so does the test when its cluster is cleaned up.
func (c *Cluster) Crashed() error {
	if err := c.crashErr(); err != nil {
		return fmt.Errorf("harness: %w", err)
	}
	return nil
}

func (c *Cluster) crashErr() error {
	c.crashMu.Lock()
	defer c.crashMu.Unlock()
	return errors.Join(c.crashes...)
}

// initialCluster is the --initial-cluster value of the current members;
// the bootstrap members keep the one they were created with (c.initial).
func (c *Cluster) initialCluster() string {
	parts := make([]string, len(c.members))
	for i, m := range c.members {
		parts[i] = m.id + "=" + m.addr
	}
	return strings.Join(parts, ",")
}

// tail returns the last n lines of the file at path, or why it cannot.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.SplitAfter(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "")
}
