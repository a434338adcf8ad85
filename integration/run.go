package integration

import (
	"context"
	"errors"
	"fmt"
	"maps"
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

// This file is the driver of the Jepsen-style tests: Run starts concurrent
// clients of one Workload, spread over every member, records their history,
// lets a Faults injector work at the same time, then heals, waits for the
// members to converge, takes final reads on every member, checks the
// history and compares the members' contents.

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
	// paused members and starts stopped ones. The driver (the package's
	// Run) calls it once Faults.Run returned, then waits for the cluster to
	// be ready.
	HealAll() error
}

// Workload is one kind of Jepsen-style test: what the clients do and how the
// history is checked. A Workload's methods are safe for concurrent use (Step
// is called by every client at once).
type Workload interface {
	// Name is the workload's name, as -jepsen.workloads lists it.
	Name() string
	// Setup prepares the cluster's data before the clients start, through
	// cl, a client of every member.
	Setup(ctx context.Context, cl *client.Client) error
	// Step runs one operation with cl (a client bound to one member), and
	// returns it with its payload, outcome (see Classify) and error text;
	// Run records its process, member and times.
	Step(ctx context.Context, cl *client.Client, rng *rand.Rand) checker.Op
	// Final takes the final reads on the member of s, once the cluster
	// converged, recording each through s.Do. A read that fails is an error.
	Final(ctx context.Context, s *Session) ([]checker.Op, error)
	// Check checks the clients' history h against the final state.
	Check(h []checker.Op, final FinalState) (checker.Result, error)
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

// FinalState is what Run gathered once the clients stopped and the cluster
// converged.
type FinalState struct {
	// Reads are the final reads of every member (Workload.Final), in member
	// order.
	Reads []checker.Op
	// Contents are every member's keys and values, by member index (nil for
	// a member not running, never nil for one that was read).
	Contents [][]client.KV
	// Dir is where a checker may write artefacts (such as a visualization).
	Dir string
}

// Session is a client bound to one member, with the process id and member
// id its operations are recorded under.
type Session struct {
	Client  *client.Client
	Process int
	Node    string
	rec     *Recorder
}

// Do records the operation fn runs: it is invoked now and completes with the
// outcome of the Op fn returns (see Invocation.CompleteOp).
func (s *Session) Do(fn func() checker.Op) checker.Op {
	inv := s.rec.Invoke(s.Process, s.Node, nil)
	return inv.CompleteOp(fn())
}

// WorkloadNames are the workloads NewWorkload knows, in the default order.
var WorkloadNames = []string{checker.WorkloadBank, checker.WorkloadAppend, checker.WorkloadSet, checker.WorkloadRegister}

// NewWorkload returns a new workload, with default settings, by name.
func NewWorkload(name string) (Workload, error) {
	switch name {
	case checker.WorkloadBank:
		return &BankWorkload{}, nil
	case checker.WorkloadAppend:
		return &AppendWorkload{}, nil
	case checker.WorkloadSet:
		return &SetWorkload{}, nil
	case checker.WorkloadRegister:
		return &RegisterWorkload{}, nil
	}
	return nil, fmt.Errorf("integration: unknown workload %q (want one of %s)", name, strings.Join(WorkloadNames, ", "))
}

// RunConfig configures Run. Zero fields take the defaults listed.
type RunConfig struct {
	// Workload is the workload's name (see NewWorkload). Required.
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

// Report is the outcome of one Run.
type Report struct {
	Workload string
	Seed     uint64
	// Ops counts the clients' operations by outcome (final reads excluded).
	Ops checker.Counts
	// Faults are the faults injected.
	Faults []FaultEvent
	// Result is the checker's verdict; CheckErr is set when it could not
	// decide (and Result is then empty).
	Result   checker.Result
	CheckErr error
	// Seqno is the seqno the members converged at; Convergence is how long
	// that took once the faults were healed and the cluster was ready.
	Seqno       uint64
	Convergence time.Duration
	// Members is the number of members whose contents were compared;
	// ContentsDiff describes how they differ ("" when identical), Keys is
	// how many keys they hold.
	Members      int
	Keys         int
	ContentsDiff string
	// HistoryDir holds history.jsonl (the clients' ops, then the final
	// reads) and report.txt; empty when they were not written.
	HistoryDir string
	// Elapsed is the wall time of the whole Run.
	Elapsed time.Duration
	// Errors are failures of the run itself: setup, healing, readiness,
	// convergence, final reads, contents, writing the history.
	Errors []error
}

// Valid reports whether the run worked, the checker found no anomaly and
// every member holds the same contents.
func (r Report) Valid() bool {
	return len(r.Errors) == 0 && r.CheckErr == nil && r.Result.Valid && r.ContentsDiff == ""
}

// Anomalies is the number of anomalies the checker found.
func (r Report) Anomalies() int { return len(r.Result.Anomalies) }

// Summary is the report on one line.
func (r Report) Summary() string {
	verdict := "valid"
	switch {
	case r.CheckErr != nil:
		verdict = "UNDECIDED: " + r.CheckErr.Error()
	case !r.Result.Valid:
		verdict = fmt.Sprintf("INVALID: %d anomalies %v", r.Anomalies(), r.Result.Kinds())
	}
	contents := fmt.Sprintf("contents identical on %d members (%d keys)", r.Members, r.Keys)
	if r.ContentsDiff != "" {
		contents = "CONTENTS DIFFER: " + r.ContentsDiff
	}
	s := fmt.Sprintf("%s: ops ok/fail/info=%s, %s, %s, %d anomalies, converged in %v at seqno %d, %s, %v, seed %d",
		r.Workload, r.Ops, r.faultSummary(), verdict, r.Anomalies(), r.Convergence.Round(time.Millisecond), r.Seqno,
		contents, r.Elapsed.Round(time.Millisecond), r.Seed)
	if len(r.Errors) > 0 {
		s += fmt.Sprintf("; %d RUN ERRORS: %v", len(r.Errors), errors.Join(r.Errors...))
	}
	return s
}

// FaultKinds are the kinds of the faults that were injected, took effect
// and were healed, each once, in the order they first ran.
func (r Report) FaultKinds() []string {
	var kinds []string
	for _, e := range r.Faults {
		if e.Err == nil && !slices.Contains(kinds, e.Kind) {
			kinds = append(kinds, e.Kind)
		}
	}
	return kinds
}

// faultSummary is "3 faults (kill, split)", naming the kinds that ran.
func (r Report) faultSummary() string {
	s := fmt.Sprintf("%d faults", len(r.Faults))
	if kinds := r.FaultKinds(); len(kinds) > 0 {
		s += " (" + strings.Join(kinds, ", ") + ")"
	}
	return s
}

// String is the summary, then the faults, the checker's counts and
// anomalies, and where the history is.
func (r Report) String() string {
	var b strings.Builder
	b.WriteString(r.Summary())
	for _, e := range r.Faults {
		fmt.Fprintf(&b, "\n  fault %6.1fs %-14s %s", e.Time.Seconds(), e.Kind, e.Detail)
		if e.Effect != "" {
			b.WriteString(": " + e.Effect)
		}
		if e.Err != nil {
			fmt.Fprintf(&b, " ERROR: %v", e.Err)
		}
	}
	if r.CheckErr == nil {
		b.WriteString("\n  check: " + describeResult(r.Result))
	}
	if r.HistoryDir != "" {
		fmt.Fprintf(&b, "\n  history: %s", filepath.Join(r.HistoryDir, "history.jsonl"))
	}
	return b.String()
}

const (
	// runDialTimeout is the DialTimeout of the workload's clients.
	runDialTimeout = 2 * time.Second
	// setupTimeout bounds Workload.Setup and each final read.
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

	w, err := NewWorkload(cfg.Workload)
	if err != nil {
		fail(err)
		return rep
	}
	dir := cfg.HistoryDir
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fail(fmt.Errorf("integration: history dir: %w", err))
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

	rec := NewRecorder()
	h, events, errs := runClients(base, c, w, rec, cfg)
	rep.Faults = events
	rep.Errors = append(rep.Errors, errs...)
	rep.Ops = countOps(h)

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
func setup(base context.Context, c Cluster, w Workload) error {
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
func runClients(base context.Context, c Cluster, w Workload, rec *Recorder, cfg RunConfig) ([]checker.Op, []FaultEvent, []error) {
	var errs []error
	sessions := make([]*Session, cfg.Clients)
	for i := range sessions {
		m := i % c.Size()
		cl, err := client.New(client.Config{Endpoints: []string{c.Endpoint(m)}, DialTimeout: runDialTimeout})
		if err != nil {
			for _, s := range sessions[:i] {
				s.Client.Close()
			}
			return nil, nil, []error{fmt.Errorf("client %d: %w", i, err)}
		}
		sessions[i] = &Session{Client: cl, Process: i, Node: c.ID(m), rec: rec}
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
	return rec.History(), events, errs
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
func takeFinal(base context.Context, c Cluster, w Workload, rec *Recorder, cfg RunConfig, rep *Report) (FinalState, error) {
	ready := time.Now()
	seqno, err := c.WaitConverged(cfg.ConvergeTimeout)
	rep.Convergence = time.Since(ready)
	if err != nil {
		return FinalState{}, err
	}
	var final FinalState
	for attempt := 1; ; attempt++ {
		rep.Seqno = seqno
		if final, err = finalState(base, c, w, rec, cfg); err != nil {
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

// finalState takes the final reads and contents of every running member.
func finalState(base context.Context, c Cluster, w Workload, rec *Recorder, cfg RunConfig) (FinalState, error) {
	final := FinalState{Contents: make([][]client.KV, c.Size())}
	for i := range c.Size() {
		if !c.Running(i) {
			continue
		}
		cl, err := client.New(client.Config{Endpoints: []string{c.Endpoint(i)}, DialTimeout: runDialTimeout})
		if err != nil {
			return final, err
		}
		ctx, cancel := context.WithTimeout(base, setupTimeout)
		reads, err := w.Final(ctx, &Session{Client: cl, Process: cfg.Clients + i, Node: c.ID(i), rec: rec})
		cancel()
		cl.Close()
		if err != nil {
			return final, err
		}
		final.Reads = append(final.Reads, reads...)
		kvs, err := Contents(base, c.Endpoint(i), "")
		if err != nil {
			return final, err
		}
		final.Contents[i] = append([]client.KV{}, kvs...) // not nil: it was read
	}
	return final, nil
}

func countOps(h []checker.Op) checker.Counts {
	var n checker.Counts
	for _, o := range h {
		switch o.Type {
		case checker.TypeOK:
			n.OK++
		case checker.TypeFail:
			n.Fail++
		case checker.TypeInfo:
			n.Info++
		}
	}
	return n
}

// writeRun writes h to dir/history.jsonl and rep to dir/report.txt.
func writeRun(dir string, h []checker.Op, rep Report) error {
	f, err := os.Create(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		return fmt.Errorf("integration: write history: %w", err)
	}
	err = checker.WriteHistory(f, h)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("integration: write history: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.txt"), []byte(rep.String()+"\n"), 0o644); err != nil {
		return fmt.Errorf("integration: write report: %w", err)
	}
	return nil
}

const (
	// reportAnomalies is how many anomalies Report.String shows in full.
	reportAnomalies = 10
	// reportLine caps one anomaly's text in Report.String.
	reportLine = 4000
)

// describeResult renders res for a report: the verdict and counts, the
// first anomalies (each capped), and how many allowed patterns of each kind
// (such as G2 cycles under snapshot isolation) were seen.
func describeResult(res checker.Result) string {
	short := res
	short.Anomalies, short.Allowed = nil, nil
	head := short.String()
	if !res.Valid {
		head = fmt.Sprintf("invalid: %d anomalies %v", len(res.Anomalies), res.Kinds()) +
			strings.TrimPrefix(head, "valid")
	}
	var b strings.Builder
	b.WriteString(head)
	for i, a := range res.Anomalies {
		if i == reportAnomalies {
			fmt.Fprintf(&b, "\n  ... %d more anomalies (see the history)", len(res.Anomalies)-i)
			break
		}
		text := a.String()
		if len(text) > reportLine {
			text = text[:reportLine] + " ..."
		}
		b.WriteString("\n  " + strings.ReplaceAll(text, "\n", "\n  "))
	}
	allowed := map[string]int{}
	for _, a := range res.Allowed {
		allowed[a.Kind]++
	}
	for _, k := range slices.Sorted(maps.Keys(allowed)) {
		fmt.Fprintf(&b, "\n  allowed: %d %s", allowed[k], k)
	}
	return b.String()
}
