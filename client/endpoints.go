package client

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/connectivity"
)

// How a call chooses its endpoints, and how it waits out an election.
const (
	// leaderBackoff is the first pause before a call goes round the
	// endpoints again after they all failed and one had no leader; it
	// doubles, with jitter, up to maxLeaderBackoff.
	leaderBackoff    = 50 * time.Millisecond
	maxLeaderBackoff = time.Second
	// settlePoll is how often settle looks at the connections.
	settlePoll = 5 * time.Millisecond
)

// order returns the indexes of the endpoints in the order one round of a
// call tries them: round the list from start, those whose connection is
// ready first. When none is ready it first settles, so that a call does not
// queue behind a member that accepts connections but never answers while
// another one connects at once. An endpoint tried while not ready costs at
// most about DialTimeout: its connection attempt is bounded by it.
func (c *Client) order(ctx context.Context, start int) []int {
	n := len(c.endpoints)
	if n == 1 {
		return []int{0}
	}
	c.settle(ctx)
	ready, rest := make([]int, 0, n), make([]int, 0, n)
	for i := range n {
		idx := (start + i) % n
		if c.endpoints[idx].conn.GetState() == connectivity.Ready {
			ready = append(ready, idx)
		} else {
			rest = append(rest, idx)
		}
	}
	return append(ready, rest...)
}

// settle waits until some endpoint's connection is ready or none is still
// connecting, at most DialTimeout, or until ctx ends or the client closes.
func (c *Client) settle(ctx context.Context) {
	if c.settled() {
		return
	}
	limit := time.NewTimer(c.cfg.DialTimeout)
	defer limit.Stop()
	poll := time.NewTicker(settlePoll)
	defer poll.Stop()
	for !c.settled() {
		select {
		case <-ctx.Done():
			return
		case <-c.done:
			return
		case <-limit.C:
			return
		case <-poll.C:
		}
	}
}

// settled reports whether some connection is ready or none is connecting.
// It wakes idle connections (gRPC idles a connection after long disuse).
func (c *Client) settled() bool {
	connecting := false
	for _, ep := range c.endpoints {
		switch ep.conn.GetState() {
		case connectivity.Ready:
			return true
		case connectivity.Idle:
			ep.conn.Connect()
			connecting = true
		case connectivity.Connecting:
			connecting = true
		}
	}
	return !connecting
}

// noLeader is the error of a round in which no endpoint took the call and
// at least one refused for want of a leader: a later round may find the
// next one.
type noLeader struct{ err error }

func (e noLeader) Error() string { return e.err.Error() }

// awaitLeader runs round, and runs it again after a jittered pause
// (leaderBackoff, doubling up to maxLeaderBackoff) for as long as it fails
// with noLeader, until ctx ends; it then returns the last round's error. A
// client of a single endpoint does not wait: that member has already waited
// its own not-primary timeout for a leader, and its refusal tells the
// caller that it is cut off.
func (c *Client) awaitLeader(ctx context.Context, round func() error) error {
	wait := leaderBackoff
	for rounds := 1; ; rounds++ {
		err := round()
		var nl noLeader
		if !errors.As(err, &nl) {
			return err
		}
		if len(c.endpoints) == 1 {
			return nl.err
		}
		c.lg.Debug("no leader: trying the endpoints again", zap.Int("rounds", rounds), zap.Duration("backoff", wait), zap.Error(nl.err))
		// After Close, the next round fails as any call in flight does.
		if err := c.sleep(ctx, jitter(wait)); err != nil && !errors.Is(err, ErrClosed) {
			return nl.err
		}
		wait = min(2*wait, maxLeaderBackoff)
	}
}

// failures gathers the failed attempts of one round.
type failures struct {
	last     error // the most telling: a refusal for want of a leader outranks a transport error
	noLeader bool  // some endpoint refused for want of a leader
}

func (f *failures) add(err error) {
	switch {
	case leaderless(err):
		f.last, f.noLeader = err, true
	case !f.noLeader:
		f.last = err
	}
}

// mark returns err, the round's error, as a noLeader when an endpoint
// refused for want of a leader.
func (f *failures) mark(err error) error {
	if f.noLeader {
		return noLeader{err}
	}
	return err
}
