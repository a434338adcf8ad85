package groupcomm

import (
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// Commit notices. A member applies an entry once it knows the entry
// committed, and raft tells a follower the leader's commit index only with
// the next AppendEntries, which, when no entry follows, leaves after
// CommitTimeout (randomised up to twice that). A commit through a follower
// would wait that long for its own entry.
//
// A follower that forwarded an entry learns sooner: the leader answers the
// forward once the entry has committed, with the entry's term. The follower
// then sends its own Raft the AppendEntries the leader would send next: no
// entries, PrevLogEntry the entry's index and term, LeaderCommitIndex that
// index, in the follower's current term and naming its current leader.
// Raft checks it like any other: it applies through the index only if its
// log holds that very entry, which (Log Matching) means its log agrees with
// the leader's through it, all committed; otherwise it refuses and takes
// no commit index from it, and the next append brings the commit index as
// before. So a notice never commits what is not committed: at worst it is
// refused, like a delayed request of the leader's.
//
// The request reaches Raft on the channel the transport hands it every
// other request on (noticeTransport), so Raft handles it in order with the
// leader's.
type notifier struct {
	g    *Group
	rpcs chan raft.RPC // what Raft consumes: the network's requests and the notices

	mu    sync.Mutex
	index uint64 // highest forwarded entry heard committed and not yet applied here
	term  uint64 // its term

	// stored is the last index the log store took, which raft records as
	// its last index only after the store returns.
	stored atomic.Uint64

	wake chan struct{} // capacity 1: a pending wake-up
}

func newNotifier(g *Group) *notifier {
	return &notifier{g: g, rpcs: make(chan raft.RPC), wake: make(chan struct{}, 1)}
}

// noticeTransport is the transport Raft sees: it consumes the network's
// requests and this member's commit notices from one channel.
type noticeTransport struct {
	boundedTransport
	rpcs <-chan raft.RPC
}

// raft enables pre-vote and closes the transport on shutdown only for a
// transport that has those methods; the wrapper keeps them.
var (
	_ raft.WithPreVote = noticeTransport{}
	_ raft.WithClose   = noticeTransport{}
)

// Consumer implements raft.Transport.
func (t noticeTransport) Consumer() <-chan raft.RPC { return t.rpcs }

// relay passes the network's requests on to Raft until the Group closes.
func (n *notifier) relay() {
	in := n.g.trans.Consumer()
	for {
		select {
		case rpc := <-in:
			select {
			case n.rpcs <- rpc:
			case <-n.g.closing:
				return
			}
		case <-n.g.closing:
			return
		}
	}
}

// heard records that the entry at index, of term, committed.
func (n *notifier) heard(index, term uint64) {
	n.mu.Lock()
	if index > n.index {
		n.index, n.term = index, term
	}
	n.mu.Unlock()
	n.poke()
}

// storedThrough records that the log store holds entries through index.
func (n *notifier) storedThrough(index uint64) {
	n.stored.Store(index)
	n.poke()
}

func (n *notifier) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// run sends notices until the Group closes.
func (n *notifier) run() {
	for {
		select {
		case <-n.g.closing:
			return
		case <-n.wake:
		}
		if index, term, ok := n.due(); ok {
			n.send(index, term)
		}
	}
}

// due returns the notice to send: for an entry this member has stored but
// not yet seen committed. A notice raft has overtaken is dropped.
func (n *notifier) due() (index, term uint64, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.index == 0 {
		return 0, 0, false
	}
	if n.g.raft.CommitIndex() >= n.index {
		n.index, n.term = 0, 0
		return 0, 0, false
	}
	if max(n.g.raft.LastIndex(), n.stored.Load()) < n.index {
		return 0, 0, false // not here yet: storedThrough wakes us
	}
	index, term = n.index, n.term
	n.index, n.term = 0, 0
	return index, term, true
}

// send hands this member's Raft the notice that the entry at index, of
// term, committed.
func (n *notifier) send(index, term uint64) {
	r := n.g.raft
	cur := r.CurrentTerm()
	addr, id := r.LeaderWithID()
	switch {
	case r.State() != raft.Follower || addr == "":
		return // no leader to speak for
	case term > cur:
		return // this member cannot hold the entry yet: it has not heard of its term
	case r.CurrentTerm() != cur:
		return // an election began while we looked
	}
	req := &raft.AppendEntriesRequest{
		RPCHeader:         raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: n.g.trans.EncodePeer(id, addr)},
		Term:              cur,
		PrevLogEntry:      index,
		PrevLogTerm:       term,
		LeaderCommitIndex: index,
	}
	done := make(chan raft.RPCResponse, 1)
	select {
	case n.rpcs <- raft.RPC{Command: req, RespChan: done}:
	case <-n.g.closing:
		return
	}
	select {
	case <-done: // one notice at a time
	case <-n.g.closing:
	}
}
