package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/galenadb/galena/api/galenapb"
)

// Client talks to a Galena cluster. It keeps one gRPC connection per
// endpoint, prefers the endpoint that last answered among those connected,
// fails over to the next one, waits out elections, and tracks the highest
// seqno it has seen so that its transactions never read older state than it
// already observed (session causality).
//
// A Client is safe for concurrent use; its transactions are not.
type Client struct {
	cfg       Config
	lg        *zap.Logger
	endpoints []endpoint

	preferred atomic.Int64  // index into endpoints of the last one that answered
	seen      atomic.Uint64 // highest seqno observed by this session
	closed    atomic.Bool
	done      chan struct{} // closed by Close: wakes calls that wait
	closeOnce sync.Once
	closeErr  error
}

// endpoint is one cluster member and the connection to it.
type endpoint struct {
	addr    string
	conn    *grpc.ClientConn
	kv      *batchKV // Get, Scan and Commit on a Batch stream
	watch   *watchMux
	cluster galenapb.ClusterClient
}

// New validates cfg and returns a Client. It does not wait for the cluster:
// it starts connecting to every endpoint, in the background, so that the
// first call can pick one that is already connected. It fails with an error
// wrapping ErrInvalidArgument when cfg is invalid.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Client{cfg: cfg, lg: cfg.Logger.Named("client"), done: make(chan struct{})}
	opts := dialOptions(cfg)
	for _, addr := range cfg.Endpoints {
		conn, err := grpc.NewClient(addr, opts...)
		if err != nil {
			c.closeConns()
			return nil, fmt.Errorf("%w: endpoint %q: %v", ErrInvalidArgument, addr, err)
		}
		conn.Connect()
		c.endpoints = append(c.endpoints, endpoint{addr: addr, conn: conn,
			kv: newBatchKV(conn, addr, cfg.MaxCallSize), watch: newWatchMux(conn, cfg.WatchTimeout, c.lg),
			cluster: galenapb.NewClusterClient(conn)})
	}
	return c, nil
}

// flowWindow is the flow-control window of each call and connection.
const flowWindow = 1 << 20

// dialOptions are the gRPC options of an endpoint's connection. A connection
// attempt gives up after DialTimeout (MinConnectTimeout), and calls do not
// wait for a connection that failed (no WaitForReady), so an endpoint that
// is unreachable, or accepts connections but never answers, fails a call
// within about DialTimeout and the call moves on.
func dialOptions(cfg Config) []grpc.DialOption {
	bo := backoff.DefaultConfig
	bo.BaseDelay = 100 * time.Millisecond
	bo.MaxDelay = max(cfg.DialTimeout, time.Second)
	return append(connOptions(cfg), grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: cfg.DialTimeout}))
}

// connOptions are the options of every connection, an endpoint's or a
// probe's: TLS, flow control and message sizes.
func connOptions(cfg Config) []grpc.DialOption {
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	return []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		// A fixed window turns off gRPC's bandwidth-estimation pings, which
		// cost a packet each way per burst of small responses.
		grpc.WithInitialWindowSize(flowWindow), grpc.WithInitialConnWindowSize(flowWindow),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(cfg.MaxCallSize),
			grpc.MaxCallSendMsgSize(cfg.MaxCallSize),
		),
	}
}

// Close closes every connection. Calls in flight fail (a commit in flight
// with ErrIndeterminate); later calls fail with ErrClosed. Close is
// idempotent and returns the first error of the first call.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		close(c.done)
		c.closeErr = c.closeConns()
	})
	return c.closeErr
}

func (c *Client) closeConns() error {
	var errs []error
	for _, ep := range c.endpoints {
		ep.watch.close()
		errs = append(errs, ep.conn.Close())
		ep.kv.close()
	}
	return errors.Join(errs...)
}

// Begin starts a read-write transaction. It makes no round trip: the
// snapshot is chosen by the first read. Close the transaction with Commit or
// Rollback. Begin fails only with ErrClosed or the context's error.
func (c *Client) Begin(ctx context.Context, opts ...TxnOption) (*Txn, error) {
	if err := c.check(ctx); err != nil {
		return nil, err
	}
	return c.newTxn(false, opts), nil
}

// Update runs fn in a read-write transaction and commits it. If fn or the
// commit fails with ErrConflict, ErrSnapshotTooOld or ErrOverloaded, it
// waits (a backoff starting at Config.ConflictBackoff) and runs fn again in
// a new transaction, until it succeeds, ctx is done or
// Config.MaxConflictRetries is exceeded; fn must therefore have no effect other than on tx. Any other
// error, notably ErrIndeterminate, is returned at once. fn must not call
// Commit or Rollback.
func (c *Client) Update(ctx context.Context, fn func(tx *Txn) error, opts ...TxnOption) error {
	wait := c.cfg.ConflictBackoff
	for retries := 0; ; retries++ {
		err := c.attempt(ctx, fn, opts)
		if err == nil || !retryable(err) {
			return err
		}
		if limit := c.cfg.MaxConflictRetries; limit > 0 && retries >= limit {
			return fmt.Errorf("client: update gave up after %d retries: %w", retries, err)
		}
		c.lg.Debug("update retry", zap.Int("retries", retries), zap.Duration("backoff", wait), zap.Error(err))
		if werr := c.sleep(ctx, jitter(wait)); werr != nil {
			return fmt.Errorf("client: update gave up after %d retries: %w: %w", retries, werr, err)
		}
		wait = min(2*wait, max(MaxConflictBackoff, c.cfg.ConflictBackoff))
	}
}

// attempt runs fn once in a new transaction and commits it.
func (c *Client) attempt(ctx context.Context, fn func(tx *Txn) error, opts []TxnOption) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	tx := c.newTxn(false, opts)
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	_, err := tx.Commit(ctx)
	return err
}

// retryable reports whether Update may run a transaction again after err.
func retryable(err error) bool {
	if errors.Is(err, ErrIndeterminate) {
		return false
	}
	return errors.Is(err, ErrConflict) || errors.Is(err, ErrSnapshotTooOld) || errors.Is(err, ErrOverloaded)
}

// jitter returns a duration in [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits for d. It returns early with ctx's error when ctx is done,
// and with ErrClosed when the client closes.
func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return ErrClosed
	}
}

// View runs fn in a read-only transaction: Put and Delete return
// ErrReadOnly. It does not retry; it returns fn's error.
func (c *Client) View(ctx context.Context, fn func(tx *Txn) error, opts ...TxnOption) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	tx := c.newTxn(true, opts)
	defer tx.Rollback()
	return fn(tx)
}

// Get reads key in a transaction of its own. It returns ErrNotFound when
// the key is absent.
func (c *Client) Get(ctx context.Context, key []byte, opts ...TxnOption) ([]byte, error) {
	var v []byte
	err := c.View(ctx, func(tx *Txn) error {
		var err error
		v, err = tx.Get(ctx, key)
		return err
	}, opts...)
	return v, err
}

// Put writes key=value through Update (so a conflict is retried).
func (c *Client) Put(ctx context.Context, key, value []byte) error {
	return c.Update(ctx, func(tx *Txn) error { return tx.Put(key, value) })
}

// Delete deletes key through Update. Deleting an absent key is not an error.
func (c *Client) Delete(ctx context.Context, key []byte) error {
	return c.Update(ctx, func(tx *Txn) error { return tx.Delete(key) })
}

// check returns ErrClosed after Close, else ctx's error if it is done.
func (c *Client) check(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

// Seen returns the highest seqno this session has seen: a token another
// Client can take with Observe, so that its reads do not go back behind
// what this one saw. An application that serves a user from several
// regions carries it in the user's session (a cookie, say): the user's
// next request, in another region, then sees the user's own writes.
func (c *Client) Seen() uint64 { return c.seen.Load() }

// Observe raises the session's highest seen seqno to seqno, a token from
// Seen: the session's next transactions read state at least that new,
// waiting, on a member that has not applied it yet, until it has.
func (c *Client) Observe(seqno uint64) { c.observe(seqno) }

// observe raises the session's highest seen seqno to seq.
func (c *Client) observe(seq uint64) {
	for {
		cur := c.seen.Load()
		if seq <= cur || c.seen.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// rpc is one call to one endpoint's KV service.
type rpc func(ctx context.Context, kv galenapb.KVClient) error

// call sends fn, a call of the KV service, to the endpoints as
// callEndpoints does. It returns the index of the endpoint that answered.
func (c *Client) call(ctx context.Context, start int, fn rpc) (int, error) {
	return c.callEndpoints(ctx, start, func(ctx context.Context, ep *endpoint) error { return fn(ctx, ep.kv) })
}

// callEndpoints sends fn to the endpoints in turn, starting at index start
// and trying connected endpoints first (see order), until one answers or
// fails with an error that another endpoint would not fix; while every
// endpoint fails and one of them has no leader, it goes round again (see
// awaitLeader). It returns the index of the endpoint that answered. When
// every endpoint fails the error wraps ErrUnavailable and the most telling
// endpoint error. An error of fn that is not a gRPC status is returned as it
// is, without failing over.
func (c *Client) callEndpoints(ctx context.Context, start int, fn func(ctx context.Context, ep *endpoint) error) (int, error) {
	idx := -1
	err := c.awaitLeader(ctx, func() (err error) {
		idx, err = c.callRound(ctx, start, fn)
		return err
	})
	return idx, err
}

// callRound tries each endpoint once, for callEndpoints.
func (c *Client) callRound(ctx context.Context, start int, fn func(ctx context.Context, ep *endpoint) error) (int, error) {
	var f failures
	for _, idx := range c.order(ctx, start) {
		err := fn(ctx, &c.endpoints[idx])
		if err == nil {
			c.preferred.Store(int64(idx))
			return idx, nil
		}
		if c.closed.Load() {
			return idx, ErrClosed
		}
		if ctx.Err() != nil || !shouldFailover(err) {
			return idx, fromStatus(err)
		}
		c.lg.Debug("endpoint failed", zap.String("endpoint", c.endpoints[idx].addr), zap.Error(err))
		f.add(err)
	}
	return -1, f.mark(c.unavailable(f.last))
}

// unavailable is the error of a call that no endpoint answered.
func (c *Client) unavailable(last error) error {
	cause := fromStatus(last)
	if errors.Is(cause, ErrUnavailable) {
		cause = last // no more precise reason: keep the transport's message
	}
	return fmt.Errorf("%w: no endpoint answered (tried %s): %w", ErrUnavailable, c.addrs(), cause)
}

func (c *Client) addrs() string {
	addrs := make([]string, len(c.endpoints))
	for i, ep := range c.endpoints {
		addrs[i] = ep.addr
	}
	return strings.Join(addrs, ", ")
}

// start returns the endpoint a new transaction tries first.
func (c *Client) start() int { return int(c.preferred.Load()) }
