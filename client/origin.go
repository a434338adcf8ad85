package client

import (
	"context"

	"github.com/galenadb/galena/api/galenapb"
)

// origin is the origin of a write-set that read nothing: the highest seqno
// the session has seen, below any seqno the write-set can be ordered at.
// Members refuse the write-set once the cluster is a certification window
// past it, which makes a resend safe at any age. A session that has seen
// nothing yet asks a member for its applied seqno first.
func (c *Client) origin(ctx context.Context) (uint64, error) {
	if s := c.seen.Load(); s > 0 {
		return s, nil
	}
	if err := c.learnSeqno(ctx); err != nil {
		return 0, err
	}
	return c.seen.Load(), nil
}

// learnSeqno raises the session's highest seen seqno to a member's applied
// seqno (at least 1: a cluster's first entry, its configuration, is seqno 1,
// so every write-set is ordered after it).
func (c *Client) learnSeqno(ctx context.Context) error {
	var resp *galenapb.StatusResponse
	_, err := c.call(ctx, c.start(), func(ctx context.Context, kv galenapb.KVClient) (err error) {
		resp, err = kv.Status(ctx, &galenapb.StatusRequest{})
		return err
	})
	if err != nil {
		return err
	}
	c.observe(max(resp.GetAppliedSeqno(), 1))
	return nil
}
