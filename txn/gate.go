package txn

import (
	"context"
	"fmt"
	"sync"
)

// gate is a member's admission control for commits: it bounds the commits
// in flight, by count and by the bytes of their write-sets, and, once
// draining, refuses new ones while those in flight finish.
type gate struct {
	mu              sync.Mutex
	n, max          int
	bytes, maxBytes int
	closing         bool
	idle            chan struct{} // closed once closing and n is 0
}

func newGate(max, maxBytes int) *gate {
	return &gate{max: max, maxBytes: maxBytes, idle: make(chan struct{})}
}

// enter admits a commit of a write-set of size bytes, or refuses it at
// once: ErrShuttingDown once the gate drains, ErrOverloaded at either bound.
// A commit is admitted whatever its size when none is in flight, so no
// write-set is refused for its size alone. An admitted commit must leave
// with the same size.
func (g *gate) enter(size int) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.closing:
		return fmt.Errorf("%w: refusing new commits", ErrShuttingDown)
	case g.n >= g.max:
		return fmt.Errorf("%w (limit %d commits); retry after a backoff", ErrOverloaded, g.max)
	case g.n > 0 && g.bytes+size > g.maxBytes:
		return fmt.Errorf("%w (limit %d bytes of write-sets); retry after a backoff", ErrOverloaded, g.maxBytes)
	}
	g.n++
	g.bytes += size
	return nil
}

func (g *gate) leave(size int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	g.bytes -= size
	if g.closing && g.n == 0 {
		close(g.idle)
	}
}

// inflight is the number of commits admitted and not yet answered.
func (g *gate) inflight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

// inflightBytes is the size of the write-sets of the commits in flight.
func (g *gate) inflightBytes() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.bytes
}

// draining reports whether drain has begun.
func (g *gate) draining() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closing
}

// drain refuses every later commit and waits until those in flight have
// left, or ctx ends. It may be called more than once.
func (g *gate) drain(ctx context.Context) error {
	g.mu.Lock()
	if !g.closing {
		g.closing = true
		if g.n == 0 {
			close(g.idle)
		}
	}
	g.mu.Unlock()
	select {
	case <-g.idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
