package groupcomm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// Group commit: the leader puts the commands queued together, its own and
// forwarded ones, into one Raft entry, so Raft's per-entry cost (its
// dispatch, encoding, log framing and futures) is paid once per batch.
//
// One goroutine at a time hands entries to Raft (see appender). Raft takes
// the next only when its leader loop is free (BatchApplyCh is off), so
// commands queue here while it stores and sends the previous one, and the
// next entry carries all of them. Nothing waits on a timer: a lone command
// goes into the log at once, as an entry of its own.
//
// An entry that carries several commands is marked by batchExtension in the
// Raft log's Extensions; its Data is each command as a uvarint length and
// the bytes. An entry without the mark is one command, as before group
// commit, so logs written earlier read the same.
var batchExtension = []byte{1}

// errMalformedBatch stops the apply loop: a committed entry that does not
// decode is corruption.
var errMalformedBatch = errors.New("groupcomm: malformed batched entry")

// encodeBatch is the data of the batch entry that carries cmds, in a new
// buffer (Raft keeps the entry).
func encodeBatch(cmds []*appendCall) []byte {
	n := 0
	for _, c := range cmds {
		n += binary.MaxVarintLen64 + len(c.data)
	}
	b := make([]byte, 0, n)
	for _, c := range cmds {
		b = binary.AppendUvarint(b, uint64(len(c.data)))
		b = append(b, c.data...)
	}
	return b
}

// decodeBatch calls fn with each command of a batch entry, in order. The
// slices alias b. A batch holds at least two commands, none of them empty.
func decodeBatch(b []byte, fn func(cmd []byte)) error {
	n := 0
	for len(b) > 0 {
		l, k := binary.Uvarint(b)
		if k <= 0 || l == 0 || l > uint64(len(b)-k) {
			return fmt.Errorf("%w: command %d", errMalformedBatch, n)
		}
		fn(b[k : k+int(l)])
		b = b[k+int(l):]
		n++
	}
	if n < 2 {
		return fmt.Errorf("%w: %d commands", errMalformedBatch, n)
	}
	return nil
}

// commands calls fn with each command a Raft command entry carries.
func commands(l *raft.Log, fn func(cmd []byte)) error {
	if len(l.Extensions) == 0 {
		fn(l.Data)
		return nil
	}
	if string(l.Extensions) != string(batchExtension) {
		return fmt.Errorf("%w: unknown extension %x", errMalformedBatch, l.Extensions)
	}
	return decodeBatch(l.Data, fn)
}

// appender is the leader's group commit. Commands queue in q, and one
// goroutine at a time (busy) hands them to Raft. A command that finds
// nobody handing goes to Raft on its caller's goroutine at once, as an
// entry of its own: a lone command pays no goroutine switch. If more queued
// meanwhile, run takes over and hands entries until the queue is empty.
type appender struct {
	g      *Group
	max    int
	maxLen int
	kick   chan struct{} // wakes run to hand what is queued

	entries, commands atomic.Uint64 // handed to Raft so far

	mu   sync.Mutex
	q    []*appendCall // commands waiting for an entry
	busy bool          // a goroutine is handing entries to Raft

	// forwarded holds the entries handed to Raft that carry a forwarded
	// command and have not yet committed, by their Data's first byte (see
	// committedEntry).
	fmu       sync.Mutex
	forwarded map[*byte]*appended
	nfwd      atomic.Int64 // len(forwarded), read without fmu
}

// appendCall is one command on its way into the log.
type appendCall struct {
	data      []byte
	forwarded bool           // from a follower; data is groupcomm's own buffer
	entry     chan *appended // the entry that carries it, once handed to Raft
}

// appended is one entry handed to Raft. Its commands' callers all wait for
// Raft's answer; the first to ask reads the entry's index and term from it
// and the others share them.
//
// An entry that carries a forwarded command is also told when it commits,
// before this member applies it: the follower that forwarded the command
// needs only to know it committed, and then applies it itself (see
// forwardedAppend).
type appended struct {
	f     *future
	once  sync.Once
	err   error
	index uint64
	term  uint64 // the entry's term (the FSM's response), for commit notices

	// For an entry with a forwarded command: committed is closed once the
	// entry has reached the FSM, with at its index and term; answered is
	// closed once answer has run.
	committed chan struct{}
	at        struct{ index, term uint64 }
	answered  chan struct{}
}

// answer waits for Raft's answer for the entry: committed and applied
// here, or failed (see futures for a Raft that shuts down meanwhile).
func (e *appended) answer() *appended {
	e.once.Do(func() {
		if e.err = e.f.Error(); e.err == nil {
			f := e.f.apply()
			e.index = f.Index()
			if t, ok := f.Response().(*uint64); ok {
				e.term = *t
			}
		}
		if e.answered != nil {
			close(e.answered)
		}
	})
	return e
}

func newAppender(g *Group) *appender {
	return &appender{g: g, max: g.cfg.MaxBatch, maxLen: g.cfg.MaxBatchBytes, kick: make(chan struct{}, 1),
		forwarded: make(map[*byte]*appended)}
}

// submit queues data for the log, and, if nobody else is handing entries,
// hands it to Raft itself, or with queueOnly leaves that to run. A caller
// that must not wait for Raft (the leader's reader of a forwarding stream,
// with more requests to read) queues only. It fails, with nothing queued,
// when ctx has ended or the group is closing. forwarded says data came
// from a follower, in a buffer groupcomm owns.
func (a *appender) submit(ctx context.Context, data []byte, forwarded, queueOnly bool) (*appendCall, error) {
	select {
	case <-a.g.closing:
		return nil, ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("groupcomm: not sent: %w", err)
	}
	c := &appendCall{data: data, forwarded: forwarded, entry: make(chan *appended, 1)}
	a.mu.Lock()
	a.q = append(a.q, c)
	if a.busy {
		a.mu.Unlock()
		return c, nil
	}
	a.busy = true
	a.mu.Unlock()
	if queueOnly {
		a.kick <- struct{}{}
		return c, nil
	}
	a.hand(false)
	a.mu.Lock()
	if len(a.q) == 0 {
		a.busy = false
	} else {
		a.kick <- struct{}{} // busy stays set: run takes over; only a busy holder sends
	}
	a.mu.Unlock()
	return c, nil
}

// run hands the queued commands to Raft whenever a caller leaves some,
// until the group closes.
func (a *appender) run() {
	for {
		select {
		case <-a.kick:
		case <-a.g.closing:
			return
		}
		for more := true; more; {
			a.hand(true)
			select {
			case <-a.g.closing:
				return // what is left was never sent: its callers stop on closing
			default:
			}
			a.mu.Lock()
			more = len(a.q) > 0
			a.busy = more
			a.mu.Unlock()
		}
	}
}

// hand takes the next entry's commands from the queue, as many as the
// bounds allow, and hands the entry to Raft. Raft takes it only when its
// leader loop is free, so commands queue meanwhile. While flow control
// holds commits back, it waits for it with wait, else leaves the queue to
// run. The caller is busy.
func (a *appender) hand(wait bool) {
	if wait {
		a.g.fc.wait(a.g.closing)
		select {
		case <-a.g.closing:
			return // its callers stop on closing; held ones were never sent
		default:
		}
	} else if a.g.fc.paused() {
		return
	}
	a.mu.Lock()
	if len(a.q) == 0 {
		a.mu.Unlock()
		return // withdrawn while flow control held it
	}
	k, n := 0, 0
	for ; k < len(a.q) && k < a.max; k++ {
		if k > 0 && n+len(a.q[k].data) > a.maxLen {
			break
		}
		n += len(a.q[k].data)
	}
	batch := a.q[:k:k]
	if a.q = a.q[k:]; len(a.q) == 0 {
		a.q = nil
	}
	a.mu.Unlock()
	l := raft.Log{Data: batch[0].data}
	if len(batch) > 1 {
		l = raft.Log{Data: encodeBatch(batch), Extensions: batchExtension}
	}
	e := &appended{}
	watch := slices.ContainsFunc(batch, func(c *appendCall) bool { return c.forwarded })
	if watch {
		e.committed, e.answered = make(chan struct{}), make(chan struct{})
		a.watch(l.Data, e) // before Raft can commit it
	}
	e.f = a.g.futures.ask(func() raft.Future { return a.g.raft.ApplyLog(l, 0) })
	if watch && !a.g.goTracked(func() { e.answer(); a.take(l.Data, e) }) {
		a.take(l.Data, e) // closing: its waiters stop on the group's closing
	}
	a.entries.Add(1)
	a.commands.Add(uint64(len(batch)))
	for _, c := range batch {
		c.entry <- e
	}
}

// withdraw takes c out of the queue if it is still there, which makes its
// command never sent, and reports whether it did.
func (a *appender) withdraw(c *appendCall) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := slices.Index(a.q, c)
	if i < 0 {
		return false
	}
	a.q = slices.Delete(a.q, i, i+1)
	return true
}

// An entry's Data is the key that finds it again when it reaches the FSM:
// on the leader, Raft hands the FSM the very slice it was given. The key is
// unique while the entry is watched, because the data of an entry with a
// forwarded command is groupcomm's own buffer (the forward's, or the
// batch's), which the map keeps alive. Should Raft ever copy the data, the
// entry is simply not found and its waiters take Raft's answer instead.
func (a *appender) watch(data []byte, e *appended) {
	a.fmu.Lock()
	a.forwarded[&data[0]] = e
	a.nfwd.Store(int64(len(a.forwarded)))
	a.fmu.Unlock()
}

// take stops watching the entry whose data is data and returns it, if it is
// e or e is nil; else it returns nil.
func (a *appender) take(data []byte, e *appended) *appended {
	a.fmu.Lock()
	defer a.fmu.Unlock()
	w := a.forwarded[&data[0]]
	if w == nil || (e != nil && w != e) {
		return nil
	}
	delete(a.forwarded, &data[0])
	a.nfwd.Store(int64(len(a.forwarded)))
	return w
}

// committedEntry tells the waiters of a watched entry that it committed,
// at l's index and term. The FSM calls it for each command entry it is
// given, before it applies them.
func (a *appender) committedEntry(l *raft.Log) {
	if a.nfwd.Load() == 0 || len(l.Data) == 0 {
		return
	}
	if e := a.take(l.Data, nil); e != nil {
		e.at.index, e.at.term = l.Index, l.Term
		close(e.committed)
	}
}

// wait returns the entry that carries c once it has been handed to Raft.
// An error means c may or may not be ordered. Once c is in an entry, its
// caller waits for Raft's answer whatever ctx says, as a caller of
// raft.Apply does.
func (c *appendCall) wait(ctx context.Context, closing <-chan struct{}) (*appended, error) {
	select {
	case e := <-c.entry:
		return e, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrIndeterminate, ctx.Err())
	case <-closing:
		return nil, fmt.Errorf("%w: %v", ErrIndeterminate, ErrClosed)
	}
}
