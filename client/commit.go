package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/galenadb/galena/api"
	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/api/writesetpb"
)

// newID returns a fresh random write-set id.
func newID() ([]byte, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("client: write-set id: %w", err)
	}
	return id, nil
}

// commit sends ws to the endpoints in turn, starting at the pinned one (or
// the preferred one; connected endpoints first), until one gives an answer.
// A transport failure moves to the next endpoint with the same write-set id:
// servers treat a repeated id as a no-op that reports the first outcome.
// While every endpoint fails and one of them has no leader, it goes round
// again with the same id until ctx ends (see awaitLeader).
func (c *Client) commit(ctx context.Context, pinned int, ws *writesetpb.WriteSet) (CommitInfo, error) {
	start := pinned
	if start < 0 {
		start = c.start()
	}
	var info CommitInfo
	maybeSent := false // whether any attempt, in any round, may have reached a member
	err := c.awaitLeader(ctx, func() (err error) {
		info, err = c.commitRound(ctx, start, ws, &maybeSent)
		return err
	})
	if errors.Is(err, ErrIndeterminate) {
		c.lg.Warn("commit outcome indeterminate", zap.Binary("id", ws.Id), zap.Error(err))
	}
	return info, err
}

// commitRound sends ws to each endpoint once, for commit. maybeSent carries
// over from earlier rounds: once an attempt may have been applied, a later
// refusal says nothing of it.
func (c *Client) commitRound(ctx context.Context, start int, ws *writesetpb.WriteSet, maybeSent *bool) (CommitInfo, error) {
	var f failures
	for _, idx := range c.order(ctx, start) {
		req := &galenapb.CommitRequest{WriteSet: ws, MinSeqno: c.seen.Load()}
		var p peer.Peer
		resp, err := c.endpoints[idx].kv.Commit(ctx, req, grpc.Peer(&p))
		if err == nil {
			c.preferred.Store(int64(idx))
			return c.outcome(ws, resp)
		}
		if done, derr := c.commitFailed(ctx, ws, *maybeSent || p.Addr != nil, err); done {
			if *maybeSent && !errors.Is(derr, ErrIndeterminate) && status.Code(err) != codes.InvalidArgument {
				// This member refused it, but an earlier attempt may have
				// been applied. Only a refusal of the write-set itself (its
				// keys, sizes or form) holds for every attempt.
				return CommitInfo{}, c.indeterminate(ws, derr)
			}
			return CommitInfo{}, derr
		}
		*maybeSent = *maybeSent || (p.Addr != nil && !refusedUnapplied(err))
		c.lg.Debug("commit: endpoint failed, resending",
			zap.String("endpoint", c.endpoints[idx].addr), zap.Binary("id", ws.Id), zap.Error(err))
		f.add(err)
	}
	if !*maybeSent {
		return CommitInfo{}, f.mark(c.unavailable(f.last))
	}
	return CommitInfo{}, f.mark(c.indeterminate(ws,
		fmt.Errorf("no endpoint answered (tried %s): %w", c.addrs(), f.last)))
}

// commitFailed classifies a failed commit attempt: it returns done=false
// when the write-set should be resent to the next endpoint, else the error
// to return. resent tells whether this or an earlier attempt may have
// reached a member (and so may have been applied).
func (c *Client) commitFailed(ctx context.Context, ws *writesetpb.WriteSet, resent bool, err error) (bool, error) {
	switch code := status.Code(err); {
	case c.closed.Load():
		return true, c.indeterminate(ws, ErrClosed)
	case ctx.Err() != nil:
		return true, c.indeterminate(ws, ctx.Err())
	case shouldFailover(err):
		return false, nil
	case code == codes.DeadlineExceeded || code == codes.Canceled || (resent && !refusedUnapplied(err)):
		// fromStatus turns grpc's own deadline (which may fire before ctx's
		// timer) into the context error, so errors.Is sees it.
		return true, c.indeterminate(ws, fromStatus(err))
	}
	return true, fromStatus(err)
}

// refusedUnapplied reports an answer that says the write-set was not applied:
// a Galena reason (every one is a refusal, except INDETERMINATE), or grpc
// rejecting the request before any handler ran. Anything else that comes
// after the request may have reached a member (an HTTP/2 reset surfacing as
// Internal, say) leaves the outcome open.
func refusedUnapplied(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	if r := reasonOf(st); r != "" {
		return r != api.ReasonIndeterminate
	}
	switch st.Code() {
	case codes.InvalidArgument, codes.ResourceExhausted, codes.Unimplemented, codes.Unauthenticated, codes.PermissionDenied:
		return true
	}
	return false
}

// indeterminate is the error of a commit without an answer. commit logs
// it, once, when it is the final outcome.
func (c *Client) indeterminate(ws *writesetpb.WriteSet, cause error) error {
	if errors.Is(cause, ErrIndeterminate) { // the server said so: don't say it twice
		return fmt.Errorf("write-set %x: %w", ws.Id, cause)
	}
	return fmt.Errorf("%w: write-set %x: %w", ErrIndeterminate, ws.Id, cause)
}

// conflictOf is the error of ws's conflict on key, written at seqno: on a
// key it wrote, else on a key it read, else in a range it scanned
// (certification checks them in that order).
func conflictOf(ws *writesetpb.WriteSet, key []byte, seqno uint64) *ConflictError {
	e := &ConflictError{Key: key, Seqno: seqno}
	if slices.ContainsFunc(ws.GetWrites(), func(w *writesetpb.Write) bool { return bytes.Equal(w.GetKey(), key) }) {
		return e
	}
	e.Read = true
	if slices.ContainsFunc(ws.GetReads(), func(k []byte) bool { return bytes.Equal(k, key) }) {
		return e
	}
	for _, r := range ws.GetScans() {
		if bytes.Compare(key, r.GetStart()) >= 0 && (len(r.GetEnd()) == 0 || bytes.Compare(key, r.GetEnd()) < 0) {
			e.Range = &KeyRange{Start: r.GetStart(), End: r.GetEnd()}
			break
		}
	}
	return e
}

// outcome turns a server's verdict into Commit's result.
func (c *Client) outcome(ws *writesetpb.WriteSet, resp *galenapb.CommitResponse) (CommitInfo, error) {
	c.observe(resp.GetSeqno())
	switch resp.GetOutcome() {
	case galenapb.Outcome_OUTCOME_COMMITTED:
		return CommitInfo{Seqno: resp.GetSeqno()}, nil
	case galenapb.Outcome_OUTCOME_CONFLICT:
		c.observe(resp.GetConflictSeqno())
		return CommitInfo{}, conflictOf(ws, resp.GetConflictKey(), resp.GetConflictSeqno())
	}
	return CommitInfo{}, c.indeterminate(ws, fmt.Errorf("unexpected outcome %v", resp.GetOutcome()))
}
