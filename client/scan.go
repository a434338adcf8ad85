package client

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/galenadb/galena/api/galenapb"
)

// PrefixEnd returns the end of the key range that holds every key
// starting with prefix: Scan(ctx, prefix, PrefixEnd(prefix), 0) reads them
// all. It is nil, no upper bound, when no key comes after them (prefix is
// empty or all 0xff bytes).
func PrefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Scan returns the keys in [start, end) and their values, in key order, as
// the transaction sees them: the snapshot merged with its own buffered puts
// and deletes. A nil (or empty) end means no upper bound; limit 0 means no
// limit. It follows the server's paging at the same snapshot. Errors are
// those of Get, plus ErrInvalidArgument for a negative limit.
func (tx *Txn) Scan(ctx context.Context, start, end []byte, limit int) ([]KV, error) {
	if err := tx.checkState(ctx); err != nil {
		return nil, err
	}
	if limit < 0 {
		return nil, fmt.Errorf("%w: negative scan limit %d", ErrInvalidArgument, limit)
	}
	if len(end) > 0 && bytes.Compare(start, end) >= 0 {
		return nil, nil
	}
	local, deletes := tx.buffered(start, end)
	want := 0
	if limit > 0 {
		// Each buffered delete may hide one server key: ask for that many more.
		want = limit + deletes
	}
	remote, truncated, err := tx.scanServer(ctx, start, end, want)
	if err != nil {
		return nil, err
	}
	out := merge(remote, local, truncated, limit)
	tx.noteScan(start, end, out, limit)
	return out, nil
}

// localWrite is a buffered write with its key, for merging.
type localWrite struct {
	key []byte
	write
}

// buffered returns the buffered writes in [start, end) in key order and how
// many of them are deletes.
func (tx *Txn) buffered(start, end []byte) ([]localWrite, int) {
	var out []localWrite
	deletes := 0
	s, e := string(start), string(end) // compared without a copy per write
	for k, w := range tx.writes {
		if k < s || (e != "" && k >= e) {
			continue
		}
		if w.del {
			deletes++
		}
		out = append(out, localWrite{key: []byte(k), write: w})
	}
	slices.SortFunc(out, func(a, b localWrite) int { return bytes.Compare(a.key, b.key) })
	return out, deletes
}

// scanServer reads up to want keys (0: all) of [start, end) from the server,
// continuing after the last key while the server reports more. truncated
// tells that it stopped at want, so keys may exist after the last one.
func (tx *Txn) scanServer(ctx context.Context, start, end []byte, want int) (kvs []*galenapb.KeyValue, truncated bool, err error) {
	from := start
	for {
		req := &galenapb.ScanRequest{Start: from, End: end}
		if want > 0 {
			req.Limit = uint32(min(uint64(want-len(kvs)), math.MaxUint32))
		}
		tx.stamp(&req.Snapshot, &req.MinSeqno, &req.Linearizable, &req.AllowStale)
		var resp *galenapb.ScanResponse
		err := tx.read(ctx, func(ctx context.Context, kv galenapb.KVClient) (err error) {
			resp, err = kv.Scan(ctx, req)
			return err
		})
		if err != nil {
			return nil, false, err
		}
		tx.pin(resp.GetSnapshot())
		kvs = append(kvs, resp.GetKvs()...)
		switch {
		case want > 0 && len(kvs) >= want:
			return kvs[:want], true, nil
		case !resp.GetMore():
			return kvs, false, nil
		case len(resp.GetKvs()) == 0:
			return nil, false, fmt.Errorf("client: scan: server reported more after an empty page")
		}
		from = append(bytes.Clone(kvs[len(kvs)-1].GetKey()), 0)
	}
}

// merge combines server results and buffered writes, both in key order; a
// buffered write replaces (or, if a delete, hides) the server's key. When
// remote was truncated, buffered writes after its last key are left out:
// unread server keys might precede them. Enough remain to fill limit, since
// remote holds limit keys more than the buffered deletes can hide.
func merge(remote []*galenapb.KeyValue, local []localWrite, truncated bool, limit int) []KV {
	var bound []byte
	if truncated && len(remote) > 0 {
		bound = remote[len(remote)-1].GetKey()
	}
	out := []KV{}
	i, j := 0, 0
	for limit == 0 || len(out) < limit {
		hasR := i < len(remote)
		hasL := j < len(local) && (bound == nil || bytes.Compare(local[j].key, bound) <= 0)
		if !hasR && !hasL {
			break
		}
		cmp := -1
		if !hasR {
			cmp = 1
		} else if hasL {
			cmp = bytes.Compare(remote[i].GetKey(), local[j].key)
		}
		if cmp < 0 {
			out = append(out, KV{Key: remote[i].GetKey(), Value: nonNil(remote[i].GetValue())})
			i++
			continue
		}
		if cmp == 0 {
			i++ // replaced or hidden by the buffered write
		}
		if !local[j].del {
			out = append(out, KV{Key: bytes.Clone(local[j].key), Value: bytes.Clone(nonNil(local[j].value))})
		}
		j++
	}
	return out
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
