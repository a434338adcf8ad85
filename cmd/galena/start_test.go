package main

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/galenadb/galena/node"
	"github.com/galenadb/galena/security"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// fakeServed is a member for serveUntil.
type fakeServed struct {
	fatal  chan error
	closed atomic.Int32
	setTLS chan *tls.Config // the server configurations SetTLS was given
}

func (f *fakeServed) Fatal() <-chan error { return f.fatal }
func (f *fakeServed) Close() error        { f.closed.Add(1); return nil }
func (f *fakeServed) SetTLS(server, _ *tls.Config) error {
	f.setTLS <- server
	return nil
}

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
			err := serveUntil(ctx, zap.New(core), m, nil, nil)
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

// On SIGHUP a member reloads its TLS files: good files reach the member,
// bad ones are refused with the reason and the member keeps what it had,
// and a member without TLS says there is nothing to reload.
func TestServeUntilReloadsTLS(t *testing.T) {
	dir := makeCerts(t, 1, map[string]string{"alice": "admin"})
	good := &security.Files{Cert: filepath.Join(dir, "n1.crt"), Key: filepath.Join(dir, "n1.key"), CA: filepath.Join(dir, "ca.crt")}
	notMember := &security.Files{Cert: filepath.Join(dir, "alice.crt"), Key: filepath.Join(dir, "alice.key"), CA: good.CA}
	tests := []struct {
		name    string
		certs   *security.Files
		wantSet bool
		wantLog string
	}{
		{"good files", good, true, "trusted CA"},
		{"a client's certificate", notMember, false, "SIGHUP: TLS files not reloaded; the member keeps its current certificate and CAs"},
		{"no TLS", nil, false, "SIGHUP: this member serves without TLS; nothing to reload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			m := &fakeServed{fatal: make(chan error, 1), setTLS: make(chan *tls.Config, 1)}
			hup := make(chan os.Signal)
			done := make(chan error, 1)
			go func() { done <- serveUntil(t.Context(), zap.New(core), m, hup, tt.certs) }()
			hup <- syscall.SIGHUP
			m.fatal <- node.ErrRemoved // handled after the reload: hup is unbuffered
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			select {
			case server := <-m.setTLS:
				if !tt.wantSet {
					t.Fatal("the member was given TLS files it should not have been")
				}
				if len(server.Certificates) != 1 || server.Certificates[0].Leaf.Subject.CommonName != "n1" {
					t.Fatalf("SetTLS got %+v; want n1's certificate", server.Certificates)
				}
			default:
				if tt.wantSet {
					t.Fatal("SetTLS was not called")
				}
			}
			if logs.FilterMessage(tt.wantLog).Len() == 0 {
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
