package workload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/checker"
)

// registerWorkload treats a few keys as registers of small ints and checks
// that reads, writes and compare-and-sets are linearizable, per key:
//
//   - write: Begin, Put, Commit (a blind write: it conflicts only with a
//     write of the key ordered between the member's applied seqno at commit
//     and its own seqno, and then fails);
//   - read: a Get with client.Linearizable;
//   - cas: Begin with client.Linearizable, Get, compare; when the value is
//     not the expected one it is an ok cas with CASOK false, else Put and
//     Commit (a conflict is a fail).
type registerWorkload struct {
	// Keys is the number of registers; default 5.
	Keys int
	// Values is the number of values, 0..Values-1; default 5.
	Values int
	// Timeout bounds the linearizability check; default 60s.
	Timeout time.Duration
}

const registerPrefix = "reg/"

func (w *registerWorkload) defaults() {
	if w.Keys == 0 {
		w.Keys = 5
	}
	if w.Values == 0 {
		w.Values = 5
	}
	if w.Timeout == 0 {
		w.Timeout = time.Minute
	}
}

// Name implements workload.
func (w *registerWorkload) Name() string { return checker.WorkloadRegister }

func registerKey(k string) []byte { return []byte(registerPrefix + k) }

// Setup implements workload; the registers start absent.
func (w *registerWorkload) Setup(context.Context, *client.Client) error { w.defaults(); return nil }

// Step implements Workload: a read, a write or a cas, a third each.
func (w *registerWorkload) Step(ctx context.Context, cl *client.Client, rng *rand.Rand) checker.Op {
	w.defaults()
	key := strconv.Itoa(rng.IntN(w.Keys))
	switch rng.IntN(3) {
	case 0:
		return w.read(ctx, cl, key)
	case 1:
		op := &checker.RegOp{F: checker.RegWrite, Key: key, Value: rng.IntN(w.Values)}
		tx, err := cl.Begin(ctx)
		if err != nil {
			return outcome(op, notApplied(err), false)
		}
		defer tx.Rollback()
		if err := tx.Put(registerKey(key), []byte(strconv.Itoa(op.Value))); err != nil {
			return outcome(op, notApplied(err), false)
		}
		_, err = tx.Commit(ctx)
		return outcome(op, err, false)
	}
	op := &checker.RegOp{F: checker.RegCAS, Key: key, Expect: rng.IntN(w.Values), Value: rng.IntN(w.Values)}
	tx, err := cl.Begin(ctx, client.Linearizable())
	if err != nil {
		return outcome(op, notApplied(err), false)
	}
	defer tx.Rollback()
	cur, err := getRegister(ctx, tx, key)
	if err != nil {
		return outcome(op, notApplied(err), false)
	}
	if cur != op.Expect {
		return outcome(op, nil, true) // ok, CASOK false: the register held cur
	}
	if err := tx.Put(registerKey(key), []byte(strconv.Itoa(op.Value))); err != nil {
		return outcome(op, notApplied(err), false)
	}
	if _, err = tx.Commit(ctx); err == nil {
		op.CASOK = true
	}
	return outcome(op, err, false)
}

// read is a linearizable read of one register.
func (w *registerWorkload) read(ctx context.Context, cl *client.Client, key string) checker.Op {
	op := &checker.RegOp{F: checker.RegRead, Key: key}
	err := cl.View(ctx, func(tx *client.Txn) (err error) {
		op.Result, err = getRegister(ctx, tx, key)
		return err
	}, client.Linearizable())
	return outcome(op, err, true)
}

// getRegister reads key's register: checker.Absent when absent.
func getRegister(ctx context.Context, tx *client.Txn, key string) (int, error) {
	v, err := tx.Get(ctx, registerKey(key))
	switch {
	case errNotFound(err):
		return checker.Absent, nil
	case err != nil:
		return 0, err
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		return 0, fmt.Errorf("register %q holds %q: %w", key, v, err)
	}
	return n, nil
}

// Final implements Workload: a linearizable read of every register on s's
// member, one op each.
func (w *registerWorkload) Final(ctx context.Context, s *session) ([]checker.Op, error) {
	w.defaults()
	var ops []checker.Op
	for k := range w.Keys {
		key := strconv.Itoa(k)
		op := s.Do(func() checker.Op { return w.read(ctx, s.Client, key) })
		if op.Type != checker.TypeOK {
			return nil, fmt.Errorf("register: final read of %s on %s: %s", key, s.Node, op.Error)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// Check implements Workload: CheckRegister over the history and the final
// reads; a non-linearizable history's visualization goes to
// final.Dir/register.html.
func (w *registerWorkload) Check(h []checker.Op, final finalState) (checker.Result, error) {
	w.defaults()
	cfg := checker.RegisterConfig{Timeout: w.Timeout}
	if final.Dir != "" {
		cfg.VisualizePath = filepath.Join(final.Dir, "register.html")
	}
	return checker.CheckRegister(append(slices.Clip(h), final.Reads...), cfg)
}
