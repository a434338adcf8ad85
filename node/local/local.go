package local

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/galenadb/galena/node"
)

// Errors of a local cluster. Match them with errors.Is.
var (
	// ErrInvalidConfig means a Config is not usable.
	ErrInvalidConfig = errors.New("local: invalid config")
	// ErrMemberFailed means a member stopped for good (node.StateFailed):
	// its state diverged or cannot be trusted, or it was removed.
	ErrMemberFailed = errors.New("local: member failed")
	// ErrDiverged means two members applied the same seqno with different
	// digests.
	ErrDiverged = errors.New("local: members diverged")
)

// Config configures a local cluster.
type Config struct {
	// Members is how many members bootstrap the cluster, n1 to nN unless
	// IDs names them: at least 1.
	Members int
	// IDs, if set, are the members' ids, one per member.
	IDs []string
	// Dir holds the members' data directories, one per member named by
	// its id. Empty: a new temporary directory, which Close removes.
	Dir string
	// BasePort, if set, is member n1's port on 127.0.0.1; n2 listens on the
	// next, and so on. 0: ports the system picks.
	BasePort int
	// Member, if set, adjusts the configuration of member i of Start
	// before it starts. The configuration is node.DefaultConfig() with ID,
	// Addr, Listener, DataDir and InitialCluster set.
	Member func(i int, cfg *node.Config)
}

// Validate reports the first problem of c as an error wrapping
// ErrInvalidConfig.
func (c Config) Validate() error {
	switch {
	case c.Members < 1:
		return fmt.Errorf("%w: %d Members, want at least 1", ErrInvalidConfig, c.Members)
	case c.BasePort < 0 || c.BasePort+c.Members-1 > 65535:
		return fmt.Errorf("%w: BasePort %d: the %d members need ports up to 65535", ErrInvalidConfig, c.BasePort, c.Members)
	case c.IDs != nil && len(c.IDs) != c.Members:
		return fmt.Errorf("%w: %d IDs for %d Members", ErrInvalidConfig, len(c.IDs), c.Members)
	}
	return nil
}

// Cluster is a set of members running in this process.
type Cluster struct {
	// Nodes are the members, by index (member i is n<i+1>); nil while one
	// is stopped.
	Nodes []*node.Node

	dir     string
	tempDir bool          // Close removes dir
	cfgs    []node.Config // each member's, to restart it
}

// Start starts cfg.Members members that bootstrap one cluster, and returns
// once each has started; it does not wait for a leader (see WaitSynced).
// When a member fails to start, the members started are stopped and the
// temporary directory, if any, removed.
func Start(cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Cluster{dir: cfg.Dir}
	if c.dir == "" {
		dir, err := os.MkdirTemp("", "galena-")
		if err != nil {
			return nil, fmt.Errorf("local: %w", err)
		}
		c.dir, c.tempDir = dir, true
	}
	ids := cfg.IDs
	for i := len(ids); i < cfg.Members; i++ {
		ids = append(ids, fmt.Sprintf("n%d", i+1))
	}
	lns, peers, err := listenLoopback(ids, cfg.BasePort)
	if err != nil {
		return nil, errors.Join(err, c.Close())
	}
	for i, ln := range lns {
		mc := c.memberConfig(peers[i].ID, ln)
		mc.InitialCluster = peers
		if cfg.Member != nil {
			cfg.Member(i, &mc)
		}
		c.cfgs, c.Nodes = append(c.cfgs, mc), append(c.Nodes, nil)
	}
	for i := range c.cfgs {
		if err := c.Restart(i); err != nil {
			closeAll(lns[i+1:]) // a listener is closed by the member it was given to
			return nil, errors.Join(err, c.Close())
		}
	}
	return c, nil
}

// listenLoopback opens a loopback listener for each member of ids, from
// base on (0: on ports the system picks).
func listenLoopback(ids []string, base int) ([]net.Listener, []node.Peer, error) {
	var lns []net.Listener
	var peers []node.Peer
	for i, id := range ids {
		port := 0
		if base > 0 {
			port = base + i
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			closeAll(lns)
			return nil, nil, fmt.Errorf("local: %w", err)
		}
		lns = append(lns, ln)
		peers = append(peers, node.Peer{ID: id, Addr: ln.Addr().String()})
	}
	return lns, peers, nil
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// memberConfig is the configuration of member id serving on ln, its data
// in the cluster's directory.
func (c *Cluster) memberConfig(id string, ln net.Listener) node.Config {
	cfg := node.DefaultConfig()
	cfg.ID, cfg.Addr, cfg.Listener, cfg.DataDir = id, ln.Addr().String(), ln, filepath.Join(c.dir, id)
	return cfg
}

// Dir is the directory that holds the members' data directories.
func (c *Cluster) Dir() string { return c.dir }

// Endpoints are the client addresses of all members, running or not.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.cfgs))
	for i, cfg := range c.cfgs {
		eps[i] = cfg.Addr
	}
	return eps
}

// Restart starts member i, which is stopped, again on its address and data
// directory, as its configuration was.
func (c *Cluster) Restart(i int) error {
	cfg := c.cfgs[i]
	if cfg.Listener == nil {
		ln, err := listenRetry(cfg.Addr)
		if err != nil {
			return fmt.Errorf("local: start %s: %w", cfg.ID, err)
		}
		cfg.Listener = ln
	}
	c.cfgs[i].Listener = nil // a listener serves one start
	nd, err := node.New(cfg)
	if err != nil {
		return fmt.Errorf("local: start %s: %w", cfg.ID, err)
	}
	c.Nodes[i] = nd
	return nil
}

// listenRetry binds addr again, a port its member just released.
func listenRetry(addr string) (net.Listener, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			return ln, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops member i, keeping its data directory. Stopping a stopped
// member does nothing.
func (c *Cluster) Stop(i int) error {
	nd := c.Nodes[i]
	if nd == nil {
		return nil
	}
	c.Nodes[i] = nil
	if err := nd.Close(); err != nil {
		return fmt.Errorf("local: stop %s: %w", nd.ID(), err)
	}
	return nil
}

// Join starts a new member with an empty data directory that joins the
// cluster through member via, and returns its index. edit, if set, adjusts
// its configuration: node.DefaultConfig() with ID, Addr, Listener, DataDir
// and Join set. A member that fails to start is not added.
func (c *Cluster) Join(via int, edit func(cfg *node.Config)) (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("local: %w", err)
	}
	cfg := c.memberConfig(fmt.Sprintf("n%d", len(c.cfgs)+1), ln)
	cfg.Join = c.cfgs[via].Addr
	if edit != nil {
		edit(&cfg)
	}
	c.cfgs, c.Nodes = append(c.cfgs, cfg), append(c.Nodes, nil)
	i := len(c.cfgs) - 1
	if err := c.Restart(i); err != nil {
		c.cfgs, c.Nodes = c.cfgs[:i], c.Nodes[:i] // it never started: not a member of this Cluster
		return 0, err
	}
	return i, nil
}

// Replace stops member i, deletes its data directory and starts it again
// with the same id and address, empty, joining through member via: what an
// operator does to replace a member once it was removed from the cluster.
func (c *Cluster) Replace(i, via int) error {
	if err := c.Stop(i); err != nil {
		return err
	}
	if err := os.RemoveAll(c.cfgs[i].DataDir); err != nil {
		return fmt.Errorf("local: %w", err)
	}
	c.cfgs[i].InitialCluster, c.cfgs[i].Join = nil, c.cfgs[via].Addr
	return c.Restart(i)
}

// Close stops every running member, the last first, and removes the
// temporary directory Start made, if it made one. It returns every error,
// joined; the members are stopped whatever they return.
func (c *Cluster) Close() error {
	var errs []error
	for i := len(c.Nodes) - 1; i >= 0; i-- {
		errs = append(errs, c.Stop(i))
	}
	if c.tempDir {
		if err := os.RemoveAll(c.dir); err != nil {
			errs = append(errs, fmt.Errorf("local: %w", err))
		}
	}
	return errors.Join(errs...)
}
