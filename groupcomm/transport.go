package groupcomm

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// The first byte of every groupcomm connection says what it carries. Neither
// byte can start an HTTP/1, HTTP/2 (gRPC) or TLS connection, so a cmux
// matcher can tell them apart from the node's other traffic.
const (
	prefixRaft    byte = 0xA1
	prefixForward byte = 0xA2
)

// Match reports whether a connection's first bytes belong to groupcomm. Use it
// as a cmux matcher for the listener given to New.
func Match(r io.Reader) bool {
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return false
	}
	return b[0] == prefixRaft || b[0] == prefixForward
}

// streamLayer is raft's view of the node's listener: connections that began
// with prefixRaft, and a Dial that writes the prefix.
type streamLayer struct {
	addr    net.Addr
	dial    func(addr string, timeout time.Duration) (net.Conn, error)
	conns   chan net.Conn
	closing chan struct{}
	once    sync.Once

	mu   sync.Mutex
	open map[*trackedConn]struct{} // accepted connections raft still holds
}

func newStreamLayer(addr net.Addr, dial func(string, time.Duration) (net.Conn, error)) *streamLayer {
	return &streamLayer{addr: addr, dial: dial, conns: make(chan net.Conn), closing: make(chan struct{}),
		open: make(map[*trackedConn]struct{})}
}

func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.closing:
		return nil, net.ErrClosed
	}
}

// Close stops Accept and closes every accepted connection, which raft's
// transport does not do itself: its handlers would block in Read forever.
func (s *streamLayer) Close() error {
	s.once.Do(func() { close(s.closing) })
	s.mu.Lock()
	open := s.open
	s.open = nil
	s.mu.Unlock()
	for c := range open {
		c.Conn.Close()
	}
	return nil
}

func (s *streamLayer) Addr() net.Addr { return s.addr }

func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return dialPrefixed(s.dial, string(addr), timeout, prefixRaft)
}

// hand passes an accepted raft connection to raft, or closes it if raft is
// gone.
func (s *streamLayer) hand(nc net.Conn) {
	c := &trackedConn{Conn: nc, s: s}
	s.mu.Lock()
	if s.open == nil {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.open[c] = struct{}{}
	s.mu.Unlock()
	select {
	case s.conns <- c:
	case <-s.closing:
		c.Close()
	}
}

// trackedConn leaves the stream layer's set when raft closes it.
type trackedConn struct {
	net.Conn
	s *streamLayer
}

func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.open, c)
	c.s.mu.Unlock()
	return c.Conn.Close()
}

func dialPrefixed(dial func(string, time.Duration) (net.Conn, error), addr string, timeout time.Duration, prefix byte) (net.Conn, error) {
	c, err := dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{prefix}); err != nil {
		c.Close()
		return nil, err
	}
	c.SetWriteDeadline(time.Time{})
	return c, nil
}

func tcpDial(addr string, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, timeout)
}

// serve accepts groupcomm connections and routes each by its first byte.
func (g *Group) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				select {
				case <-g.closing:
				default:
					g.lg.Debug("groupcomm listener stopped", zap.Error(err))
				}
			}
			return
		}
		g.route(c)
	}
}

func (g *Group) route(c net.Conn) {
	var b [1]byte
	c.SetReadDeadline(time.Now().Add(g.cfg.DialTimeout))
	if _, err := io.ReadFull(c, b[:]); err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	switch b[0] {
	case prefixRaft:
		g.stream.hand(c)
	case prefixForward:
		if !g.goTracked(func() { g.serveForward(c) }) {
			c.Close()
		}
	default:
		c.Close()
	}
}
