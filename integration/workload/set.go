package workload

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/checker"
)

// setWorkload adds unique integers to a set: each add is one Begin/Put/
// Commit of its own key set/<n> (no two adds write one key, so no add can
// conflict). With ReadRatio, a client instead reads the whole set with a
// Linearizable scan, which must hold every add acknowledged before it began.
// The final reads scan the set on every member once the cluster converged.
type setWorkload struct {
	// ReadRatio is the share of linearizable reads among the ops; default
	// 0.05. Negative means none.
	ReadRatio float64

	next atomic.Int64
}

const setPrefix = "set/"

// Name implements workload.
func (w *setWorkload) Name() string { return checker.WorkloadSet }

func (w *setWorkload) readRatio() float64 {
	if w.ReadRatio == 0 {
		return 0.05
	}
	return w.ReadRatio
}

func setKey(v int) []byte { return fmt.Appendf(nil, "%s%d", setPrefix, v) }

// Setup implements workload; the set starts empty.
func (w *setWorkload) Setup(context.Context, *client.Client) error { return nil }

// Step implements Workload: an add of a new value, or a read.
func (w *setWorkload) Step(ctx context.Context, cl *client.Client, rng *rand.Rand) checker.Op {
	if rng.Float64() < w.readRatio() {
		op := &checker.SetOp{F: checker.SetRead}
		err := cl.View(ctx, func(tx *client.Txn) (err error) {
			op.Values, err = readSet(ctx, tx)
			return err
		}, client.Linearizable())
		if err != nil {
			op.Values = nil
		}
		return outcome(op, err, true)
	}
	op := &checker.SetOp{F: checker.SetAdd, Value: int(w.next.Add(1))}
	tx, err := cl.Begin(ctx)
	if err != nil {
		return outcome(op, notApplied(err), false)
	}
	defer tx.Rollback()
	if err := tx.Put(setKey(op.Value), []byte(strconv.Itoa(op.Value))); err != nil {
		return outcome(op, notApplied(err), false)
	}
	_, err = tx.Commit(ctx)
	return outcome(op, err, false)
}

// readSet scans the set's prefix; each key names its value.
func readSet(ctx context.Context, tx *client.Txn) ([]int, error) {
	kvs, err := tx.Scan(ctx, []byte(setPrefix), client.PrefixEnd([]byte(setPrefix)), 0)
	if err != nil {
		return nil, err
	}
	vs := make([]int, 0, len(kvs))
	for _, kv := range kvs {
		v, err := strconv.Atoi(string(bytes.TrimPrefix(kv.Key, []byte(setPrefix))))
		if err != nil {
			return nil, fmt.Errorf("set: key %q: %w", kv.Key, err)
		}
		if string(kv.Value) != strconv.Itoa(v) {
			return nil, fmt.Errorf("set: key %q holds %q", kv.Key, kv.Value)
		}
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs, nil
}

// Final implements Workload: one plain scan of the set on s's member (the
// cluster has converged, so every member holds every applied add).
func (w *setWorkload) Final(ctx context.Context, s *session) ([]checker.Op, error) {
	op := s.Do(func() checker.Op {
		read := &checker.SetOp{F: checker.SetRead}
		err := s.Client.View(ctx, func(tx *client.Txn) (err error) {
			read.Values, err = readSet(ctx, tx)
			return err
		})
		return outcome(read, err, true)
	})
	if op.Type != checker.TypeOK {
		return nil, fmt.Errorf("set: final read on %s: %s", s.Node, op.Error)
	}
	return []checker.Op{op}, nil
}

// Check implements Workload: CheckSet over the history and the final reads.
func (w *setWorkload) Check(h []checker.Op, final finalState) (checker.Result, error) {
	return checker.CheckSet(append(slices.Clip(h), final.Reads...))
}
