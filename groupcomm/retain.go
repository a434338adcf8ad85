package groupcomm

import (
	"context"
	"math"
	"sync"
	"time"

	"go.uber.org/zap"
)

// retainForDataMembers runs on an arbitrator with Config.Peers for the
// Group's life. Every askInterval it asks the other members for their
// applied index and keeps the log from the lowest index of a data member
// on (RetainLog). An arbitrator's snapshots hold no data, so when it leads
// while one data member is down, its log is the only way to bring that
// member up to date when it returns. A member not heard from since this
// one started keeps the whole log.
func (g *Group) retainForDataMembers() {
	t := time.NewTicker(askInterval)
	defer t.Stop()
	applied := map[string]uint64{} // data member → applied index, as last heard
	var from uint64
	for {
		if ms, err := g.Members(); err == nil {
			if f := retainFrom(g.ctx, g.cfg.Peers, g.cfg.ID, ms, applied); f != from {
				from = f
				g.lg.Debug("arbitrator keeps its log for the data members", zap.Uint64("from", from))
				g.RetainLog(from)
			}
		}
		select {
		case <-g.closing:
			return
		case <-t.C:
		}
	}
}

// retainFrom updates applied with the answers of the members in ms other
// than self, and returns the lowest applied index of a data member: 0 for
// one never heard from (keep everything) or when there is none.
func retainFrom(ctx context.Context, peers Peers, self string, ms []Member, applied map[string]uint64) uint64 {
	answers := askApplied(ctx, peers, self, ms)
	from := uint64(math.MaxUint64)
	for _, m := range ms {
		if m.ID == self {
			continue
		}
		a, ok := answers[m.ID]
		if ok && a.Arbitrator {
			delete(applied, m.ID)
			continue
		}
		if ok {
			applied[m.ID] = a.Applied
		}
		from = min(from, applied[m.ID])
	}
	if from == math.MaxUint64 {
		return 0 // no data member
	}
	return from
}

// askApplied asks every member in ms other than self for its applied
// index, concurrently; members that do not answer within askInterval are
// left out.
func askApplied(ctx context.Context, peers Peers, self string, ms []Member) map[string]PeerState {
	ctx, cancel := context.WithTimeout(ctx, askInterval)
	defer cancel()
	var mu sync.Mutex
	out := map[string]PeerState{}
	var wg sync.WaitGroup
	for _, m := range ms {
		if m.ID == self {
			continue
		}
		wg.Go(func() {
			st, err := peers.Applied(ctx, m)
			if err != nil {
				return
			}
			mu.Lock()
			out[m.ID] = st
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}
