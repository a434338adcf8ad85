package client

import (
	"context"
	"time"

	"google.golang.org/grpc/connectivity"
)

// settlePoll is how often settle looks at the connections.
const settlePoll = 5 * time.Millisecond

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
