package workload

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/galenadb/galena/client"
)

// contentsTimeout bounds Contents.
const contentsTimeout = 30 * time.Second

// Contents reads every key under prefix ("" for every key) and its value
// from the member at endpoint, in key order, through a client bound to that
// member alone: a new session, so it reads whatever the member has applied.
// It gives up after 30s. tlsCfg, if set, is the client's TLS.
func Contents(ctx context.Context, endpoint, prefix string, tlsCfg *tls.Config) ([]client.KV, error) {
	cl, err := client.New(client.Config{Endpoints: []string{endpoint}, DialTimeout: runDialTimeout, TLS: tlsCfg})
	if err != nil {
		return nil, fmt.Errorf("workload: contents of %s: %w", endpoint, err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, contentsTimeout)
	defer cancel()
	var kvs []client.KV
	err = cl.View(ctx, func(tx *client.Txn) (err error) {
		kvs, err = tx.Scan(ctx, []byte(prefix), client.PrefixEnd([]byte(prefix)), 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("workload: contents of %s: %w", endpoint, err)
	}
	return kvs, nil
}

// DiffContents describes how b differs from a (both in key order, as
// Contents returns them), or returns "" when they are equal. It lists at
// most a few differences.
func DiffContents(a, b []client.KV) string {
	const most = 10
	var diffs []string
	add := func(format string, args ...any) {
		if len(diffs) < most {
			diffs = append(diffs, fmt.Sprintf(format, args...))
		}
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		cmp := 0
		switch {
		case i == len(a):
			cmp = 1
		case j == len(b):
			cmp = -1
		default:
			cmp = bytes.Compare(a[i].Key, b[j].Key)
		}
		switch {
		case cmp < 0:
			add("- %q=%q", a[i].Key, a[i].Value)
			i++
		case cmp > 0:
			add("+ %q=%q", b[j].Key, b[j].Value)
			j++
		default:
			if !bytes.Equal(a[i].Value, b[j].Value) {
				add("~ %q: %q -> %q", a[i].Key, a[i].Value, b[j].Value)
			}
			i++
			j++
		}
	}
	if len(diffs) == 0 {
		return ""
	}
	return fmt.Sprintf("%d keys vs %d keys: %s", len(a), len(b), strings.Join(diffs, "; "))
}

// MissingWrites checks kvs (as Contents returns them) against want, a model
// of acknowledged writes: every key of want must hold its value, and a key
// mapped to nil must be absent. It returns what does not match, or "".
func MissingWrites(kvs []client.KV, want map[string][]byte) string {
	have := make(map[string][]byte, len(kvs))
	for _, kv := range kvs {
		have[string(kv.Key)] = kv.Value
	}
	var bad []string
	for k, v := range want {
		got, ok := have[k]
		switch {
		case v == nil && ok:
			bad = append(bad, fmt.Sprintf("%q deleted but holds %q", k, got))
		case v != nil && !ok:
			bad = append(bad, fmt.Sprintf("%q missing, want %q", k, v))
		case v != nil && !bytes.Equal(got, v):
			bad = append(bad, fmt.Sprintf("%q holds %q, want %q", k, got, v))
		}
	}
	if len(bad) == 0 {
		return ""
	}
	slices.Sort(bad)
	return fmt.Sprintf("%d acknowledged writes not reflected: %s", len(bad), strings.Join(bad[:min(len(bad), 10)], "; "))
}

// compareContents compares the contents of every member that was read
// (contents[i] is nil for a member that was not) with those of the first
// one read, id naming the members. It returns how many members it
// compared, how many keys the first holds, and how the others differ from
// it ("" when they are identical).
func compareContents(id func(int) string, contents [][]client.KV) (members, keys int, diff string) {
	ref := -1
	var diffs []string
	for i, kvs := range contents {
		if kvs == nil {
			continue
		}
		members++
		if ref < 0 {
			ref, keys = i, len(kvs)
			continue
		}
		if d := DiffContents(contents[ref], kvs); d != "" {
			diffs = append(diffs, fmt.Sprintf("%s vs %s: %s", id(ref), id(i), d))
		}
	}
	return members, keys, strings.Join(diffs, "; ")
}
