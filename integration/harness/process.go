package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// harnessLine begins the lines the harness writes in a member's log;
// startMarker, its line before each start.
const (
	harnessLine = "=== integration: "
	startMarker = harnessLine + "start #"
)

// Process is one run of a member's galena process: what it logged, how it
// exited. Its methods are safe for concurrent use.
type Process struct {
	m        *Member
	cmd      *exec.Cmd
	start    int           // 1 for the member's first start, 2 for the next, ...
	done     chan struct{} // closed once the process has exited and been reaped
	err      error         // cmd.Wait's result; read it only after done is closed
	stopping atomic.Bool   // the harness signalled it, so its exit is expected
	paused   atomic.Bool   // SIGSTOPped by Pause and not yet continued
}

// wait reaps the process. It runs in a goroutine of its own that ends when
// the process exits; the cluster's cleanup kills every process.
func (p *Process) wait(onCrash func(error)) {
	p.err = p.cmd.Wait()
	if !p.stopping.Load() {
		onCrash(p.err) // before done: whoever sees the exit sees the crash
	}
	close(p.done)
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has exited and been reaped.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitState is how the process exited, as the kernel's wait status tells,
// or nil while it runs.
func (p *Process) ExitState() *os.ProcessState {
	if !p.Exited() {
		return nil
	}
	return p.cmd.ProcessState
}

// ExpectExit tells the harness that the process is about to exit on its
// own (its member was removed from the cluster, or it must stop on an
// error), so its exit is not reported as a crash. Call it before whatever
// makes it exit; Wait then says how it exited.
func (p *Process) ExpectExit() { p.stopping.Store(true) }

// Wait waits up to timeout for the process to exit and returns its exit
// code. It fails if the process is still running after timeout (it is left
// running).
func (p *Process) Wait(timeout time.Duration) (int, error) {
	m := p.m
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		return -1, fmt.Errorf("harness: %s still running %v later\n%s", m.id, timeout, m.LogTail())
	}
	var exit *exec.ExitError
	if p.err != nil && !errors.As(p.err, &exit) {
		return -1, fmt.Errorf("harness: %s: %w", m.id, p.err)
	}
	return p.cmd.ProcessState.ExitCode(), nil
}

// Log is what the process wrote to its member's log so far, from the
// harness's line announcing its start.
func (p *Process) Log() (string, error) {
	m := p.m
	b, err := os.ReadFile(m.logPath)
	if err != nil {
		return "", fmt.Errorf("harness: %w", err)
	}
	s := string(b)
	at := strings.LastIndex(s, fmt.Sprintf("%s%d of %s ", startMarker, p.start, m.id))
	if at < 0 {
		return "", fmt.Errorf("harness: %s: no start #%d in %s", m.id, p.start, m.logPath)
	}
	return s[at:], nil
}

// WaitLog waits up to timeout until the process has logged a line
// containing substr, and returns that line. The lines the harness writes
// in the log (as it starts, stops or pauses the member) do not count.
func (p *Process) WaitLog(timeout time.Duration, substr string) (string, error) {
	var line string
	err := WaitFor(timeout, func() error {
		log, err := p.Log()
		if err != nil {
			return err
		}
		for l := range strings.Lines(log) {
			if !strings.HasPrefix(l, harnessLine) && strings.Contains(l, substr) {
				line = strings.TrimRight(l, "\n")
				return nil
			}
		}
		return fmt.Errorf("%s has not logged %q", p.m.id, substr)
	})
	if err != nil {
		return "", fmt.Errorf("harness: %w", err)
	}
	return line, nil
}

// appliedField finds the applied field of a log line, console or JSON.
var appliedField = regexp.MustCompile(`"applied":\s*(\d+)`)

// StartedApplied waits for the process to log "member started" and returns
// that line's applied field: the seqno it resumed from.
func (p *Process) StartedApplied(timeout time.Duration) (uint64, error) {
	line, err := p.WaitLog(timeout, "member started")
	if err != nil {
		return 0, err
	}
	sub := appliedField.FindStringSubmatch(line)
	if sub == nil {
		return 0, fmt.Errorf("harness: %s: no applied field in %q", p.m.id, line)
	}
	return strconv.ParseUint(sub[1], 10, 64)
}
