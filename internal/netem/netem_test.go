package netem

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echo serves one connection on a loopback listener, writing back what it
// reads, and returns the listener's address.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func dial(t *testing.T, out, in time.Duration) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", echo(t))
	if err != nil {
		t.Fatal(err)
	}
	return Delay(c, out, in)
}

// A round trip takes at least both delays, and bytes arrive whole and in
// order.
func TestDelayRoundTrip(t *testing.T) {
	const out, in = 30 * time.Millisecond, 20 * time.Millisecond
	c := dial(t, out, in)
	defer c.Close()
	msg := bytes.Repeat([]byte("galena"), 20000) // several chunks
	start := time.Now()
	go c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < out+in {
		t.Errorf("round trip took %v, want at least %v", took, out+in)
	}
	if !bytes.Equal(got, msg) {
		t.Error("bytes changed on the way")
	}
	if c.RemoteAddr().Network() != "tcp" {
		t.Errorf("RemoteAddr %v, want the carried connection's", c.RemoteAddr())
	}
}

// The far end closing is seen after what it sent has arrived; Close ends
// every goroutine (TestMain checks).
func TestDelayClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		s, err := ln.Accept()
		if err != nil {
			return
		}
		s.Write([]byte("bye"))
		s.Close()
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := Delay(raw, time.Millisecond, 20*time.Millisecond)
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "bye" {
		t.Errorf("read %q, %v; want \"bye\" then EOF", got, err)
	}
	c.Close()
	c.Close() // idempotent
}

// Close drops what is in flight at once, however long its delay.
func TestDelayCloseInFlight(t *testing.T) {
	c := dial(t, time.Hour, time.Hour)
	if _, err := c.Write([]byte("never arrives")); err != nil {
		t.Fatal(err)
	}
	c.Close() // would wait an hour if it delivered first; TestMain checks the goroutines
	if _, err := c.Write([]byte("x")); err == nil {
		t.Error("write after Close succeeded")
	}
}
