package node

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/groupcomm"
	"go.uber.org/zap"
)

// retainLoop runs on an arbitrator for the member's life. Every askInterval
// it asks the other members for their applied seqno and keeps the Raft log
// from the lowest seqno of a data member on (groupcomm's RetainLog). An
// arbitrator's snapshots hold no data, so when it leads while one data
// member is down, its log is the only way to bring the other up to date
// when it returns. A member not heard from since this one started keeps the
// whole log.
func (n *Node) retainLoop() {
	t := time.NewTicker(askInterval)
	defer t.Stop()
	applied := map[string]uint64{} // data member → applied seqno, as last heard
	var from uint64
	for {
		ms, err := n.group.Members()
		if err == nil {
			from = n.retainFrom(ms, applied, from)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// retainFrom updates applied with the answers of the members in ms and
// keeps the log from the lowest applied seqno of a data member; prev is
// the value set last time. It returns the value set.
func (n *Node) retainFrom(ms []groupcomm.Member, applied map[string]uint64, prev uint64) uint64 {
	answers := n.askApplied(ms)
	from := uint64(math.MaxUint64)
	for _, m := range ms {
		if m.ID == n.cfg.ID {
			continue
		}
		a, ok := answers[m.ID]
		if ok && a.arbitrator {
			delete(applied, m.ID)
			continue
		}
		if ok {
			applied[m.ID] = a.applied
		}
		from = min(from, applied[m.ID]) // 0 for a member never heard from: keep everything
	}
	if from == math.MaxUint64 {
		from = 0 // no data member
	}
	if from != prev {
		n.lg.Debug("arbitrator keeps its log for the data members", zap.Uint64("from", from))
		n.group.RetainLog(from)
	}
	return from
}

type appliedAnswer struct {
	applied    uint64
	arbitrator bool
}

// askApplied asks every other member in ms for its applied seqno,
// concurrently; members that do not answer within askInterval are left
// out.
func (n *Node) askApplied(ms []groupcomm.Member) map[string]appliedAnswer {
	ctx, cancel := context.WithTimeout(n.ctx, askInterval)
	defer cancel()
	var mu sync.Mutex
	out := map[string]appliedAnswer{}
	var wg sync.WaitGroup
	for _, m := range ms {
		if m.ID == n.cfg.ID {
			continue
		}
		wg.Go(func() {
			_ = n.cfg.withCluster(ctx, m.Addr, func(ctx context.Context, cc galenapb.ClusterClient) error {
				d, err := cc.Digest(ctx, &galenapb.DigestRequest{})
				if err != nil || d.GetId() != m.ID {
					return err
				}
				mu.Lock()
				out[m.ID] = appliedAnswer{applied: d.GetAppliedSeqno(), arbitrator: len(d.GetDigest()) == 0}
				mu.Unlock()
				return nil
			})
		})
	}
	wg.Wait()
	return out
}
