package workload

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/checker"
)

// classify maps every client error to the outcome the checkers assume.
func TestClassify(t *testing.T) {
	conflict := &client.ConflictError{Key: []byte("k"), Seqno: 7}
	indeterminateUnavailable := fmt.Errorf("%w: no answer: %w", client.ErrIndeterminate, client.ErrUnavailable)
	for _, tc := range []struct {
		name     string
		err      error
		readOnly bool
		want     checker.Type
	}{
		{"nil", nil, false, checker.TypeOK},
		{"nil read", nil, true, checker.TypeOK},
		{"conflict", conflict, false, checker.TypeFail},
		{"wrapped conflict", fmt.Errorf("update gave up: %w: %w", context.DeadlineExceeded, conflict), false, checker.TypeFail},
		{"not primary", fmt.Errorf("%w: cut off", client.ErrNotPrimary), false, checker.TypeFail},
		{"unavailable", fmt.Errorf("%w: no endpoint", client.ErrUnavailable), false, checker.TypeFail},
		{"invalid key", client.ErrInvalidKey, false, checker.TypeFail},
		{"invalid argument", client.ErrInvalidArgument, false, checker.TypeFail},
		{"too large", client.ErrTooLarge, false, checker.TypeFail},
		{"snapshot too old", client.ErrSnapshotTooOld, false, checker.TypeFail},
		{"snapshot unavailable", client.ErrSnapshotUnavailable, false, checker.TypeFail},
		{"indeterminate", client.ErrIndeterminate, false, checker.TypeInfo},
		{"indeterminate before unavailable", indeterminateUnavailable, false, checker.TypeInfo},
		{"deadline", context.DeadlineExceeded, false, checker.TypeInfo},
		{"canceled", context.Canceled, false, checker.TypeInfo},
		{"unknown", errors.New("boom"), false, checker.TypeInfo},
		{"read deadline", context.DeadlineExceeded, true, checker.TypeFail},
		{"read indeterminate", client.ErrIndeterminate, true, checker.TypeFail},
		{"not applied deadline", notApplied(context.DeadlineExceeded), false, checker.TypeFail},
		{"not applied wrapped", fmt.Errorf("step: %w", notApplied(errors.New("boom"))), false, checker.TypeFail},
	} {
		if got := classify(tc.err, tc.readOnly); got != tc.want {
			t.Errorf("%s: classify(%v, %v) = %s, want %s", tc.name, tc.err, tc.readOnly, got, tc.want)
		}
	}
	if !errors.Is(notApplied(client.ErrConflict), client.ErrConflict) || notApplied(nil) != nil {
		t.Error("notApplied must keep errors.Is and map nil to nil")
	}
}

// The recorder keeps invocation order and monotonic times, under
// concurrency, and reports ops still pending as info without completion.
func TestRecorder(t *testing.T) {
	rec := newRecorder()
	var wg sync.WaitGroup
	for p := range 8 {
		wg.Go(func() {
			for v := range 50 {
				inv := rec.invoke(p, "n1", &checker.SetOp{F: checker.SetAdd, Value: p*1000 + v})
				inv.complete(checker.TypeOK, nil, nil)
			}
		})
	}
	wg.Wait()
	pending := rec.invoke(99, "n2", &checker.SetOp{F: checker.SetAdd, Value: 1})
	done := rec.invoke(98, "n3", nil)
	got := done.complete(checker.TypeFail, &checker.RegOp{F: checker.RegWrite, Key: "x", Value: 2}, client.ErrConflict)
	if got.Reg == nil || got.Error != client.ErrConflict.Error() || got.Process != 98 || got.Node != "n3" {
		t.Errorf("Complete returned %+v", got)
	}
	h := rec.history()
	if len(h) != 8*50+2 {
		t.Fatalf("%d ops, want %d", len(h), 8*50+2)
	}
	for i, o := range h {
		if i > 0 && o.Invoke < h[i-1].Invoke {
			t.Errorf("op %d invoked at %d, before op %d at %d", i, o.Invoke, i-1, h[i-1].Invoke)
		}
		if o.Type != checker.TypeInfo && (o.Invoke <= 0 || o.Complete < o.Invoke) {
			t.Errorf("op %d: invoke %d complete %d", i, o.Invoke, o.Complete)
		}
		if err := o.Validate(); err != nil {
			t.Errorf("op %d: %v", i, err)
		}
	}
	if p := h[len(h)-2]; p.Type != checker.TypeInfo || p.Complete != 0 || p.Process != 99 {
		t.Errorf("pending op recorded as %+v, want info without completion", p)
	}
	pending.complete(checker.TypeOK, nil, nil)
	if p := rec.history()[len(h)-2]; p.Type != checker.TypeOK {
		t.Errorf("completed op recorded as %v", p)
	}
	defer func() {
		if recover() == nil {
			t.Error("completing twice did not panic")
		}
	}()
	pending.complete(checker.TypeOK, nil, nil)
}
