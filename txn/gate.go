package txn

import (
	"context"
	"fmt"
	"sync"
)

// gate is a member's admission control for commits: it bounds the commits
// in flight and, once draining, refuses new ones while those in flight
// finish.
type gate struct {
	mu      sync.Mutex
	n, max  int
	closing bool
	idle    chan struct{} // closed once closing and n is 0
}

func newGate(max int) *gate { return &gate{max: max, idle: make(chan struct{})} }

// enter admits a commit, or refuses it at once: ErrShuttingDown once the
// gate drains, ErrOverloaded at the bound. An admitted commit must leave.
func (g *gate) enter() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.closing:
		return fmt.Errorf("%w: refusing new commits", ErrShuttingDown)
	case g.n >= g.max:
		return fmt.Errorf("%w (limit %d); retry after a backoff", ErrOverloaded, g.max)
	}
	g.n++
	return nil
}

func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
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
