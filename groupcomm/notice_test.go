package groupcomm

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// noCommitTimeout stands for raft's CommitTimeout in these tests: long
// enough that a follower never learns a commit from the leader's idle
// appends while a test runs.
const noCommitTimeout = 10 * time.Minute

// startQuietGroup starts 3 members whose leader sends followers no idle
// appends, and returns them with the leader's position.
func startQuietGroup(t *testing.T) ([]*member, int) {
	t.Helper()
	ms := startGroupWith(t, 3, func(_ int, cfg *Config) { cfg.CommitTimeout = noCommitTimeout })
	return ms, leader(t, ms)
}

// A commit through a follower returns once the leader has answered: the
// follower does not wait for the leader's next append to learn that its
// entry committed. Without commit notices, each Broadcast here would wait
// for the leader's idle append, noCommitTimeout away.
func TestForwardedEntryAppliesWithoutAnotherAppend(t *testing.T) {
	ms, l := startQuietGroup(t)
	f := ms[(l+1)%3]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 5 {
		idx, err := f.g.Broadcast(ctx, []byte{'a' + byte(i)})
		if err != nil {
			t.Fatalf("broadcast %d through a follower: %v", i, err)
		}
		if got := f.d.Applied().Index; got < idx {
			t.Fatalf("Broadcast returned index %d with only %d applied", idx, got)
		}
	}
}

// The leader answers a forwarded entry once it commits, not once it has
// applied it: a commit through a follower returns, applied there, while
// the leader's apply of that very entry is held.
func TestForwardedEntryNeedsNotTheLeadersApply(t *testing.T) {
	ms, l := startQuietGroup(t)
	f := ms[(l+1)%3]
	gate := make(chan struct{})
	ms[l].d.gate.Store(&gate)
	t.Cleanup(func() { close(gate) }) // before the members stop
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	idx, err := f.g.Broadcast(ctx, []byte("x"))
	if err != nil {
		t.Fatalf("broadcast through a follower while the leader's apply is held: %v", err)
	}
	if !f.d.holds(idx, []byte("x")) {
		t.Fatalf("Broadcast returned index %d, which the follower did not deliver it in", idx)
	}
	if got := ms[l].d.Applied().Index; got >= idx {
		t.Fatalf("the leader applied through index %d while its apply was held", got)
	}
}

// A notice commits an entry only when the follower holds that very entry:
// one naming another term, or an index beyond the follower's log, changes
// nothing.
func TestNoticeCommitsOnlyTheEntryNamed(t *testing.T) {
	ms, l := startQuietGroup(t)
	f, idx := uncommittedFollower(t, ms, l)
	var entry raft.Log
	if err := f.g.cache.GetLog(idx, &entry); err != nil {
		t.Fatal(err)
	}

	f.g.notes.send(idx, entry.Term-1) // another term
	f.g.notes.send(idx+5, entry.Term) // beyond its log
	if c := f.g.raft.CommitIndex(); c >= idx {
		t.Fatalf("commit index %d after notices naming no entry the follower holds", c)
	}
	if f.d.Applied().Index >= idx {
		t.Fatalf("the follower applied seqno %d after wrong notices", idx)
	}

	f.g.notes.send(idx, entry.Term)
	if c := f.g.raft.CommitIndex(); c != idx {
		t.Fatalf("commit index %d after a notice for %d", c, idx)
	}
	waitFor(t, "the follower to apply the noticed entry", func() bool { return f.d.Applied().Index >= idx })
}

// uncommittedFollower broadcasts through the leader ms[l] (no notice)
// until a follower stores an entry without having learned that it
// committed, and returns that follower and the entry's index. The leader
// tells a follower the commit index with the next entries it sends, so a
// follower sent the entry after the other one acknowledged it learns both
// at once; it tries again then, 20 times at most.
func uncommittedFollower(t *testing.T, ms []*member, l int) (*member, uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 20 {
		idx, err := ms[l].g.Broadcast(ctx, []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range ms {
			if i == l {
				continue
			}
			waitFor(t, "a follower to store the entry", func() bool { return f.g.raft.LastIndex() >= idx })
			if f.g.raft.CommitIndex() < idx {
				return f, idx
			}
		}
	}
	t.Fatal("every follower learned the commit index of 20 entries with the entries: the test needs one that did not")
	return nil, 0
}

// The commands queued while an entry is being handed go into the next
// entries, as many as the bounds allow: 10 one-byte commands with
// MaxBatch 4 and MaxBatchBytes 3 make entries of 3, 3, 3 and 1, each
// command with a seqno of its own, in order.
func TestQueuedCommandsFillEntriesToTheBounds(t *testing.T) {
	ms := startGroupWith(t, 3, func(_ int, cfg *Config) { cfg.MaxBatch, cfg.MaxBatchBytes = 4, 3 })
	l := ms[leader(t, ms)]
	a := l.g.app
	a.mu.Lock()
	a.busy = true // as if a command were being handed: the next ones queue
	a.mu.Unlock()
	entries, commands := a.entries.Load(), a.commands.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	calls := make([]*appendCall, 10)
	for i := range calls {
		c, err := a.submit(ctx, []byte{'a' + byte(i)}, false, false)
		if err != nil {
			t.Fatal(err)
		}
		calls[i] = c
	}
	a.kick <- struct{}{} // run takes over, as the busy holder would have it
	var idx []uint64
	for i, c := range calls {
		e, err := c.wait(ctx, l.g.closing)
		if err == nil {
			err = e.answer().err
		}
		if err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
		if len(idx) == 0 || idx[len(idx)-1] != e.index {
			idx = append(idx, e.index)
		}
	}
	if got := a.entries.Load() - entries; got != 4 || len(idx) != 4 {
		t.Fatalf("10 queued commands went into %d entries (%d distinct indexes), want 4", got, len(idx))
	}
	if got := a.commands.Load() - commands; got != 10 {
		t.Fatalf("%d commands handed, want 10", got)
	}
	if err := l.d.seqnosInOrder(); err != nil {
		t.Fatal(err)
	}
}
