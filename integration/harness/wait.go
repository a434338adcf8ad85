package harness

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/galenadb/galena/api/galenapb"
)

const (
	// PollInterval is the pause between two checks of a condition.
	PollInterval = 50 * time.Millisecond
	// StateSynced is the state of a primary member that is caught up.
	StateSynced = "SYNCED"
	// RaftLeader is the raft_state of a leader.
	RaftLeader = "Leader"
)

// Leader waits up to Options.WaitTimeout until exactly one running member
// that is not paused reports itself Leader, and returns its index.
func (c *Cluster) Leader() (int, error) {
	leader := -1
	err := WaitFor(c.opts.WaitTimeout, func() error {
		if err := c.crashErr(); err != nil {
			return Permanent(err)
		}
		var leaders []int
		for i, m := range c.members {
			if !m.live() {
				continue
			}
			if st, err := m.Status(); err == nil && st.GetRaftState() == RaftLeader {
				leaders = append(leaders, i)
			}
		}
		if len(leaders) != 1 {
			return fmt.Errorf("%d running members report Leader %v", len(leaders), c.IDs(leaders...))
		}
		leader = leaders[0]
		return nil
	})
	if err != nil {
		return -1, fmt.Errorf("harness: no single leader: %w", err)
	}
	return leader, nil
}

// WaitReady waits up to Options.WaitTimeout until every running member that
// is not paused answers Status, is SYNCED (primary and caught up), and names
// the same leader, which is a running member that reports itself Leader.
func (c *Cluster) WaitReady() error {
	err := WaitFor(c.opts.WaitTimeout, func() error {
		if err := c.crashErr(); err != nil {
			return Permanent(err)
		}
		sts, err := c.runningStatus()
		if err != nil {
			return err
		}
		return ready(sts)
	})
	if err != nil {
		return fmt.Errorf("harness: cluster not ready: %w", err)
	}
	return nil
}

// ready checks the statuses of the running members for WaitReady.
func ready(sts []*galenapb.StatusResponse) error {
	if len(sts) == 0 {
		return errors.New("no member is running")
	}
	leader := sts[0].GetLeaderId()
	for _, st := range sts {
		switch {
		case st.GetState() != StateSynced:
			return fmt.Errorf("%s is %s", st.GetId(), st.GetState())
		case st.GetLeaderId() == "" || st.GetLeaderId() != leader:
			return fmt.Errorf("%s names leader %q, %s names %q", sts[0].GetId(), leader, st.GetId(), st.GetLeaderId())
		}
	}
	for _, st := range sts {
		if st.GetId() == leader && st.GetRaftState() == RaftLeader {
			return nil
		}
	}
	return fmt.Errorf("leader %s is not a running member that reports Leader", leader)
}

// WaitConverged waits up to timeout until every running member that is not
// paused reports the same applied seqno, and returns it. Call it once the
// writes of interest have been acknowledged: every member has then applied
// them.
func (c *Cluster) WaitConverged(timeout time.Duration) (uint64, error) {
	var seqno uint64
	err := WaitFor(timeout, func() error {
		if err := c.crashErr(); err != nil {
			return Permanent(err)
		}
		sts, err := c.runningStatus()
		if err != nil {
			return err
		}
		if len(sts) == 0 {
			return errors.New("no member is running")
		}
		seqno = sts[0].GetAppliedSeqno()
		for _, st := range sts[1:] {
			if st.GetAppliedSeqno() != seqno {
				return fmt.Errorf("applied seqnos differ: %s", appliedList(sts))
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("harness: not converged: %w", err)
	}
	return seqno, nil
}

// runningStatus asks every running member that is not paused for its status.
func (c *Cluster) runningStatus() ([]*galenapb.StatusResponse, error) {
	var sts []*galenapb.StatusResponse
	for _, m := range c.members {
		if !m.live() {
			continue
		}
		st, err := m.Status()
		if err != nil {
			return nil, err
		}
		sts = append(sts, st)
	}
	return sts, nil
}

func appliedList(sts []*galenapb.StatusResponse) string {
	parts := make([]string, len(sts))
	for i, st := range sts {
		parts[i] = fmt.Sprintf("%s=%d", st.GetId(), st.GetAppliedSeqno())
	}
	return strings.Join(parts, " ")
}

// permanentError marks a condition that waiting will not fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err, returned by a condition of WaitFor, as one that
// waiting will not fix: WaitFor returns it at once.
func Permanent(err error) error { return permanentError{err} }

// Idle waits d, or until ctx ends: the pacing of schedules and clients, not
// a wait for a condition (see WaitFor).
func Idle(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// WaitFor calls cond every PollInterval until it returns nil, returns an
// error marked Permanent (WaitFor then returns what it marks), or timeout
// passes; it then returns cond's last error.
func WaitFor(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		var perm permanentError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &perm):
			return perm.err
		case !time.Now().Before(deadline):
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(PollInterval)
	}
}
