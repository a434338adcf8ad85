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
	// startGrace is how long settle waits for the endpoint a call starts
	// at before it takes any other that is ready: a new client (each
	// command of the CLI is one) goes to the first endpoint listed when it
	// is up, so that it reads what the previous command wrote there.
	startGrace = 200 * time.Millisecond
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
	c.settle(ctx, start)
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

// settle waits until the connection of the endpoint at start is ready or
// has failed, for at most startGrace; then until some endpoint's connection
// is ready or none is still connecting. It waits DialTimeout in all at
// most, and stops when ctx ends or the client closes.
func (c *Client) settle(ctx context.Context, start int) {
	if c.settled(start, true) {
		return
	}
	limit := time.NewTimer(c.cfg.DialTimeout)
	defer limit.Stop()
	grace := time.NewTimer(min(startGrace, c.cfg.DialTimeout))
	defer grace.Stop()
	poll := time.NewTicker(settlePoll)
	defer poll.Stop()
	for first := true; !c.settled(start, first); {
		select {
		case <-ctx.Done():
			return
		case <-c.done:
			return
		case <-limit.C:
			return
		case <-grace.C:
			first = false
		case <-poll.C:
		}
	}
}

// settled reports whether the connection to the endpoint at start is
// ready or has failed (with first set), or else whether some connection is
// ready or none is connecting. It wakes idle connections (gRPC idles a
// connection after long disuse).
func (c *Client) settled(start int, first bool) bool {
	if first {
		conn := c.endpoints[start].conn
		switch conn.GetState() {
		case connectivity.Ready:
			return true
		case connectivity.Idle:
			conn.Connect()
			return false
		case connectivity.Connecting:
			return false
		}
		// It failed: any ready one will do.
	}
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
// with noLeader, until ctx ends; it then returns the last round's error,
// or the refusal of the round before when ctx ended during the last one
// (unless its outcome is indeterminate). With Config.NoLeaderWait it runs
// round once.
func (c *Client) awaitLeader(ctx context.Context, round func() error) error {
	wait := leaderBackoff
	var refused error // the last round's refusal for want of a leader
	for rounds := 1; ; rounds++ {
		err := round()
		var nl noLeader
		if !errors.As(err, &nl) {
			if refused != nil && cutShort(ctx, err) && !errors.Is(err, ErrIndeterminate) {
				return refused // the deadline cut this round short: the refusals before say why
			}
			return err
		}
		refused = nl.err
		if c.cfg.NoLeaderWait {
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

// cutShort reports whether err ended a call because ctx ended (gRPC's own
// timer for the deadline may fire before ctx says it is done).
func cutShort(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
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
