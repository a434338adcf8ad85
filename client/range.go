package client

import (
	"bytes"
	"context"
	"fmt"
	"iter"
)

// pageSize is how many keys All and DeleteRange read per request.
const pageSize = 1000

// All returns the keys in [start, end) (a nil end: no upper bound) and
// their values, in key order, as the transaction sees them: its snapshot
// merged with its own buffered writes. It reads the members in pages at the
// snapshot as the loop asks for more, so a range of any size takes memory
// for one page; breaking out of the loop stops reading. An error ends the
// sequence, yielded with a zero KV.
//
//	for kv, err := range tx.All(ctx, []byte("user/"), client.PrefixEnd([]byte("user/"))) {
//		if err != nil {
//			return err
//		}
//		...
//	}
//
// In a serializable transaction, the read set covers what the pages read:
// up to the last key of the last page read, or to end.
func (tx *Txn) All(ctx context.Context, start, end []byte) iter.Seq2[KV, error] {
	return func(yield func(KV, error) bool) {
		from := start
		for {
			page, err := tx.Scan(ctx, from, end, pageSize)
			if err != nil {
				yield(KV{}, err)
				return
			}
			for _, kv := range page {
				if !yield(kv, nil) {
					return
				}
			}
			if len(page) < pageSize {
				return
			}
			from = append(bytes.Clone(page[len(page)-1].Key), 0)
		}
	}
}

// Scan reads at most limit keys of [start, end) (0: all; a nil end: no
// upper bound) and their values in a transaction of its own, at one
// snapshot. more reports whether keys remain after the last one returned:
// scan again from just after it (append(lastKey, 0)) for the next page.
func (c *Client) Scan(ctx context.Context, start, end []byte, limit int, opts ...TxnOption) (kvs []KV, more bool, err error) {
	if limit < 0 {
		return nil, false, fmt.Errorf("%w: negative scan limit %d", ErrInvalidArgument, limit)
	}
	err = c.View(ctx, func(tx *Txn) error {
		want := 0
		if limit > 0 {
			want = limit + 1 // one more says whether more remain
		}
		kvs, err = tx.Scan(ctx, start, end, want)
		return err
	}, opts...)
	if err != nil {
		return nil, false, err
	}
	if limit > 0 && len(kvs) > limit {
		return kvs[:limit], true, nil
	}
	return kvs, false, nil
}

// DeleteRange deletes, at commit, every key in [start, end) as the
// transaction sees them, and returns how many that is. It reads the keys
// (in pages, at the snapshot) and buffers a delete of each; the write-set
// also carries the range, whatever the transaction's isolation, so the
// commit fails with ErrConflict if a key in the range was written after the
// snapshot: once it commits, the range holds none of the keys it held. end
// is required (PrefixEnd(prefix) for a prefix); it returns ErrReadOnly
// inside View and ErrInvalidArgument for an empty or reversed range. The
// deletes count against the write-set's size (Config.MaxWriteSetSize).
func (tx *Txn) DeleteRange(ctx context.Context, start, end []byte) (int, error) {
	switch {
	case tx.readOnly:
		return 0, ErrReadOnly
	case len(end) == 0:
		return 0, fmt.Errorf("%w: DeleteRange needs an end key (PrefixEnd(prefix) for a prefix)", ErrInvalidArgument)
	case bytes.Compare(start, end) >= 0:
		return 0, fmt.Errorf("%w: DeleteRange of the empty range [%q, %q)", ErrInvalidArgument, start, end)
	}
	// The keys are deleted once all are read: a read that fails leaves
	// nothing buffered, and the pages do not look through ever more
	// buffered deletes.
	var keys [][]byte
	for kv, err := range tx.All(ctx, start, end) {
		if err != nil {
			return 0, err
		}
		keys = append(keys, kv.Key)
	}
	for _, k := range keys {
		if err := tx.Delete(k); err != nil { // the same checks for every key: fails on the first, if at all
			return 0, err
		}
	}
	tx.addScan(start, end)
	return len(keys), nil
}

// DeleteRange deletes every key in [start, end) in a transaction of its own
// (see Txn.DeleteRange), retried through Update, and returns how many keys
// it deleted.
func (c *Client) DeleteRange(ctx context.Context, start, end []byte) (int, error) {
	return Transact(ctx, c, func(tx *Txn) (int, error) { return tx.DeleteRange(ctx, start, end) })
}

// Transact is Update for a function that returns a value: it returns the
// value of the run that committed (runs that conflicted are discarded), or
// the zero value and Update's error.
//
//	n, err := client.Transact(ctx, c, func(tx *client.Txn) (int, error) {
//		v, err := tx.Get(ctx, []byte("counter"))
//		...
//		return n + 1, tx.Put([]byte("counter"), strconv.AppendInt(nil, int64(n+1), 10))
//	})
func Transact[T any](ctx context.Context, c *Client, fn func(tx *Txn) (T, error), opts ...TxnOption) (T, error) {
	var out T
	err := c.Update(ctx, func(tx *Txn) error {
		v, err := fn(tx)
		out = v
		return err
	}, opts...)
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}
