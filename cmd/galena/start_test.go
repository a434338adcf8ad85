package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/galenadb/galena/node"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// fakeServed is a member for serveUntil.
type fakeServed struct {
	fatal  chan error
	closed atomic.Int32
}

func (f *fakeServed) Fatal() <-chan error { return f.fatal }
func (f *fakeServed) Close() error        { f.closed.Add(1); return nil }

func TestServeUntil(t *testing.T) {
	failure := errors.New("storage: apply seqno 9: disk full")
	tests := []struct {
		name    string
		fatal   error // nil: the context is cancelled instead
		wantErr error
		wantLog string
	}{
		{"signal", nil, nil, "signal received, stopping"},
		{"removed", node.ErrRemoved, nil, "removed from the cluster"},
		{"removed, wrapped", errors.Join(errors.New("monitor"), node.ErrRemoved), nil, "removed from the cluster"},
		{"apply loop failed", failure, failure, "the member failed; stopping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			m := &fakeServed{fatal: make(chan error, 1)}
			ctx, cancel := context.WithCancel(t.Context())
			if tt.fatal != nil {
				m.fatal <- tt.fatal
			} else {
				cancel()
			}
			defer cancel()
			err := serveUntil(ctx, zap.New(core), m)
			if (tt.wantErr == nil) != (err == nil) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Errorf("serveUntil = %v; want %v", err, tt.wantErr)
			}
			if m.closed.Load() != 1 {
				t.Errorf("member closed %d times; want once", m.closed.Load())
			}
			if logs.FilterMessage(tt.wantLog).Len() != 1 {
				t.Errorf("logs %v; want %q", logs.All(), tt.wantLog)
			}
		})
	}
}

// Without --initial-cluster or --join, a member with no state refuses to
// start: node.New says why, and it is a failure, not a usage error.
func TestStartWithoutClusterOrJoin(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var out, errb strings.Builder
	code := run(ctx, []string{"start", "--id", "n1", "--addr", closedAddr(t), "--data", data}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "--initial-cluster") || !strings.Contains(errb.String(), "--join") {
		t.Fatalf("exit %d, stderr %q; want 1 and a message naming --initial-cluster and --join", code, errb.String())
	}
	if ctx.Err() != nil {
		t.Fatal("start did not refuse before the deadline")
	}
}
