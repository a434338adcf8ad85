package groupcomm

import (
	"io"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// arbitratorState is an arbitrator's Deliverer: it keeps no state but the
// applied index, so its snapshots are a header alone. It holds no data, so
// the seqnos it counts are not meaningful: after it restores a snapshot it
// counts them from the snapshot's index.
type arbitratorState struct{ applied atomic.Pointer[Position] }

func (a *arbitratorState) Deliver(_ []Entry, last Position) error {
	a.applied.Store(&last)
	return nil
}

func (a *arbitratorState) Applied() Position {
	if p := a.applied.Load(); p != nil {
		return *p
	}
	return Position{}
}

func (a *arbitratorState) Snapshot() (Snapshot, error) {
	return arbitratorSnapshot(a.Applied().Index), nil
}

// Restore takes the snapshot's index; the data a data member's snapshot
// carries is read and dropped.
func (a *arbitratorState) Restore(r io.Reader, index uint64) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	a.applied.Store(&Position{Index: index, Seqno: index})
	return nil
}

type arbitratorSnapshot uint64

func (s arbitratorSnapshot) Index() uint64                  { return uint64(s) }
func (s arbitratorSnapshot) Seqno() uint64                  { return uint64(s) }
func (arbitratorSnapshot) WriteTo(io.Writer) (int64, error) { return 0, nil }
func (arbitratorSnapshot) Release()                         {}

// handOff runs on an arbitrator: whenever it leads, it transfers leadership
// to the most up-to-date other voter, retrying each election timeout until
// it succeeds or no longer leads. Until then it serves as leader, which is
// safe: it orders entries like any leader, and data members refuse its
// header-only snapshots.
func (g *Group) handOff() {
	g.whileLeading(g.cfg.HeartbeatTimeout/2, func(now time.Time) time.Time {
		if err := g.futures.wait(g.raft.LeadershipTransfer); err != nil {
			g.lg.Warn("arbitrator leads and could not hand leadership over yet", zap.Error(err))
			return now.Add(g.cfg.ElectionTimeout)
		}
		addr, id := g.raft.LeaderWithID()
		g.lg.Info("arbitrator handed leadership over", zap.String("to", string(id)), zap.String("addr", string(addr)))
		return now.Add(g.cfg.ElectionTimeout)
	})
}

// RetainLog keeps the log entries at and above index from when a snapshot
// compacts the log (below them, compaction goes on as configured); zero
// keeps every entry. It only acts on an arbitrator, which calls it with the
// lowest applied index of the data members: an arbitrator's snapshots hold
// no data, so while it leads and no other data member is up, its log is
// the only way to bring a data member that was down up to date.
func (g *Group) RetainLog(from uint64) { g.cache.keepFrom.Store(from) }
