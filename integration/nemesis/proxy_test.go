package nemesis

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/galenadb/galena/integration/harness"
)

// The proxies on their own, against echo servers (no galena process, so
// this runs under -short too): blocked links carry nothing, connections
// that lost bytes are severed at Heal or after SeverAfter, delays add up per
// direction, and Close leaves no goroutine behind.
func TestNetBlocksDelaysAndHeals(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	a, b := startEcho(t), startEcho(t)
	defer a.close()
	defer b.close()
	const sever = 300 * time.Millisecond
	nw, err := newNet([]string{a.addr(), b.addr()}, sever)
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()

	c := dialProxy(t, nw, 0, 1)
	if err := echoes(c, "hello", time.Second); err != nil {
		t.Fatalf("through a healthy link: %v", err)
	}
	if s := nw.Stats(0, 1); s.Conns != 1 || s.Bytes != 5 || s.Delayed != 0 { // counted before sent on
		t.Errorf("link 0→1 after one echo: %+v", s)
	}

	nw.block(0, 1)
	if err := echoes(c, "lost", 200*time.Millisecond); err == nil {
		t.Fatal("an echo crossed a blocked link")
	}
	waitDropped(t, nw, 0, 1, 4)
	nw.Heal()
	if err := closedSoon(c, proxyWait); err != nil {
		t.Errorf("a connection that lost bytes after Heal: %v", err)
	}

	c = dialProxy(t, nw, 0, 1)
	nw.oneWay(1, 0) // the request gets there, the echo does not
	if err := echoes(c, "half", 200*time.Millisecond); err == nil {
		t.Fatal("an echo crossed a link blocked one way")
	}
	waitDropped(t, nw, 1, 0, 4)
	if err := closedSoon(c, sever+proxyWait); err != nil {
		t.Errorf("a connection that lost bytes, after SeverAfter: %v", err)
	}
	nw.Heal()

	nw.block(0, 1)
	c = dialProxy(t, nw, 0, 1) // accepted, but never reaches b
	if err := echoes(c, "void", 200*time.Millisecond); err == nil {
		t.Fatal("a connection opened on a blocked link carried an echo")
	}
	nw.Heal()
	if err := closedSoon(c, proxyWait); err != nil {
		t.Errorf("a connection opened on a blocked link, after Heal: %v", err)
	}

	// A round trip over the delayed links takes at least 2×delay; once
	// healed, one that took as long would still be delayed.
	const delay = time.Second
	nw.Delay(0, 1, delay)
	nw.Delay(1, 0, delay)
	c = dialProxy(t, nw, 0, 1)
	began := time.Now()
	if err := echoes(c, "slow", 2*delay+proxyWait); err != nil {
		t.Fatalf("through delayed links: %v", err)
	}
	if rtt := time.Since(began); rtt < 2*delay {
		t.Errorf("round trip over links delayed %v each way took %v", delay, rtt)
	}
	if s, r := nw.Stats(0, 1), nw.Stats(1, 0); s.Delayed != 4 || r.Delayed != 4 {
		t.Errorf("links delayed %d and %d bytes, want 4 each way", s.Delayed, r.Delayed)
	}
	nw.Heal()
	began = time.Now()
	if err := echoes(c, "fast", 2*delay); err != nil {
		t.Errorf("after Heal: %v after %v, want a round trip shorter than the %v of the delayed links", err, time.Since(began), 2*delay)
	}
	if s := nw.Stats(0, 1); s.Delayed != 4 || s.Bytes != 5+4+4+4 { // hello, half, slow, fast
		t.Errorf("link 0→1 after an echo without delay: %+v", s)
	}

	// A base delay stays through Heal; a delay put on top of it goes.
	nw.BaseDelay(0, 1, delay)
	nw.Delay(0, 1, 3*delay)
	nw.Heal()
	if l := nw.get(0, 1); l.delay != delay {
		t.Errorf("link 0→1 after Heal is delayed %v, want its base delay %v", l.delay, delay)
	}
	began = time.Now()
	if err := echoes(c, "base", delay+proxyWait); err != nil {
		t.Fatalf("through a link with a base delay: %v", err)
	}
	if rtt := time.Since(began); rtt < delay {
		t.Errorf("round trip over a link with a base delay of %v, healed, took %v", delay, rtt)
	}
	c.Close()
}

// proxyWait bounds what the proxies must do at once (count dropped bytes,
// sever a connection), generously for a busy machine.
const proxyWait = 10 * time.Second

// waitDropped waits until the link from → to has dropped n bytes in all.
func waitDropped(t *testing.T, nw *Net, from, to int, n int64) {
	t.Helper()
	if err := harness.WaitFor(proxyWait, func() error {
		if s := nw.Stats(from, to); s.Dropped != n {
			return fmt.Errorf("link %d→%d dropped %d bytes, want %d", from, to, s.Dropped, n)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

// Isolate, Split and Bridge block exactly the links they describe.
func TestNetPartitionShapes(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	addr, err := harness.ClosedAddr()
	if err != nil {
		t.Fatal(err)
	}
	nw, err := newNet([]string{addr, addr, addr, addr, addr}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	cases := []struct {
		name  string
		apply func()
		cut   [][2]int // unordered pairs blocked both ways
	}{
		{"isolate 2", func() { nw.Isolate(2) }, [][2]int{{2, 0}, {2, 1}, {2, 3}, {2, 4}}},
		{"split 0,1 | 2,3,4", func() { nw.split([]int{0, 1}, []int{2, 3, 4}) },
			[][2]int{{0, 2}, {0, 3}, {0, 4}, {1, 2}, {1, 3}, {1, 4}}},
		{"bridge 0-1-2", func() { nw.bridge(0, 1, 2) }, [][2]int{{0, 2}}},
		{"bridge 3-0-4-1", func() { nw.bridge(3, 0, 4, 1) }, [][2]int{{3, 4}, {3, 1}, {0, 1}}},
	}
	for _, tc := range cases {
		nw.Heal()
		tc.apply()
		for from := range 5 {
			for to := range 5 {
				if from == to {
					continue
				}
				want := slices.Contains(tc.cut, [2]int{from, to}) || slices.Contains(tc.cut, [2]int{to, from})
				if got := nw.blocked(from, to); got != want {
					t.Errorf("%s: %d→%d blocked=%v, want %v (%v)", tc.name, from, to, got, want, nw)
				}
			}
		}
	}
}

// dialProxy connects to the proxy member from uses to reach member to.
func dialProxy(t *testing.T, nw *Net, from, to int) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", nw.proxyAddr(from, to), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// echoes writes msg on c and reads it back within d.
func echoes(c net.Conn, msg string, d time.Duration) error {
	c.SetDeadline(time.Now().Add(d))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("echo garbled: " + string(buf))
	}
	return nil
}

// closedSoon waits up to d for the other side to close c.
func closedSoon(c net.Conn, d time.Duration) error {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errors.New("still open")
	}
	if err == nil {
		return errors.New("read a byte")
	}
	return nil
}

// echo is a TCP echo server on loopback.
type echo struct {
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

func startEcho(t *testing.T) *echo {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{ln: ln}
	e.wg.Go(e.serve)
	return e
}

func (e *echo) addr() string { return e.ln.Addr().String() }

func (e *echo) serve() {
	for {
		c, err := e.ln.Accept()
		if err != nil {
			return
		}
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			c.Close()
			return
		}
		e.conns = append(e.conns, c)
		e.mu.Unlock()
		e.wg.Go(func() {
			defer c.Close()
			io.Copy(c, c)
		})
	}
}

// close stops the server and returns once its goroutines have exited.
func (e *echo) close() {
	e.ln.Close()
	e.mu.Lock()
	e.closed = true
	for _, c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}
