package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// killTimeout bounds the wait for a SIGKILLed process to be reaped.
const killTimeout = 10 * time.Second

// process is one run of a member's galena process.
type process struct {
	cmd      *exec.Cmd
	start    int           // 1 for the member's first start, 2 for the next, ...
	done     chan struct{} // closed once the process has exited and been reaped
	err      error         // cmd.Wait's result; read it only after done is closed
	stopping atomic.Bool   // the harness signalled it, so its exit is expected
	paused   atomic.Bool   // SIGSTOPped by Pause and not yet continued
}

// wait reaps the process. It runs in a goroutine of its own that ends when
// the process exits; the cluster's cleanup kills every process.
func (p *process) wait(onCrash func(error)) {
	p.err = p.cmd.Wait()
	if !p.stopping.Load() {
		onCrash(p.err) // before done: whoever sees the exit sees the crash
	}
	close(p.done)
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Start starts member i's process with its data directory and port, and
// returns once the member answers the Status RPC (it need not have a leader
// yet). It fails if the member is already running, or exits or stays silent
// for Options.WaitTimeout; the error then shows the end of its log.
func (c *Cluster) Start(i int) error {
	m := c.members[i]
	m.op.Lock()
	defer m.op.Unlock()
	return c.start(m)
}

// Kill sends SIGKILL to member i and waits until it has exited, paused or
// not. Killing a member that is not running does nothing.
func (c *Cluster) Kill(i int) error {
	m := c.members[i]
	m.op.Lock()
	defer m.op.Unlock()
	_, err := c.halt(m, syscall.SIGKILL, killTimeout)
	return err
}

// Stop sends SIGTERM to member i and waits until it has exited. It fails if
// the member exits with a non-zero status, or has not exited within
// Options.StopTimeout (it is then killed). Stopping a member that is not
// running does nothing.
func (c *Cluster) Stop(i int) error {
	m := c.members[i]
	m.op.Lock()
	defer m.op.Unlock()
	return c.stop(m)
}

// Pause sends SIGSTOP to member i: the process stays alive, its connections
// stay open, and it does nothing at all (no heartbeats, no answers), as if it
// hung. The waits (Leader, WaitReady, WaitConverged) leave paused members
// out, as they do stopped ones. Pausing a member that is paused or not
// running does nothing.
func (c *Cluster) Pause(i int) error {
	m := c.members[i]
	m.op.Lock()
	defer m.op.Unlock()
	p := m.current()
	if p == nil || p.exited() || p.paused.Load() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("integration: pause %s: %w", m.id, err)
	}
	p.paused.Store(true)
	c.note(m, "paused (SIGSTOP)")
	return nil
}

// Resume sends SIGCONT to member i if Pause paused it.
func (c *Cluster) Resume(i int) error {
	m := c.members[i]
	m.op.Lock()
	defer m.op.Unlock()
	return c.resume(m)
}

func (c *Cluster) resume(m *member) error {
	p := m.current()
	if p == nil || p.exited() || !p.paused.Load() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("integration: resume %s: %w", m.id, err)
	}
	p.paused.Store(false)
	c.note(m, "resumed (SIGCONT)")
	return nil
}

// Restart stops member i as Stop does if it is running, then starts it again
// as Start does, with the same data directory and port. It starts the member
// even when stopping it failed, and returns both errors.
func (c *Cluster) Restart(i int) error {
	m := c.members[i]
	m.op.Lock()
	defer m.op.Unlock()
	stopErr := c.stop(m)
	return errors.Join(stopErr, c.start(m))
}

func (c *Cluster) start(m *member) error {
	if p := m.current(); p != nil && !p.exited() {
		return fmt.Errorf("integration: start %s: already running (pid %d)", m.id, p.cmd.Process.Pid)
	}
	p, err := c.spawn(m)
	if err != nil {
		return err
	}
	return c.waitServing(m, p)
}

// startArgs is member m's `galena start` command line.
func (c *Cluster) startArgs(m *member) []string {
	args := []string{"start", "--id", m.id, "--addr", m.addr, "--data", m.dataDir}
	if m.join != "" {
		args = append(args, "--join", m.join)
	} else {
		args = append(args, "--initial-cluster", c.initial)
	}
	args = append(args,
		"--log-level", c.opts.LogLevel,
		"--heartbeat-timeout", c.opts.HeartbeatTimeout.String(),
		"--election-timeout", c.opts.ElectionTimeout.String(),
	)
	if c.net != nil {
		args = append(args, "--peer-route", c.net.PeerRoute(c.index(m)))
	}
	args = append(args, c.opts.ExtraArgs...)
	return append(args, m.args...)
}

// spawn starts member m's process with its output appended to its log.
func (c *Cluster) spawn(m *member) (*process, error) {
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("integration: start %s: %w", m.id, err)
	}
	defer logf.Close() // the child has its own descriptor
	m.mu.Lock()
	m.starts++
	n := m.starts
	m.mu.Unlock()
	args := c.startArgs(m)
	cmd := exec.Command(c.opts.Binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	fmt.Fprintf(logf, "=== integration: start #%d of %s at %s: galena %s\n",
		n, m.id, time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("integration: start %s: %w", m.id, err)
	}
	p := &process{cmd: cmd, start: n, done: make(chan struct{})}
	go p.wait(func(err error) { c.crashed(m, p, err) })
	m.mu.Lock()
	m.proc = p
	m.mu.Unlock()
	return p, nil
}

// waitServing polls member m's Status RPC until it answers, p exits, or
// Options.WaitTimeout passes.
func (c *Cluster) waitServing(m *member, p *process) error {
	err := WaitFor(c.opts.WaitTimeout, func() error {
		if p.exited() {
			return permanent(fmt.Errorf("exited: %v", p.err))
		}
		_, err := statusOf(m)
		return err
	})
	if err != nil {
		return fmt.Errorf("integration: start #%d of %s: %w\n%s", p.start, m.id, err, tail(m.logPath, logTailLines))
	}
	return nil
}

// stop is Stop with m.op held.
func (c *Cluster) stop(m *member) error {
	p, err := c.halt(m, syscall.SIGTERM, c.opts.StopTimeout)
	if err != nil || p == nil {
		return err
	}
	if p.err != nil {
		return fmt.Errorf("integration: stop %s: exited with %v after SIGTERM\n%s", m.id, p.err, tail(m.logPath, logTailLines))
	}
	return nil
}

// halt sends sig to member m's process, if it runs, and waits for it to
// exit; after timeout it kills the process and fails. It returns the process
// it signalled, or nil when none was running.
func (c *Cluster) halt(m *member, sig syscall.Signal, timeout time.Duration) (*process, error) {
	p := m.current()
	if p == nil || p.exited() {
		return nil, nil
	}
	p.stopping.Store(true)
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return p, fmt.Errorf("integration: %v to %s: %w", sig, m.id, err)
	}
	if sig != syscall.SIGKILL { // a paused process acts on SIGTERM only once continued
		if err := c.resume(m); err != nil {
			return p, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	select {
	case <-p.done:
		c.note(m, "%v: exited (%v)", sig, p.err)
		return p, nil
	case <-ctx.Done():
	}
	p.cmd.Process.Kill()
	<-p.done
	c.note(m, "%v: still running after %v; killed", sig, timeout)
	return p, fmt.Errorf("integration: %s did not exit within %v of %v; killed it\n%s", m.id, timeout, sig, tail(m.logPath, logTailLines))
}

// note appends a harness line to member m's log.
func (c *Cluster) note(m *member, format string, args ...any) {
	f, err := os.OpenFile(m.logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "=== integration: %s at %s: %s\n", m.id, time.Now().Format(time.RFC3339Nano), fmt.Sprintf(format, args...))
}

// crashed records that process p of member m exited without being told to.
func (c *Cluster) crashed(m *member, p *process, err error) {
	c.note(m, "start #%d exited on its own: %v", p.start, err)
	c.crashMu.Lock()
	defer c.crashMu.Unlock()
	c.crashes = append(c.crashes, fmt.Errorf("%s (start #%d) exited on its own: %v", m.id, p.start, err))
}

// Crashed reports every member process that exited without the harness
// stopping or killing it, or nil. The waits fail as soon as there is one,
// and so does the test when its cluster is cleaned up.
func (c *Cluster) Crashed() error {
	if err := c.crashErr(); err != nil {
		return fmt.Errorf("integration: %w", err)
	}
	return nil
}

func (c *Cluster) crashErr() error {
	c.crashMu.Lock()
	defer c.crashMu.Unlock()
	return errors.Join(c.crashes...)
}
