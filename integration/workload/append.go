package workload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/checker"
)

// appendWorkload runs Elle-style list-append transactions: each is 1 to
// MaxMops micro-ops on a few keys, an append (a read-modify-write of the
// key's list inside the transaction: Get, add a value never appended
// before, Put) or a read (Get, parse the list). Lists are stored as
// comma-separated decimal ints. Each transaction is one Begin/Commit, not
// Update, so a conflict is recorded as a fail rather than retried, and is
// Linearizable, so the check may assume real-time order (RealTime).
//
// As in Jepsen, a key that was chosen for MaxAppendsPerKey appends is
// retired and replaced by a fresh one, so lists stay short and the checker
// fast however long the run.
type appendWorkload struct {
	// Keys is the number of keys in use at once; default 5.
	Keys int
	// MaxMops is the most micro-ops in one transaction; default 4.
	MaxMops int
	// MaxAppendsPerKey is how many appends a key is chosen for before it is
	// retired; default 128.
	MaxAppendsPerKey int
	// Plain drops client.Linearizable: transactions then see at least what
	// their own session saw, and the check drops RealTime.
	Plain bool
	// Serializable runs every transaction with client.Serializable, and the
	// check forbids G2 cycles too (AppendConfig.Serializable).
	Serializable bool

	next atomic.Int64 // the last value appended, over every key

	mu      sync.Mutex
	active  []int       // the keys in use
	appends map[int]int // key -> appends it was chosen for
	newest  int         // the highest key so far
}

const appendPrefix = "append/"

func (w *appendWorkload) defaults() {
	if w.Keys == 0 {
		w.Keys = 5
	}
	if w.MaxMops == 0 {
		w.MaxMops = 4
	}
	if w.MaxAppendsPerKey == 0 {
		w.MaxAppendsPerKey = 128
	}
}

// pick chooses a key for a micro-op, retiring a key once it was chosen for
// MaxAppendsPerKey appends.
func (w *appendWorkload) pick(rng *rand.Rand, appending bool) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.active == nil {
		w.appends = map[int]int{}
		for k := range w.Keys {
			w.active = append(w.active, k)
		}
		w.newest = w.Keys - 1
	}
	i := rng.IntN(len(w.active))
	k := w.active[i]
	if appending {
		w.appends[k]++
		if w.appends[k] >= w.MaxAppendsPerKey {
			w.newest++
			w.active[i] = w.newest
		}
	}
	return strconv.Itoa(k)
}

// AppendSerializable names the list-append workload whose transactions
// are serializable.
const AppendSerializable = "append-ser"

// Name implements workload.
func (w *appendWorkload) Name() string {
	if w.Serializable {
		return AppendSerializable
	}
	return checker.WorkloadAppend
}

func appendKey(k string) []byte { return []byte(appendPrefix + k) }

// Setup implements workload; the lists start absent (empty).
func (w *appendWorkload) Setup(context.Context, *client.Client) error { w.defaults(); return nil }

func (w *appendWorkload) txnOpts() []client.TxnOption {
	var opts []client.TxnOption
	if !w.Plain {
		opts = append(opts, client.Linearizable())
	}
	if w.Serializable {
		opts = append(opts, client.Serializable())
	}
	return opts
}

// Step implements Workload: one transaction of random micro-ops.
func (w *appendWorkload) Step(ctx context.Context, cl *client.Client, rng *rand.Rand) checker.Op {
	w.defaults()
	op := &checker.TxnOp{}
	for range 1 + rng.IntN(w.MaxMops) {
		m := checker.MicroOp{F: checker.MopRead}
		if rng.IntN(2) == 0 {
			m.F, m.Value = checker.MopAppend, int(w.next.Add(1))
		}
		m.Key = w.pick(rng, m.F == checker.MopAppend)
		op.Mops = append(op.Mops, m)
	}
	tx, err := cl.Begin(ctx, w.txnOpts()...)
	if err != nil {
		return outcome(op, notApplied(err), false)
	}
	defer tx.Rollback()
	writes := false
	for i := range op.Mops {
		m := &op.Mops[i]
		list, err := readList(ctx, tx, m.Key)
		if err != nil {
			return outcome(op, notApplied(err), false)
		}
		if m.F == checker.MopRead {
			m.List = list
			continue
		}
		writes = true
		if err := tx.Put(appendKey(m.Key), encodeList(append(list, m.Value))); err != nil {
			return outcome(op, notApplied(err), false)
		}
	}
	_, err = tx.Commit(ctx)
	if err != nil {
		clearReads(op)
	}
	return outcome(op, err, !writes)
}

// clearReads drops the results of a transaction that did not complete ok:
// the checker ignores them, and they would only confuse a reader.
func clearReads(op *checker.TxnOp) {
	for i := range op.Mops {
		op.Mops[i].List = nil
	}
}

// readList reads and parses key's list; absent is empty (nil).
func readList(ctx context.Context, tx *client.Txn, key string) ([]int, error) {
	v, err := tx.Get(ctx, appendKey(key))
	switch {
	case errNotFound(err):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return decodeList(v)
}

func encodeList(l []int) []byte {
	parts := make([]string, len(l))
	for i, v := range l {
		parts[i] = strconv.Itoa(v)
	}
	return []byte(strings.Join(parts, ","))
}

func decodeList(b []byte) ([]int, error) {
	if len(b) == 0 {
		return nil, nil
	}
	parts := strings.Split(string(b), ",")
	l := make([]int, len(parts))
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("append: list %q: %w", b, err)
		}
		l[i] = v
	}
	return l, nil
}

// Final implements Workload: one transaction reading every key ever
// appended to (a scan of the workload's prefix) on s's member.
func (w *appendWorkload) Final(ctx context.Context, s *session) ([]checker.Op, error) {
	w.defaults()
	op := s.Do(func() checker.Op {
		read := &checker.TxnOp{}
		err := s.Client.View(ctx, func(tx *client.Txn) error {
			kvs, err := tx.Scan(ctx, []byte(appendPrefix), client.PrefixEnd([]byte(appendPrefix)), 0)
			if err != nil {
				return err
			}
			for _, kv := range kvs {
				list, err := decodeList(kv.Value)
				if err != nil {
					return err
				}
				key := strings.TrimPrefix(string(kv.Key), appendPrefix)
				read.Mops = append(read.Mops, checker.MicroOp{F: checker.MopRead, Key: key, List: list})
			}
			return nil
		})
		return outcome(read, err, true)
	})
	if op.Type != checker.TypeOK {
		return nil, fmt.Errorf("append: final read on %s: %s", s.Node, op.Error)
	}
	return []checker.Op{op}, nil
}

// Check implements Workload: CheckListAppend over the history and the final
// reads, with RealTime unless Plain, and Serializable when it is.
func (w *appendWorkload) Check(h []checker.Op, final finalState) (checker.Result, error) {
	all := append(slices.Clip(h), final.Reads...)
	return checker.CheckListAppend(all, checker.AppendConfig{RealTime: !w.Plain, Serializable: w.Serializable})
}
