package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// deadlineCtx is a context that ends with the test, at the latest after d.
func deadlineCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// hungFirstClient returns a client whose first endpoint is a member that
// accepts connections but never answers, with a DialTimeout longer than any
// deadline the test gives its calls, and then addrs.
func hungFirstClient(t *testing.T, addrs ...string) (*Client, *hungListener) {
	hung := newHungListener(t)
	cfg := DefaultConfig()
	cfg.Endpoints = append([]string{hung.addr()}, addrs...)
	cfg.Logger = zaptest.NewLogger(t)
	cfg.DialTimeout = time.Minute
	return newClientCfg(t, cfg), hung
}

// A hung member listed first costs a new client nothing while another
// endpoint connects: calls go to the connected one, although a connection
// attempt to the hung member could last longer than the calls' deadline.
func TestHungEndpointSkipped(t *testing.T) {
	n := newFakeCluster(t, 1)[0]
	c, hung := hungFirstClient(t, n.addr)
	ctx := deadlineCtx(t, 20*time.Second)
	if err := c.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatalf("Put with a hung first endpoint: %v", err)
	}
	if v, err := c.Get(ctx, []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("Get with a hung first endpoint = %q, %v", v, err)
	}
	if _, err := c.Members(ctx); err != nil {
		t.Fatalf("Members with a hung first endpoint: %v", err)
	}
	if hung.accepted() == 0 {
		t.Fatal("the client never connected to the hung endpoint")
	}
	if got := c.start(); got != 1 {
		t.Fatalf("preferred endpoint = %d; want 1 (the live one)", got)
	}
}

// With no endpoint connected, each hung one costs a call about DialTimeout,
// not the call's deadline: the call fails with ErrUnavailable, and a commit
// that reached no member is not indeterminate.
func TestHungEndpointsBoundedByDialTimeout(t *testing.T) {
	a, b := newHungListener(t), newHungListener(t)
	cfg := DefaultConfig()
	cfg.Endpoints = []string{a.addr(), b.addr()}
	cfg.Logger = zaptest.NewLogger(t)
	cfg.DialTimeout = 200 * time.Millisecond
	c := newClientCfg(t, cfg)
	ctx := deadlineCtx(t, 20*time.Second)
	if _, err := c.Get(ctx, []byte("k")); !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
		t.Fatalf("Get = %v (context: %v); want ErrUnavailable before the deadline", err, ctx.Err())
	}
	err := c.Put(ctx, []byte("k"), []byte("v"))
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrIndeterminate) || ctx.Err() != nil {
		t.Fatalf("Put = %v (context: %v); want ErrUnavailable only, before the deadline", err, ctx.Err())
	}
}
