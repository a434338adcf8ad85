package integration

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/galenadb/galena/api/galenapb"
)

const (
	// pollInterval is the pause between two checks of a condition.
	pollInterval = 50 * time.Millisecond
	// stateSynced is the state of a primary member that is caught up.
	stateSynced = "SYNCED"
	// raftLeader is the raft_state of a leader.
	raftLeader = "Leader"
)

// Leader waits up to Options.WaitTimeout until exactly one running member
// that is not paused reports itself Leader, and returns its index.
func (c *Cluster) Leader() (int, error) {
	leader := -1
	err := WaitFor(c.opts.WaitTimeout, func() error {
		if err := c.crashErr(); err != nil {
			return permanent(err)
		}
		var leaders []int
		for i, m := range c.members {
			if !m.live() {
				continue
			}
			if st, err := m.Status(); err == nil && st.GetRaftState() == raftLeader {
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
		return -1, fmt.Errorf("integration: no single leader: %w", err)
	}
	return leader, nil
}

// WaitReady waits up to Options.WaitTimeout until every running member that
// is not paused answers Status, is SYNCED (primary and caught up), and names
// the same leader, which is a running member that reports itself Leader.
func (c *Cluster) WaitReady() error {
	err := WaitFor(c.opts.WaitTimeout, func() error {
		if err := c.crashErr(); err != nil {
			return permanent(err)
		}
		sts, err := c.runningStatus()
		if err != nil {
			return err
		}
		return ready(sts)
	})
	if err != nil {
		return fmt.Errorf("integration: cluster not ready: %w", err)
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
		case st.GetState() != stateSynced:
			return fmt.Errorf("%s is %s", st.GetId(), st.GetState())
		case st.GetLeaderId() == "" || st.GetLeaderId() != leader:
			return fmt.Errorf("%s names leader %q, %s names %q", sts[0].GetId(), leader, st.GetId(), st.GetLeaderId())
		}
	}
	for _, st := range sts {
		if st.GetId() == leader && st.GetRaftState() == raftLeader {
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
			return permanent(err)
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
		return 0, fmt.Errorf("integration: not converged: %w", err)
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

func permanent(err error) error { return permanentError{err} }

// WaitFor calls cond until it returns nil, returns a permanent error, or
// timeout passes; it then returns cond's last error.
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
		time.Sleep(pollInterval)
	}
}
