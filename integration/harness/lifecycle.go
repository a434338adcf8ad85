package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// killTimeout bounds the wait for a SIGKILLed process to be reaped.
const killTimeout = 10 * time.Second

// Start starts the member's process with its data directory and port, and
// returns once the member answers the Status RPC (it need not have a leader
// yet). It fails if the member is already running, or exits or stays silent
// for Options.WaitTimeout; the error then shows the end of its log.
func (m *Member) Start() error {
	m.op.Lock()
	defer m.op.Unlock()
	return m.start()
}

// StartIfDown starts the member as Start does unless it is running.
func (m *Member) StartIfDown() error {
	m.op.Lock()
	defer m.op.Unlock()
	if m.running() {
		return nil
	}
	return m.start()
}

// Kill sends SIGKILL to the member and waits until it has exited, paused or
// not. Killing a member that is not running does nothing.
func (m *Member) Kill() error {
	m.op.Lock()
	defer m.op.Unlock()
	_, err := m.halt(syscall.SIGKILL, killTimeout)
	return err
}

// Stop sends SIGTERM to the member and waits until it has exited. It fails
// if the member exits with a non-zero status, or has not exited within
// Options.StopTimeout (it is then killed). Stopping a member that is not
// running does nothing.
func (m *Member) Stop() error {
	m.op.Lock()
	defer m.op.Unlock()
	return m.stop()
}

// Restart stops the member as Stop does if it is running, then starts it
// again as Start does, with the same data directory and port. It starts the
// member even when stopping it failed, and returns both errors.
func (m *Member) Restart() error {
	m.op.Lock()
	defer m.op.Unlock()
	stopErr := m.stop()
	return errors.Join(stopErr, m.start())
}

// Pause sends SIGSTOP to the member: the process stays alive, its
// connections stay open, and it does nothing at all (no heartbeats, no
// answers), as if it hung. The waits (Leader, WaitReady, WaitConverged)
// leave paused members out, as they do stopped ones. Pausing a member that
// is paused or not running does nothing.
func (m *Member) Pause() error {
	m.op.Lock()
	defer m.op.Unlock()
	p := m.Process()
	if p == nil || p.Exited() || p.paused.Load() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("harness: pause %s: %w", m.id, err)
	}
	p.paused.Store(true)
	m.note("paused (SIGSTOP)")
	return nil
}

// Resume sends SIGCONT to the member if Pause paused it.
func (m *Member) Resume() error {
	m.op.Lock()
	defer m.op.Unlock()
	return m.resume()
}

func (m *Member) resume() error {
	p := m.Process()
	if p == nil || p.Exited() || !p.paused.Load() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("harness: resume %s: %w", m.id, err)
	}
	p.paused.Store(false)
	m.note("resumed (SIGCONT)")
	return nil
}

// Hangup sends SIGHUP to the member's process: it reloads its TLS files.
func (m *Member) Hangup() error {
	m.op.Lock()
	defer m.op.Unlock()
	p := m.Process()
	if p == nil || p.Exited() {
		return fmt.Errorf("harness: hang up %s: not running", m.id)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("harness: hang up %s: %w", m.id, err)
	}
	m.note("SIGHUP")
	return nil
}

// start is Start with m.op held.
func (m *Member) start() error {
	if p := m.Process(); p != nil && !p.Exited() {
		return fmt.Errorf("harness: start %s: already running (pid %d)", m.id, p.PID())
	}
	p, err := m.spawn()
	if err != nil {
		return err
	}
	return m.waitServing(p)
}

// startArgs is the member's `galena start` command line.
func (m *Member) startArgs() []string {
	c := m.c
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
	if c.router != nil {
		args = append(args, "--peer-route", c.router.PeerRoute(m.i))
	}
	args = append(args, c.opts.ExtraArgs...)
	return append(args, m.args...)
}

// spawn starts the member's process with its output appended to its log.
func (m *Member) spawn() (*Process, error) {
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("harness: start %s: %w", m.id, err)
	}
	defer logf.Close() // the child has its own descriptor
	m.mu.Lock()
	m.starts++
	n := m.starts
	m.mu.Unlock()
	args := m.startArgs()
	cmd := exec.Command(m.c.opts.Binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	fmt.Fprintf(logf, "%s%d of %s at %s: galena %s\n",
		startMarker, n, m.id, time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("harness: start %s: %w", m.id, err)
	}
	p := &Process{m: m, cmd: cmd, start: n, done: make(chan struct{})}
	go p.wait(func(err error) { m.c.crashed(m, p, err) })
	m.mu.Lock()
	m.proc = p
	m.mu.Unlock()
	return p, nil
}

// waitServing polls the member's Status RPC until it answers, p exits, or
// Options.WaitTimeout passes.
func (m *Member) waitServing(p *Process) error {
	err := WaitFor(m.c.opts.WaitTimeout, func() error {
		if p.Exited() {
			return Permanent(fmt.Errorf("exited: %v", p.err))
		}
		_, err := m.Status()
		return err
	})
	if err != nil {
		return fmt.Errorf("harness: start #%d of %s: %w\n%s", p.start, m.id, err, m.LogTail())
	}
	return nil
}

// stop is Stop with m.op held.
func (m *Member) stop() error {
	p, err := m.halt(syscall.SIGTERM, m.c.opts.StopTimeout)
	if err != nil || p == nil {
		return err
	}
	if p.err != nil {
		return fmt.Errorf("harness: stop %s: exited with %v after SIGTERM\n%s", m.id, p.err, m.LogTail())
	}
	return nil
}

// halt sends sig to the member's process, if it runs, and waits for it to
// exit; after timeout it kills the process and fails. It returns the process
// it signalled, or nil when none was running.
func (m *Member) halt(sig syscall.Signal, timeout time.Duration) (*Process, error) {
	p := m.Process()
	if p == nil || p.Exited() {
		return nil, nil
	}
	p.stopping.Store(true)
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return p, fmt.Errorf("harness: %v to %s: %w", sig, m.id, err)
	}
	if sig != syscall.SIGKILL { // a paused process acts on SIGTERM only once continued
		if err := m.resume(); err != nil {
			return p, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	select {
	case <-p.done:
		m.note("%v: exited (%v)", sig, p.err)
		return p, nil
	case <-ctx.Done():
	}
	p.cmd.Process.Kill()
	<-p.done
	m.note("%v: still running after %v; killed", sig, timeout)
	return p, fmt.Errorf("harness: %s did not exit within %v of %v; killed it\n%s", m.id, timeout, sig, m.LogTail())
}
