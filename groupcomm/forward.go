package groupcomm

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// Forwarding: a follower sends entries to the leader over one long-lived
// connection per leader, pipelined (many requests in flight) and batched (the
// writer flushes once per burst). The leader answers each with the entry's
// index once it is committed, in request order, and each read index as
// soon as it is known, whatever entries are still to be answered (flow
// control may hold them): the follower matches answers by id.
//
//	request:  id uint64 | len uint32 | data
//	response: id uint64 | index uint64 | code uint8 | len uint32 | message
//
// The message of a committed entry's answer is the entry's term (8 bytes,
// or empty from a leader that does not send it), from which the follower
// sends itself a commit notice (see notifier). A request with no data asks
// for a read index instead: the leader's last log index, answered once the
// leader has confirmed it still leads.
const (
	fwdOK            byte = 0 // committed at index
	fwdNotLeader     byte = 1 // never appended: ask the current leader
	fwdIndeterminate byte = 2 // may or may not be committed
)

// maxForwardFrame bounds one forwarded entry.
const maxForwardFrame = 256 << 20

type fwdReq struct {
	id   uint64
	data []byte
}

type fwdResp struct {
	index uint64
	err   error
}

// forwarder owns the follower side: at most one live connection per leader
// address.
type forwarder struct {
	g      *Group
	mu     sync.Mutex
	conns  map[string]*fwdConn
	closed bool
}

func newForwarder(g *Group) *forwarder {
	return &forwarder{g: g, conns: make(map[string]*fwdConn)}
}

// forward sends data to the leader at addr and waits for its index.
func (f *forwarder) forward(ctx context.Context, addr string, data []byte) (uint64, error) {
	c, err := f.conn(addr)
	if err != nil {
		f.g.lg.Debug("cannot reach leader", zap.String("leader", addr), zap.Error(err))
		return 0, ErrNotLeader // nothing was sent
	}
	return c.call(ctx, data)
}

// conn returns the stream to addr, dialing it if there is none. It does not
// hold f.mu while dialing, so Close is never stuck behind a slow dial.
func (f *forwarder) conn(addr string) (*fwdConn, error) {
	if c, err := f.existing(addr); c != nil || err != nil {
		return c, err
	}
	nc, err := dialPrefixed(f.g.cfg.Dial, addr, f.g.cfg.DialTimeout, prefixForward, f.g.cfg.ClusterID)
	if err != nil {
		return nil, err
	}
	c := &fwdConn{
		f: f, addr: addr, nc: nc,
		pending: make(map[uint64]chan fwdResp),
		sendq:   make(chan fwdReq, 1024),
		done:    make(chan struct{}),
	}
	f.mu.Lock()
	if other, err := f.existingLocked(addr); other != nil || err != nil {
		f.mu.Unlock()
		nc.Close() // lost a race with another dial, or closing
		return other, err
	}
	f.conns[addr] = c
	f.mu.Unlock()
	if !f.g.goTracked(c.writeLoop) || !f.g.goTracked(c.readLoop) || !f.g.goTracked(c.watchLoop) {
		c.fail(ErrClosed)
		return nil, ErrClosed
	}
	return c, nil
}

func (f *forwarder) existing(addr string) (*fwdConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.existingLocked(addr)
}

func (f *forwarder) existingLocked(addr string) (*fwdConn, error) {
	if f.closed {
		return nil, ErrClosed
	}
	return f.conns[addr], nil
}

func (f *forwarder) drop(c *fwdConn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns[c.addr] == c {
		delete(f.conns, c.addr)
	}
}

func (f *forwarder) close() {
	f.mu.Lock()
	f.closed = true
	conns := make([]*fwdConn, 0, len(f.conns))
	for _, c := range f.conns {
		conns = append(conns, c)
	}
	f.mu.Unlock()
	for _, c := range conns {
		c.fail(ErrClosed)
	}
}

// fwdConn is one follower→leader stream.
type fwdConn struct {
	f    *forwarder
	addr string
	nc   net.Conn

	mu      sync.Mutex
	pending map[uint64]chan fwdResp
	next    uint64
	err     error

	sendq    chan fwdReq
	done     chan struct{}
	failOnce sync.Once
}

func (c *fwdConn) call(ctx context.Context, data []byte) (uint64, error) {
	ch := make(chan fwdResp, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return 0, ErrNotLeader
	}
	c.next++
	id := c.next
	c.pending[id] = ch
	c.mu.Unlock()
	select {
	case c.sendq <- fwdReq{id: id, data: data}:
	case <-c.done:
		if c.forget(id) {
			return 0, ErrNotLeader
		}
	case <-ctx.Done():
		if c.forget(id) {
			return 0, fmt.Errorf("groupcomm: not sent: %w", ctx.Err())
		}
	}
	select {
	case r := <-ch:
		return r.index, r.err
	case <-ctx.Done():
		c.forget(id)
		return 0, fmt.Errorf("%w: %v", ErrIndeterminate, ctx.Err())
	}
}

// forget removes a pending request; false if a response already claimed it.
func (c *fwdConn) forget(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pending[id]
	delete(c.pending, id)
	return ok
}

func (c *fwdConn) resolve(id uint64, r fwdResp) {
	c.mu.Lock()
	ch, ok := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if ok {
		ch <- r
	}
}

// fail closes the stream; every request still pending may have been sent.
func (c *fwdConn) fail(err error) {
	c.failOnce.Do(func() {
		c.f.drop(c)
		close(c.done)
		c.nc.Close()
		c.mu.Lock()
		c.err = err
		pending := c.pending
		c.pending = nil
		c.mu.Unlock()
		for _, ch := range pending {
			ch <- fwdResp{err: fmt.Errorf("%w: stream to leader %s broke: %v", ErrIndeterminate, c.addr, err)}
		}
	})
}

func (c *fwdConn) writeLoop() {
	w := bufio.NewWriterSize(c.nc, 64<<10)
	var hdr [12]byte
	for {
		var r fwdReq
		select {
		case r = <-c.sendq:
		case <-c.done:
			return
		}
		for {
			binary.BigEndian.PutUint64(hdr[:8], r.id)
			binary.BigEndian.PutUint32(hdr[8:], uint32(len(r.data)))
			w.Write(hdr[:])
			w.Write(r.data)
			if len(c.sendq) == 0 {
				break
			}
			r = <-c.sendq
		}
		if err := w.Flush(); err != nil {
			c.fail(err)
			return
		}
	}
}

// watchLoop closes the stream once this member has stopped following its
// peer for an election timeout: the leader changed, or this member is cut
// off. Requests still pending then end as indeterminate at once, instead of
// waiting out their deadlines on a connection nothing will answer.
func (c *fwdConn) watchLoop() {
	g := c.f.g
	t := time.NewTicker(g.cfg.HeartbeatTimeout / 4)
	defer t.Stop()
	var away time.Time // when the leader was first seen to be someone else
	for {
		select {
		case <-c.done:
			return
		case now := <-t.C:
			addr, _ := g.raft.LeaderWithID()
			switch {
			case string(addr) == c.addr:
				away = time.Time{}
			case away.IsZero():
				away = now
			case now.Sub(away) >= g.cfg.ElectionTimeout:
				c.fail(fmt.Errorf("no longer following %s (leader now %q)", c.addr, addr))
				return
			}
		}
	}
}

func (c *fwdConn) readLoop() {
	r := bufio.NewReaderSize(c.nc, 16<<10)
	var hdr [21]byte
	var msg []byte // reused: a message is read whole before the next
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			c.fail(err)
			return
		}
		id := binary.BigEndian.Uint64(hdr[:8])
		resp := fwdResp{index: binary.BigEndian.Uint64(hdr[8:16])}
		n := int(binary.BigEndian.Uint32(hdr[17:21]))
		msg = slices.Grow(msg[:0], n)[:n]
		if _, err := io.ReadFull(r, msg); err != nil {
			c.fail(err)
			return
		}
		switch hdr[16] {
		case fwdOK:
			if len(msg) == 8 {
				c.f.g.notes.heard(resp.index, binary.BigEndian.Uint64(msg))
			}
		case fwdNotLeader:
			resp.err = ErrNotLeader
		default:
			resp.err = fmt.Errorf("%w: leader %s: %s", ErrIndeterminate, c.addr, msg)
		}
		c.resolve(id, resp)
	}
}

// serveForward is the leader side of one follower's stream.
func (g *Group) serveForward(nc net.Conn) {
	stop := context.AfterFunc(g.ctx, func() { nc.Close() })
	defer stop()
	defer nc.Close()
	// More than a follower's commits in flight (txn's default 1024), so
	// that entries held by flow control do not stop the reader before the
	// read requests behind them.
	q, reads := make(chan raftCall, 4096), make(chan raftCall, 1024)
	w := &fwdWriter{nc: nc, w: bufio.NewWriterSize(nc, 16<<10)}
	if !g.goTracked(func() { w.respond(q) }) {
		return
	}
	defer close(q)
	if !g.goTracked(func() { w.respond(reads) }) {
		return
	}
	defer close(reads)
	r := bufio.NewReaderSize(nc, 64<<10)
	var hdr [12]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[8:])
		if n > maxForwardFrame {
			g.lg.Warn("forwarded entry too large; closing stream", zap.Uint32("bytes", n))
			return
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			return
		}
		call := raftCall{id: binary.BigEndian.Uint64(hdr[:8])}
		var refuse error
		if n > 0 && g.cfg.Admit != nil {
			refuse = g.cfg.Admit(data)
		}
		switch {
		case g.raft.State() != raft.Leader:
		case n == 0:
			call.f = g.readIndexFuture()
			reads <- call
			continue
		case refuse != nil:
			g.lg.Warn("refused a forwarded entry", zap.String("from", nc.RemoteAddr().String()), zap.Error(refuse))
			call.f = refused{}
		default:
			c, err := g.app.submit(g.ctx, data, true, r.Buffered() > 0)
			if err != nil {
				return // closing: the follower sees the stream break
			}
			call.f = forwardedAppend{c, g.closing}
		}
		q <- call
	}
}

type raftCall struct {
	id uint64
	f  forwardResult // nil: not the leader, never appended
}

// forwardResult is what the responder waits on: an append or a read index.
type forwardResult interface {
	// wait returns the index and, for an append, the entry's term once
	// known, or the error Raft gave. It calls idle first if it has to
	// wait for them.
	wait(idle func()) (index, term uint64, err error)
}

// refused answers a forwarded entry the leader would not append: the
// follower admitted it, so the members disagree on what is admissible; the
// follower gets "never appended" and, after retrying, ErrNotPrimary.
type refused struct{}

func (refused) wait(func()) (uint64, uint64, error) { return 0, 0, raft.ErrNotLeader }

// forwardedAppend is a forwarded entry in the leader's group commit. The
// follower is answered as soon as the entry commits, not once the leader
// has applied it: the follower applies it itself, and a commit through a
// follower would otherwise wait for both members' applies, one after the
// other.
type forwardedAppend struct {
	c       *appendCall
	closing <-chan struct{}
}

func (a forwardedAppend) wait(idle func()) (uint64, uint64, error) {
	var e *appended
	select {
	case e = <-a.c.entry:
	default:
		idle() // not yet in an entry: flow control may hold it
		var err error
		if e, err = a.c.wait(context.Background(), a.closing); err != nil {
			return 0, 0, err
		}
	}
	select {
	case <-e.committed:
	case <-e.answered:
	default:
		idle()
	}
	select {
	case <-e.committed:
		return e.at.index, e.at.term, nil
	case <-e.answered: // failed, or answered before the FSM saw it
		if e.err != nil {
			return 0, 0, e.err
		}
		return e.index, e.term, nil
	case <-a.closing:
		return 0, 0, fmt.Errorf("%w: %v", ErrIndeterminate, ErrClosed)
	}
}

// fwdWriter writes the answers of one stream, from two responders: one
// for the entries, one for the read indexes.
type fwdWriter struct {
	nc net.Conn
	mu sync.Mutex
	w  *bufio.Writer
}

// flush sends what is buffered; a failure closes the connection, which the
// reader sees and stops on (the responders keep draining their queues).
func (fw *fwdWriter) flush() {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.w.Buffered() > 0 {
		if err := fw.w.Flush(); err != nil {
			fw.nc.Close()
		}
	}
}

// respond answers the calls of q in order as each is known. It flushes
// once q is empty, and before it waits for a call that is not answered
// yet, so that no answer waits in the buffer for a later one.
func (fw *fwdWriter) respond(q <-chan raftCall) {
	var hdr [21]byte
	var term [8]byte
	flush := fw.flush
	for call := range q {
		code, idx, msg := fwdNotLeader, uint64(0), []byte(nil)
		if call.f != nil {
			i, t, err := call.f.wait(flush)
			switch {
			case err == nil:
				code, idx = fwdOK, i
				if t > 0 {
					binary.BigEndian.PutUint64(term[:], t)
					msg = term[:]
				}
			case errors.Is(translateApplyErr(err), ErrNotLeader), errors.Is(err, errNotAsked):
				// never appended: the follower asks the next leader
			default:
				code, msg = fwdIndeterminate, []byte(err.Error())
			}
		}
		binary.BigEndian.PutUint64(hdr[:8], call.id)
		binary.BigEndian.PutUint64(hdr[8:16], idx)
		hdr[16] = code
		binary.BigEndian.PutUint32(hdr[17:], uint32(len(msg)))
		fw.mu.Lock()
		fw.w.Write(hdr[:])
		fw.w.Write(msg)
		fw.mu.Unlock()
		if len(q) == 0 {
			fw.flush()
		}
	}
}
