package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/galenadb/galena/node"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []Config{{}, {Members: 3, BasePort: -1}, {Members: 3, BasePort: 65534}} {
		if _, err := Start(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("Start(%+v) = %v; want ErrInvalidConfig", cfg, err)
		}
	}
}

// With a BasePort the members listen on it and the ports after it; one
// that is taken fails the start and leaves nothing open.
func TestBasePort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	if _, err := Start(Config{Members: 2, BasePort: port - 1}); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Start over a taken port = %v; want it refused", err)
	}
	taken.Close()
	// The freed port and the one before it, unless something took them
	// meanwhile: then try again.
	var c *Cluster
	for try := 0; c == nil; try++ {
		if c, err = Start(Config{Members: 2, BasePort: port - 1, Member: func(_ int, cfg *node.Config) {
			cfg.Logger = zaptest.NewLogger(t).Named(cfg.ID)
		}}); err != nil && try == 5 {
			t.Fatal(err)
		}
	}
	defer c.Close()
	if want := []string{fmt.Sprintf("127.0.0.1:%d", port-1), fmt.Sprintf("127.0.0.1:%d", port)}; !slices.Equal(c.Endpoints(), want) {
		t.Fatalf("endpoints %v; want %v", c.Endpoints(), want)
	}
}

// A cluster in a temporary directory elects a leader, applies the same
// history everywhere, takes a member back after a restart, and leaves
// nothing behind when closed.
func TestStartWaitClose(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	edited := 0
	c, err := Start(Config{Members: 3, Member: func(i int, cfg *node.Config) {
		edited++
		cfg.Logger = zaptest.NewLogger(t).Named(cfg.ID)
		if cfg.ID != []string{"n1", "n2", "n3"}[i] || len(cfg.InitialCluster) != 3 || cfg.Listener == nil {
			t.Errorf("member %d: %s with %d peers", i, cfg.ID, len(cfg.InitialCluster))
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	dir := c.Dir()
	defer func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s is still there after Close: %v", dir, err)
		}
	}()
	if edited != 3 || len(c.Endpoints()) != 3 || c.Endpoints()[1] != c.Nodes[1].Addr() {
		t.Fatalf("%d members edited, endpoints %v", edited, c.Endpoints())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	leader := c.LeaderID()
	if !slices.Contains([]string{"n1", "n2", "n3"}, leader) {
		t.Fatalf("LeaderID() = %q once synced", leader)
	}
	if err := c.WaitLeader(ctx, leader); err != nil {
		t.Fatal(err)
	}
	none, stop := context.WithTimeout(ctx, 100*time.Millisecond)
	defer stop()
	if err := c.WaitLeader(none, "n9"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitLeader for a member that is not there = %v, want its deadline", err)
	}
	if err := c.Stop(2); err != nil || c.Nodes[2] != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := c.Restart(2); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitSame(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Failed(); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := c.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v; want the context's end", err)
	}
}
