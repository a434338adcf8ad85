package local

import (
	"context"
	"fmt"
	"time"

	"github.com/galenadb/galena/node"
)

// Failed returns an error wrapping ErrMemberFailed, with why, for the first
// running member that stopped for good; nil when none did. It reads the
// members' status and leaves their Fatal channels alone.
func (c *Cluster) Failed() error {
	for _, nd := range c.Nodes {
		if nd == nil {
			continue
		}
		if st := nd.Status(); st.State == node.StateFailed {
			return fmt.Errorf("%w: %s: %s", ErrMemberFailed, nd.ID(), st.Error)
		}
	}
	return nil
}

// Wait returns when a member fails, with Failed's error, or when ctx ends,
// with ctx's error.
func (c *Cluster) Wait(ctx context.Context) error {
	return c.poll(ctx, 250*time.Millisecond, func() bool { return false })
}

// WaitSynced waits until every running member is SYNCED and knows the
// leader. It fails when a member fails or ctx ends first.
func (c *Cluster) WaitSynced(ctx context.Context) error {
	err := c.poll(ctx, 20*time.Millisecond, func() bool {
		for _, nd := range c.Nodes {
			if nd == nil {
				continue
			}
			if st := nd.Status(); st.State != node.StateSynced || st.LeaderID == "" {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("waiting for the cluster to elect a leader: %w", err)
	}
	return nil
}

// LeaderID returns the id of the member that leads, as the first running
// member that knows one says; "" when none does.
func (c *Cluster) LeaderID() string {
	for _, nd := range c.Nodes {
		if nd != nil {
			if id := nd.Status().LeaderID; id != "" {
				return id
			}
		}
	}
	return ""
}

// WaitLeader waits until member id leads. It fails when a member fails or
// ctx ends first.
func (c *Cluster) WaitLeader(ctx context.Context, id string) error {
	if err := c.poll(ctx, 20*time.Millisecond, func() bool { return c.LeaderID() == id }); err != nil {
		return fmt.Errorf("waiting for %s to lead: %w", id, err)
	}
	return nil
}

// WaitSame waits until every running member that keeps data (not an
// arbitrator) has applied the same seqno, and returns it once their
// digests there agree; it fails with ErrDiverged when they do not, and
// when a member fails or ctx ends first.
func (c *Cluster) WaitSame(ctx context.Context) (uint64, error) {
	var seq uint64
	var nodes []*node.Node
	var digests [][32]byte
	err := c.poll(ctx, 10*time.Millisecond, func() bool {
		nodes, digests = nodes[:0], digests[:0]
		for _, nd := range c.Nodes {
			if nd == nil || nd.Status().Arbitrator {
				continue
			}
			s, d := nd.Digest()
			if len(nodes) > 0 && s != seq {
				return false
			}
			seq, nodes, digests = s, append(nodes, nd), append(digests, d)
		}
		return true
	})
	if err != nil {
		return 0, fmt.Errorf("waiting for the members to apply the same seqno: %w", err)
	}
	for i, d := range digests {
		if d != digests[0] {
			return seq, fmt.Errorf("%w: %s and %s have different digests at seqno %d", ErrDiverged, nodes[0].ID(), nodes[i].ID(), seq)
		}
	}
	return seq, nil
}

// poll calls done every interval until it reports true, a member fails, or
// ctx ends.
func (c *Cluster) poll(ctx context.Context, interval time.Duration, done func() bool) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for !done() {
		if err := c.Failed(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
