package nemesis

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/galenadb/galena/integration/harness"
)

// errNoEffect: a fault was injected but shows no effect while it lasts: a
// member it killed still runs, one it paused is not stopped, no byte was
// dropped on the links it cuts or delivered late on those it slows.
var errNoEffect = errors.New("nemesis: fault had no effect")

// effectTimeout bounds the wait for a fault's effect to show, past the time
// the fault was meant to last: a link carries its next heartbeat within a
// fraction of it.
const effectTimeout = 5 * time.Second

// effectOf waits up to effectTimeout until cond reports an effect, and
// returns what it saw or, wrapping errNoEffect, why it saw none.
func effectOf(cond func() (string, error)) (string, error) {
	var seen string
	err := harness.WaitFor(effectTimeout, func() (err error) {
		seen, err = cond()
		return err
	})
	if err != nil {
		return "", fmt.Errorf("%w: %w", errNoEffect, err)
	}
	return seen, nil
}

// sigkilled reports whether every process of ps, run by the members ids,
// has exited on SIGKILL, as the kernel's wait status tells.
func sigkilled(ids []string, ps []*harness.Process) (string, error) {
	if len(ps) == 0 {
		return "", errors.New("no process to kill")
	}
	for k, p := range ps {
		id := ids[k]
		switch {
		case p == nil:
			return "", fmt.Errorf("%s had no process", id)
		case !p.Exited():
			return "", fmt.Errorf("%s (pid %d) still runs", id, p.PID())
		}
		st := p.ExitState()
		ws, ok := st.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			return "", fmt.Errorf("%s (pid %d) ended with %v, not on SIGKILL", id, p.PID(), st)
		}
	}
	return strings.Join(ids, ", ") + " exited on SIGKILL", nil
}

// stopped reports whether process p of member id is stopped (SIGSTOP), as
// the kernel's process table tells.
func stopped(id string, p *harness.Process) (string, error) {
	if p == nil || p.Exited() {
		return "", fmt.Errorf("%s has no running process", id)
	}
	pid := p.PID()
	state, err := processState(pid)
	if err != nil {
		return "", err
	}
	if state != "T" {
		return "", fmt.Errorf("%s (pid %d) is in state %s, not stopped (T)", id, pid, state)
	}
	return fmt.Sprintf("%s (pid %d) stopped", id, pid), nil
}

// Link is the link from member From to member To.
type Link struct{ From, To int }

// CrossLinks are the links between the members of a and those of b, both
// ways.
func CrossLinks(a, b []int) []Link {
	var links []Link
	for _, i := range a {
		for _, j := range b {
			links = append(links, Link{i, j}, Link{j, i})
		}
	}
	return links
}

// Traffic sums the Stats of links.
func (nw *Net) Traffic(links []Link) LinkStats {
	var sum LinkStats
	for _, l := range links {
		sum = sum.add(nw.Stats(l.From, l.To))
	}
	return sum
}

// linkEffect reports whether links dropped bytes since before (their
// traffic then), or, when slow, delivered bytes late.
func (nw *Net) linkEffect(links []Link, before LinkStats, slow bool) (string, error) {
	d := nw.Traffic(links).Sub(before)
	switch {
	case len(links) == 0:
		return "", errors.New("no link to act on")
	case slow && d.Delayed == 0:
		return "", fmt.Errorf("no byte delivered late on the %d links it slows (%d delivered)", len(links), d.Bytes)
	case slow:
		return fmt.Sprintf("%d bytes delivered late on %d links", d.Delayed, len(links)), nil
	case d.Dropped == 0:
		return "", fmt.Errorf("no byte dropped on the %d links it cuts (%d delivered)", len(links), d.Bytes)
	}
	return fmt.Sprintf("%d bytes dropped on %d links", d.Dropped, len(links)), nil
}
