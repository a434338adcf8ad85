package groupcomm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// Once stop has begun, a future is answered without asking Raft; stop
// waits for Raft's answers to those asked before, and every caller of a
// future gets Raft's answer.
func TestFuturesStop(t *testing.T) {
	fs := newFutures()
	answer := make(chan error, 1)
	asked := fs.ask(func() raft.Future { return chanFuture(answer) })
	waited := make(chan error, 2)
	for range 2 {
		go func() { waited <- asked.Error() }()
	}
	unanswered := make(chan int, 1)
	go func() { unanswered <- fs.stop(time.Minute) }()
	waitFor(t, "stop to begin", func() bool {
		fs.mu.RLock()
		defer fs.mu.RUnlock()
		return fs.stopped
	})
	if err := fs.wait(func() raft.Future { t.Fatal("Raft asked after stop began"); return nil }); !errors.Is(err, errNotAsked) || !errors.Is(err, ErrClosed) {
		t.Fatalf("asked after stop began: %v, want ErrClosed, not handed to Raft", err)
	}
	answer <- raft.ErrLeadershipLost
	if n := <-unanswered; n != 0 { // returned before Raft answered
		t.Fatalf("stop left %d unanswered", n)
	}
	for range 2 {
		if err := <-waited; !errors.Is(err, raft.ErrLeadershipLost) {
			t.Fatalf("a caller got %v, want Raft's answer", err)
		}
	}
}

// Until Raft has shut down, a caller gets Raft's answer, however late; a
// future Raft has not answered then is answered ErrRaftShutdown, and an
// answer that came first is still the answer.
func TestFuturesUnansweredAtShutdown(t *testing.T) {
	fs := newFutures()
	answerLate, answerNever := make(chan error, 1), make(chan error, 1)
	late := fs.ask(func() raft.Future { return chanFuture(answerLate) })
	never := fs.ask(func() raft.Future { return chanFuture(answerNever) })
	if n := fs.stop(10 * time.Millisecond); n != 2 {
		t.Fatalf("stop: %d unanswered, want 2", n)
	}
	answerLate <- raft.ErrLeadershipLost
	if err := late.Error(); !errors.Is(err, raft.ErrLeadershipLost) {
		t.Fatalf("answered after stop, before shutdown: %v, want Raft's answer", err)
	}
	fs.shutDown()
	if err := never.Error(); !errors.Is(err, raft.ErrRaftShutdown) {
		t.Fatalf("never answered: %v, want ErrRaftShutdown", err)
	}
	if err := late.Error(); !errors.Is(err, raft.ErrLeadershipLost) {
		t.Fatalf("answered before shutdown, asked after: %v, want Raft's answer", err)
	}
	answerNever <- nil // lets the goroutine taking the answer end
	<-never.done
}

// chanFuture is answered with what is sent on it.
type chanFuture chan error

func (c chanFuture) Error() error { return <-c }

// A leader whose FSM is behind when it closes still owes an answer for
// each entry it committed; the responders of forwarded commits wait for
// them, and Close for the responders. Raft shut down first would leave the
// entries its FSM loop had not yet taken unanswered for good: Close lets
// Raft answer them first, and returns.
func TestCloseAnswersCommittedEntriesFirst(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a group")
	}
	ms := startGroupWith(t, 3, func(_ int, cfg *Config) { cfg.MaxBatch = 1 })
	l := leader(t, ms)
	ld, f := ms[l], ms[(l+1)%3]
	open := gate(t, ld) // the leader's FSM stops at the next entry
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Commits through the follower, each committed on its own, so that
	// each reaches the leader's FSM loop apart: one waits at the gate,
	// the others queue behind it.
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		before := ld.g.raft.CommitIndex()
		wg.Go(func() { f.g.Broadcast(ctx, fmt.Appendf(nil, "c%d", i)) })
		waitFor(t, fmt.Sprintf("commit %d", i), func() bool { return ld.g.raft.CommitIndex() > before })
	}
	closed := make(chan error, 1)
	go func() { closed <- ld.g.Close() }()
	waitFor(t, "Close to stop asking Raft, or to shut it down", func() bool {
		ld.g.futures.mu.RLock()
		defer ld.g.futures.mu.RUnlock()
		return ld.g.futures.stopped || ld.g.raft.State() == raft.Shutdown
	})
	open()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		// The test's cleanup would wait on the same Close: end here.
		panic("Close did not return: a responder waits on an entry Raft will never answer")
	}
	wg.Wait()
	delivered := ld.d.entries()
	for i := range n {
		if !strings.Contains(delivered, fmt.Sprintf(":c%d ", i)) {
			t.Errorf("the leader closed before it delivered c%d", i)
		}
	}
}
