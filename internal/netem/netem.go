// Package netem makes a connection behave as one across a long link: every
// byte arrives a fixed one-way delay after it was sent, in each direction.
// The demo's geographic mode and tests use it to put members in regions
// without leaving the machine. It imports nothing of the module, so any
// package may use it.
package netem

import (
	"bytes"
	"net"
	"sync"
	"time"
)

const (
	chunkSize = 32 << 10
	// queueLen bounds the chunks in flight one way; a full queue holds the
	// sender back, as a full window would.
	queueLen = 1024
)

// Delay returns a connection that reads and writes through c as if over a
// link with one-way delay out for what is written and in for what is read.
// Writes return once the link has taken the bytes, not once they arrive.
// Closing the returned connection closes c and drops what is in flight;
// c's end, closing, is seen after what it sent before has arrived.
func Delay(c net.Conn, out, in time.Duration) net.Conn {
	near, far := net.Pipe()
	d := &delayed{Conn: near, peer: c, far: far, done: make(chan struct{})}
	d.wg.Add(4)
	go d.carry(far, c, out)
	go d.carry(c, far, in)
	return d
}

// delayed is the application's end of a pipe whose far end is carried to
// and from peer by two queues.
type delayed struct {
	net.Conn // near end of the pipe
	peer     net.Conn
	far      net.Conn
	done     chan struct{} // closed by Close: drop what is in flight
	once     sync.Once
	wg       sync.WaitGroup // the four goroutines
}

func (d *delayed) LocalAddr() net.Addr  { return d.peer.LocalAddr() }
func (d *delayed) RemoteAddr() net.Addr { return d.peer.RemoteAddr() }

// Close closes both ends and returns once every goroutine of the connection
// has ended.
func (d *delayed) Close() error {
	d.once.Do(func() { close(d.done) })
	err := d.Conn.Close()
	d.far.Close()
	d.peer.Close()
	d.wg.Wait()
	return err
}

type chunk struct {
	data []byte
	due  time.Time
}

// carry reads src and has each chunk written to dst delay after it was
// read. When src ends, dst is closed once what was read has been written.
func (d *delayed) carry(src, dst net.Conn, delay time.Duration) {
	defer d.wg.Done()
	q := make(chan chunk, queueLen)
	go d.deliver(q, dst)
	defer close(q)
	buf := make([]byte, chunkSize)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case q <- chunk{data: bytes.Clone(buf[:n]), due: time.Now().Add(delay)}:
			case <-d.done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// deliver writes each chunk of q to dst at its due time, then closes dst.
// Once dst fails it drops the rest, so that carry never waits on it.
func (d *delayed) deliver(q <-chan chunk, dst net.Conn) {
	defer d.wg.Done()
	defer dst.Close()
	timer := time.NewTimer(0)
	defer timer.Stop()
	failed := false
	for c := range q {
		if failed {
			continue
		}
		if wait := time.Until(c.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-d.done:
				return
			}
		}
		if _, err := dst.Write(c.data); err != nil {
			failed = true
			dst.Close() // the other direction ends too
		}
	}
}
