package groupcomm

import (
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Raft answers every future it hands out while it runs: an entry once its
// FSM has applied it, or with an error when leadership is lost; a majority
// check, a leadership transfer or a membership change once done, or at once
// when not leading. Shut down, it leaves some unanswered for good: an entry
// committed that its FSM loop had not yet taken, a majority check or a
// transfer still queued for its main loop. Whoever waited on one of those
// would wait forever — a forwarding stream's responder, and with it Close.
//
// So every future is asked for through futures, and its answer taken by a
// goroutine of its own; callers wait on that goroutine, and once Raft has
// shut down, no longer. Before Raft shuts down, Close stops asking and lets
// Raft answer what it was asked, for a while: a caller then gets Raft's
// answer (applied, or leadership lost) rather than the shutdown. A leader
// that keeps its lease but cannot commit (a majority refusing its appends)
// may never answer: the goroutines taking those answers are the only ones
// that outlive Close, each blocked on a channel Raft will never use again
// (in tests, goleak reports them).
type futures struct {
	// mu is held for reading while a future is asked for, and by stop to
	// end that: no future is asked for once stop has begun.
	mu      sync.RWMutex
	stopped bool

	pmu     sync.Mutex
	pending int           // futures not yet answered
	drained chan struct{} // closed once stopped and none is pending

	dead chan struct{} // closed once Raft has shut down
}

// errNotAsked answers a future asked for once Close (or the apply loop's
// failure) has begun: Raft never saw it.
var errNotAsked = fmt.Errorf("%w: not handed to Raft", ErrClosed)

func newFutures() *futures {
	return &futures{drained: make(chan struct{}), dead: make(chan struct{})}
}

// future is one of Raft's futures; any number of callers may wait on it.
type future struct {
	f    raft.Future
	done chan struct{} // closed once err is the answer
	err  error
	dead <-chan struct{}
}

// ask returns the future fn asks Raft for, or, once stop has begun, one
// answered errNotAsked without calling fn. fn must not ask for another.
func (fs *futures) ask(fn func() raft.Future) *future {
	f := &future{done: make(chan struct{}), dead: fs.dead}
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	if fs.stopped {
		f.err = errNotAsked
		close(f.done)
		return f
	}
	f.f = fn()
	fs.pmu.Lock()
	fs.pending++
	fs.pmu.Unlock()
	go func() {
		f.err = f.f.Error()
		close(f.done)
		fs.pmu.Lock()
		defer fs.pmu.Unlock()
		if fs.pending--; fs.pending == 0 && fs.stopped {
			close(fs.drained)
		}
	}()
	return f
}

// wait asks fn for a future and returns its answer.
func (fs *futures) wait(fn func() raft.Future) error { return fs.ask(fn).Error() }

// Error returns Raft's answer once it has come, or raft.ErrRaftShutdown if
// Raft shut down without answering.
func (f *future) Error() error {
	select {
	case <-f.done:
		return f.err
	case <-f.dead:
	}
	select {
	case <-f.done:
		return f.err
	default:
		return raft.ErrRaftShutdown
	}
}

// apply is the future of an entry (ApplyLog's), once Error returned nil.
func (f *future) apply() raft.ApplyFuture { return f.f.(raft.ApplyFuture) }

// stop stops asking Raft for futures, once those being asked for are
// handed out (Raft takes an entry when its leader loop is free), and waits
// for its answers to them for at most bound; it returns how many are still
// unanswered. Raft must still run.
func (fs *futures) stop(bound time.Duration) int {
	fs.mu.Lock()
	fs.pmu.Lock()
	fs.stopped = true
	if fs.pending == 0 {
		close(fs.drained)
	}
	fs.pmu.Unlock()
	fs.mu.Unlock()
	t := time.NewTimer(bound)
	defer t.Stop()
	select {
	case <-fs.drained:
	case <-t.C:
	}
	fs.pmu.Lock()
	defer fs.pmu.Unlock()
	return fs.pending
}

// shutDown tells the callers still waiting that Raft has shut down.
func (fs *futures) shutDown() { close(fs.dead) }
