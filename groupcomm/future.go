package groupcomm

import (
	"sync"

	"github.com/hashicorp/raft"
)

// Raft answers every future it hands out while it runs: an entry once its
// FSM has applied it, or with an error when leadership is lost; a majority
// check, a leadership transfer or a membership change once done, or at once
// when not leading. Shut down, it leaves some unanswered for good: an entry
// committed that its FSM loop had not yet taken, a majority check or a
// transfer still queued for its main loop. Whoever waits on one of those
// waits forever — a forwarding stream's responder, and with it Close.
//
// So every future is asked for through futures, and Close answers all of
// them before it shuts Raft down; once Close has begun, none is asked for.
type futures struct {
	// mu is held for reading while a future is asked for, and by Close to
	// stop that: after it, no future is handed out that close has not seen.
	mu     sync.RWMutex
	closed bool

	pmu     sync.Mutex
	pending map[*future]struct{} // asked for, not yet answered
}

// future is one of Raft's futures, answered once: the first caller of Error
// takes the answer (Raft's futures allow one reader) and the others share it.
type future struct {
	f    raft.Future
	once sync.Once
	err  error
	from *futures
}

// ask returns the future fn asks Raft for; once close has begun, it returns
// one answered ErrClosed instead, without calling fn. fn must not ask for
// another.
func (fs *futures) ask(fn func() raft.Future) *future {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	f := &future{from: fs}
	if fs.closed {
		f.once.Do(func() { f.err = ErrClosed })
		return f
	}
	f.f = fn()
	fs.pmu.Lock()
	if fs.pending == nil {
		fs.pending = make(map[*future]struct{})
	}
	fs.pending[f] = struct{}{}
	fs.pmu.Unlock()
	return f
}

// wait asks fn for a future and returns its answer.
func (fs *futures) wait(fn func() raft.Future) error { return fs.ask(fn).Error() }

// Error waits for Raft's answer.
func (f *future) Error() error {
	f.once.Do(func() {
		f.err = f.f.Error()
		f.from.pmu.Lock()
		delete(f.from.pending, f)
		f.from.pmu.Unlock()
	})
	return f.err
}

// apply is the future of an entry (ApplyLog's), once Error returned nil.
func (f *future) apply() raft.ApplyFuture { return f.f.(raft.ApplyFuture) }

// close stops handing out futures and waits for Raft's answer to each one
// not yet answered. Raft must still run.
func (fs *futures) close() {
	fs.mu.Lock()
	fs.closed = true
	fs.mu.Unlock()
	fs.pmu.Lock()
	left := make([]*future, 0, len(fs.pending))
	for f := range fs.pending {
		left = append(left, f)
	}
	fs.pmu.Unlock()
	for _, f := range left {
		f.Error()
	}
}
