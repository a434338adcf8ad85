package workload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/checker"
)

// FaultEvent is one fault a Faults injected.
type FaultEvent struct {
	// Time is when it was injected, since Faults.Run was called (which Run
	// does as the clients start).
	Time time.Duration
	// Kind names the fault (such as "kill" or "split"); Detail says what was
	// done (such as "killed n2"), Effect what that did (such as "n2 exited
	// on SIGKILL").
	Kind, Detail, Effect string
	// Err is why injecting or healing it failed, or why it had no effect.
	Err error
}

// Faults injects faults while a workload runs.
type Faults interface {
	// Run injects faults for d, or longer when it must to inject the faults
	// it promises, or until ctx ends; heals the one active then; and returns
	// every fault injected, with an error when one could not be injected or
	// healed or had no effect, or when fewer were injected than promised.
	// The clients run until it returns.
	Run(ctx context.Context, d time.Duration) ([]FaultEvent, error)
	// HealAll undoes whatever fault is left: heals the network, resumes
	// paused members and starts stopped ones. Run calls it once Faults.Run
	// returned, then waits for the cluster to be ready.
	HealAll() error
}

// Cluster is the cluster Run drives: its members, by index from 0 to Size,
// and waits on them. *harness.Cluster is one. Its methods must be safe for
// concurrent use.
type Cluster interface {
	// Size is the number of members.
	Size() int
	// ID and Endpoint are member i's id and address.
	ID(i int) string
	Endpoint(i int) string
	// Running reports whether member i runs, so that its final state can be
	// read.
	Running(i int) bool
	// WaitReady waits until the running members are ready, with a leader.
	WaitReady() error
	// WaitConverged waits up to timeout until the running members have
	// applied the same seqno, and returns it.
	WaitConverged(timeout time.Duration) (uint64, error)
}

// RunConfig configures Run. Zero fields take the defaults listed.
type RunConfig struct {
	// Workload is the workload's name, one of Names. Required.
	Workload string
	// Duration is how long the clients (and the faults) run; default 6s.
	// The clients go on while Faults.Run does, up to faultsOverrun longer.
	Duration time.Duration
	// Clients is the number of concurrent clients; default 6. Client i is
	// bound to member i mod the cluster's size and is process i.
	Clients int
	// Faults injects faults while the clients run; nil for none.
	Faults Faults
	// HistoryDir is where history.jsonl and report.txt are written, made if
	// needed; empty: they are not written.
	HistoryDir string
	// OpTimeout bounds one operation; default 5s. An operation in flight
	// when the run ends completes within it.
	OpTimeout time.Duration
	// ConvergeTimeout bounds the wait for the members to converge after the
	// run, and for the setup to reach every member; default 30s.
	ConvergeTimeout time.Duration
	// Seed seeds the clients' random choices; 0 picks one (the report names
	// it).
	Seed uint64
}

func (cfg RunConfig) withDefaults() RunConfig {
	if cfg.Duration == 0 {
		cfg.Duration = 6 * time.Second
	}
	if cfg.Clients == 0 {
		cfg.Clients = 6
	}
	if cfg.OpTimeout == 0 {
		cfg.OpTimeout = 5 * time.Second
	}
	if cfg.ConvergeTimeout == 0 {
		cfg.ConvergeTimeout = 30 * time.Second
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	return cfg
}

const (
	// runDialTimeout is the DialTimeout of the workload's clients.
	runDialTimeout = 2 * time.Second
	// setupTimeout bounds workload.Setup and each final read.
	setupTimeout = 30 * time.Second
	// failPause is how long a client waits after an op that did not succeed
	// with an error other than a conflict, so a down member is not hammered.
	failPause = 20 * time.Millisecond
	// finalAttempts bounds how often the final state is taken again because
	// the members moved on while it was taken.
	finalAttempts = 3
	// faultsOverrun bounds how long Faults.Run may go on past the run's
	// Duration to inject the faults it promises.
	faultsOverrun = 2 * time.Minute
)

// Run runs cfg.Workload against c: it sets the workload up, runs
// cfg.Clients clients and cfg.Faults for cfg.Duration, stops them, heals,
// waits until the cluster is ready and converged, takes the final reads and
// every member's contents, checks, and writes the history. What failed is
// in the Report, which the caller asserts on. ctx bounds the whole run. Call
// it with every member running.
func Run(ctx context.Context, c Cluster, cfg RunConfig) (rep Report) {
	cfg = cfg.withDefaults()
	began := time.Now()
	rep = Report{Workload: cfg.Workload, Seed: cfg.Seed}
	defer func() { rep.Elapsed = time.Since(began) }()
	fail := func(err error) { rep.Errors = append(rep.Errors, err) }

	w, err := newWorkload(cfg.Workload)
	if err != nil {
		fail(err)
		return rep
	}
	dir := cfg.HistoryDir
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fail(fmt.Errorf("workload: history dir: %w", err))
			return rep
		}
	}
	rep.HistoryDir = dir
	base := ctx

	if err := setup(base, c, w); err != nil {
		fail(fmt.Errorf("setup: %w", err))
		return rep
	}
	if _, err := c.WaitConverged(cfg.ConvergeTimeout); err != nil { // every member sees the setup
		fail(fmt.Errorf("after setup: %w", err))
		return rep
	}
	if f, ok := w.(follower); ok {
		defer f.Stop()
		if err := f.Follow(base, c); err != nil {
			fail(fmt.Errorf("follow: %w", err))
			return rep
		}
	}

	rec := newRecorder()
	h, events, errs := runClients(base, c, w, rec, cfg)
	rep.Faults = events
	rep.Errors = append(rep.Errors, errs...)
	rep.Ops, rep.History = countOps(h), h

	if err := c.WaitReady(); err != nil {
		fail(err)
	}
	final, err := takeFinal(base, c, w, rec, cfg, &rep)
	if err != nil {
		fail(err)
	}
	final.Dir = dir
	rep.Result, rep.CheckErr = w.Check(h, final)
	rep.Elapsed = time.Since(began)
	if dir == "" {
		return rep
	}
	if err := writeRun(dir, slices.Concat(h, final.Reads), rep); err != nil {
		fail(err)
	}
	return rep
}

// setup runs w's Setup through a client of every member of c.
func setup(base context.Context, c Cluster, w workload) error {
	eps := make([]string, c.Size())
	for i := range eps {
		eps[i] = c.Endpoint(i)
	}
	cl, err := client.New(client.Config{Endpoints: eps, DialTimeout: runDialTimeout})
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(base, setupTimeout)
	defer cancel()
	return w.Setup(ctx, cl)
}

// runClients runs the clients and the faults for cfg.Duration, then heals
// and waits for every client's last operation. It returns the clients'
// history, the faults injected and the errors of healing.
func runClients(base context.Context, c Cluster, w workload, rec *recorder, cfg RunConfig) ([]checker.Op, []FaultEvent, []error) {
	var errs []error
	sessions := make([]*session, cfg.Clients)
	for i := range sessions {
		m := i % c.Size()
		cl, err := client.New(client.Config{Endpoints: []string{c.Endpoint(m)}, DialTimeout: runDialTimeout})
		if err != nil {
			for _, s := range sessions[:i] {
				s.Client.Close()
			}
			return nil, nil, []error{fmt.Errorf("client %d: %w", i, err)}
		}
		sessions[i] = &session{Client: cl, Process: i, Node: c.ID(m), rec: rec}
	}
	runCtx, stop := context.WithCancel(base)
	defer stop()

	waitFaults := startFaults(base, cfg)
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Go(func() {
			defer s.Client.Close()
			rng := rand.New(rand.NewPCG(cfg.Seed, uint64(s.Process)))
			for runCtx.Err() == nil {
				op := s.Do(func() checker.Op {
					ctx, cancel := context.WithTimeout(base, cfg.OpTimeout)
					defer cancel()
					return w.Step(ctx, s.Client, rng)
				})
				if op.Type != checker.TypeOK && !strings.Contains(op.Error, client.ErrConflict.Error()) {
					idle(runCtx, failPause)
				}
			}
		})
	}
	idle(base, cfg.Duration)
	events, err := waitFaults() // the faults promised may take longer
	stop()
	if err != nil {
		errs = append(errs, fmt.Errorf("faults: %w", err))
	}
	if cfg.Faults != nil {
		if err := cfg.Faults.HealAll(); err != nil {
			errs = append(errs, fmt.Errorf("heal: %w", err))
		}
	}
	wg.Wait()
	return rec.history(), events, errs
}

// idle waits d or until ctx ends.
func idle(ctx context.Context, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	<-ctx.Done()
}

// startFaults runs cfg.Faults, if any, on a goroutine of its own; the
// caller must call the function it returns, which waits for that goroutine
// and returns the faults injected.
func startFaults(base context.Context, cfg RunConfig) func() ([]FaultEvent, error) {
	if cfg.Faults == nil {
		return func() ([]FaultEvent, error) { return nil, nil }
	}
	var events []FaultEvent
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(base, cfg.Duration+faultsOverrun)
		defer cancel()
		events, err = cfg.Faults.Run(ctx, cfg.Duration)
	}()
	return func() ([]FaultEvent, error) {
		<-done
		return events, err
	}
}

// takeFinal waits until the members converge, then takes every running
// member's final reads and contents; when the members moved on meanwhile it
// takes them again. It fills rep's Seqno, Convergence, Members, Keys and
// ContentsDiff.
func takeFinal(base context.Context, c Cluster, w workload, rec *recorder, cfg RunConfig, rep *Report) (finalState, error) {
	ready := time.Now()
	seqno, err := c.WaitConverged(cfg.ConvergeTimeout)
	rep.Convergence = time.Since(ready)
	if err != nil {
		return finalState{}, err
	}
	var final finalState
	for attempt := 1; ; attempt++ {
		rep.Seqno = seqno
		if final, err = readFinal(base, c, w, rec, cfg); err != nil {
			return final, err
		}
		again, err := c.WaitConverged(cfg.ConvergeTimeout)
		if err != nil {
			return final, err
		}
		if again == seqno {
			break
		}
		if attempt == finalAttempts {
			return final, fmt.Errorf("final state: members kept applying (seqno %d, then %d)", seqno, again)
		}
		seqno = again
	}
	rep.Members, rep.Keys, rep.ContentsDiff = compareContents(c.ID, final.Contents)
	return final, nil
}

// readFinal takes the final reads and contents of every running member.
func readFinal(base context.Context, c Cluster, w workload, rec *recorder, cfg RunConfig) (finalState, error) {
	final := finalState{Contents: make([][]client.KV, c.Size())}
	for i := range c.Size() {
		if !c.Running(i) {
			continue
		}
		cl, err := client.New(client.Config{Endpoints: []string{c.Endpoint(i)}, DialTimeout: runDialTimeout})
		if err != nil {
			return final, err
		}
		ctx, cancel := context.WithTimeout(base, setupTimeout)
		reads, err := w.Final(ctx, &session{Client: cl, Process: cfg.Clients + i, Node: c.ID(i), rec: rec})
		cancel()
		cl.Close()
		if err != nil {
			return final, err
		}
		final.Reads = append(final.Reads, reads...)
		kvs, err := Contents(base, c.Endpoint(i), "", nil)
		if err != nil {
			return final, err
		}
		final.Contents[i] = append([]client.KV{}, kvs...) // not nil: it was read
	}
	return final, nil
}

// writeRun writes h to dir/history.jsonl and rep to dir/report.txt.
func writeRun(dir string, h []checker.Op, rep Report) error {
	f, err := os.Create(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		return fmt.Errorf("workload: write history: %w", err)
	}
	err = checker.WriteHistory(f, h)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("workload: write history: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.txt"), []byte(rep.String()+"\n"), 0o644); err != nil {
		return fmt.Errorf("workload: write report: %w", err)
	}
	return nil
}
