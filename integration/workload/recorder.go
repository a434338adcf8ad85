package workload

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/checker"
)

// recorder collects the history of one run: one checker.Op per client
// operation, with invocation and completion times in nanoseconds of a
// monotonic clock since the recorder was made (never 0, which checker.Op
// reserves for "never completed"). It is safe for concurrent use.
type recorder struct {
	start time.Time // holds a monotonic reading: time.Since is monotonic

	mu  sync.Mutex
	ops []checker.Op // in invocation order
	// pending marks the slots of ops invoked but not yet completed.
	pending map[int]bool
}

// newRecorder returns an empty recorder whose clock starts now.
func newRecorder() *recorder {
	return &recorder{start: time.Now(), pending: map[int]bool{}}
}

// now is the recorder's clock: nanoseconds since it was made, at least 1.
func (r *recorder) now() int64 { return max(1, int64(time.Since(r.start))) }

// invocation is an operation that was invoked and not yet completed.
type invocation struct {
	r    *recorder
	slot int
}

// invoke records that process started an operation on node (a member id).
// payload is the operation's checker payload (*checker.BankOp, *checker.TxnOp,
// *checker.SetOp, *checker.RegOp or *checker.WatchOp) or nil when it is
// only known at completion. Complete the returned invocation exactly once.
func (r *recorder) invoke(process int, node string, payload any) *invocation {
	op := checker.Op{Process: process, Node: node}
	setPayload(&op, payload)
	r.mu.Lock()
	defer r.mu.Unlock()
	op.Invoke = r.now() // under the lock: slots are in invocation-time order
	r.ops = append(r.ops, op)
	slot := len(r.ops) - 1
	r.pending[slot] = true
	return &invocation{r: r, slot: slot}
}

// complete records the operation's outcome t, its payload with results
// (nil keeps the payload given to Invoke) and err, whose text becomes the
// op's Error. It returns the recorded op. Completing twice panics.
func (inv *invocation) complete(t checker.Type, payload any, err error) checker.Op {
	now := inv.r.now()
	inv.r.mu.Lock()
	defer inv.r.mu.Unlock()
	if !inv.r.pending[inv.slot] {
		panic("workload: recorder: operation completed twice")
	}
	delete(inv.r.pending, inv.slot)
	op := &inv.r.ops[inv.slot]
	op.Type, op.Complete = t, now
	if payload != nil {
		op.Bank, op.Append, op.Set, op.Reg, op.Watch = nil, nil, nil, nil, nil
		setPayload(op, payload)
	}
	if err != nil {
		op.Error = err.Error()
	}
	return *op
}

// completeOp completes the invocation with the outcome, payload and error
// text of op, as a workload's Step returns it (its Process, Node and times
// are ignored: the recorder's stand).
func (inv *invocation) completeOp(op checker.Op) checker.Op {
	var err error
	if op.Error != "" {
		err = errors.New(op.Error)
	}
	return inv.complete(op.Type, payloadOf(op), err)
}

// history returns a copy of the ops recorded so far, in invocation order.
// An op still pending is returned as info without a completion time: it
// may take effect at any time after its invocation.
func (r *recorder) history() []checker.Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := slices.Clone(r.ops)
	for slot := range r.pending {
		h[slot].Type, h[slot].Complete = checker.TypeInfo, 0
		if h[slot].Error == "" {
			h[slot].Error = "never completed"
		}
	}
	return h
}

func setPayload(op *checker.Op, payload any) {
	switch p := payload.(type) {
	case nil:
	case *checker.BankOp:
		op.Bank = p
	case *checker.TxnOp:
		op.Append = p
	case *checker.SetOp:
		op.Set = p
	case *checker.RegOp:
		op.Reg = p
	case *checker.WatchOp:
		op.Watch = p
	default:
		panic(fmt.Sprintf("workload: recorder: payload of type %T", payload))
	}
}

// payloadOf returns op's payload, or nil when it has none.
func payloadOf(op checker.Op) any {
	switch {
	case op.Bank != nil:
		return op.Bank
	case op.Append != nil:
		return op.Append
	case op.Set != nil:
		return op.Set
	case op.Reg != nil:
		return op.Reg
	case op.Watch != nil:
		return op.Watch
	}
	return nil
}

// notAppliedError marks an error that happened before anything was sent for
// ordering (a failed read inside a read-write transaction, say), so the
// operation definitely had no effect whatever the error is.
type notAppliedError struct{ err error }

func (e notAppliedError) Error() string { return e.err.Error() }
func (e notAppliedError) Unwrap() error { return e.err }

// notApplied wraps err (nil stays nil) to tell classify that the operation
// failed before its write-set could have been sent: it was not applied.
// errors.Is and errors.As see through the wrapper.
func notApplied(err error) error {
	if err == nil {
		return nil
	}
	return notAppliedError{err}
}

// classify maps the error of a client operation to its outcome:
//
//   - nil: ok;
//   - readOnly (the operation wrote nothing, so has no effect): any error is
//     fail;
//   - an error wrapped by notApplied: fail;
//   - client.ErrIndeterminate (checked first, since it may wrap others):
//     info;
//   - client.ErrConflict, ErrNotPrimary, ErrUnavailable, ErrInvalidKey,
//     ErrInvalidArgument, ErrTooLarge, ErrSnapshotTooOld,
//     ErrSnapshotUnavailable: fail, the write-set was refused or certified
//     as a conflict, definitely not applied;
//   - anything else, a context deadline among them: info.
func classify(err error, readOnly bool) checker.Type {
	var na notAppliedError
	switch {
	case err == nil:
		return checker.TypeOK
	case readOnly, errors.As(err, &na):
		return checker.TypeFail
	case errors.Is(err, client.ErrIndeterminate):
		return checker.TypeInfo
	case errors.Is(err, client.ErrConflict),
		errors.Is(err, client.ErrNotPrimary),
		errors.Is(err, client.ErrUnavailable),
		errors.Is(err, client.ErrInvalidKey),
		errors.Is(err, client.ErrInvalidArgument),
		errors.Is(err, client.ErrTooLarge),
		errors.Is(err, client.ErrSnapshotTooOld),
		errors.Is(err, client.ErrSnapshotUnavailable):
		return checker.TypeFail
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return checker.TypeInfo
	}
	return checker.TypeInfo
}

// outcome builds the Op a workload's Step returns: payload, the class of err
// and its text.
func outcome(payload any, err error, readOnly bool) checker.Op {
	op := checker.Op{Type: classify(err, readOnly)}
	setPayload(&op, payload)
	if err != nil {
		op.Error = err.Error()
	}
	return op
}
