package groupcomm

import (
	"encoding/binary"
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
// matcher can tell them apart from the node's other traffic. With TLS, the
// node's listener makes the handshake before cmux reads anything, so the
// byte is the first of the plaintext.
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

// After the prefix byte, a connection carries the dialling member's 8-byte
// cluster id (big-endian); the accepting member closes a connection from
// another cluster.
const handshakeLen = 1 + 8

// streamLayer is raft's view of the node's listener: connections that began
// with prefixRaft, and a Dial that writes the handshake.
type streamLayer struct {
	addr    net.Addr
	cluster uint64
	dial    func(addr string, timeout time.Duration) (net.Conn, error)
	conns   chan net.Conn
	closing chan struct{}
	once    sync.Once

	mu   sync.Mutex
	open map[*trackedConn]struct{} // accepted connections raft still holds
}

func newStreamLayer(addr net.Addr, cluster uint64, dial func(string, time.Duration) (net.Conn, error)) *streamLayer {
	return &streamLayer{addr: addr, cluster: cluster, dial: dial, conns: make(chan net.Conn), closing: make(chan struct{}),
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
	return dialPrefixed(s.dial, string(addr), timeout, prefixRaft, s.cluster)
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

func dialPrefixed(dial func(string, time.Duration) (net.Conn, error), addr string, timeout time.Duration, prefix byte, cluster uint64) (net.Conn, error) {
	c, err := dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	var hs [handshakeLen]byte
	hs[0] = prefix
	binary.BigEndian.PutUint64(hs[1:], cluster)
	c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write(hs[:]); err != nil {
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
	if g.cfg.Authorize != nil {
		if err := g.cfg.Authorize(c); err != nil {
			g.lg.Warn("refused a connection from a non-member", zap.String("from", c.RemoteAddr().String()), zap.Error(err))
			c.Close()
			return
		}
	}
	var b [handshakeLen]byte
	c.SetReadDeadline(time.Now().Add(g.cfg.DialTimeout))
	if _, err := io.ReadFull(c, b[:]); err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	if id := binary.BigEndian.Uint64(b[1:]); id != g.cfg.ClusterID {
		g.lg.Warn("refused a connection from a member of another cluster",
			zap.String("from", c.RemoteAddr().String()),
			zap.String("their_cluster", FormatClusterID(id)), zap.String("our_cluster", FormatClusterID(g.cfg.ClusterID)))
		c.Close()
		return
	}
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
