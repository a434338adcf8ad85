package txn

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/galenadb/galena/api"
	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/certification"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// heldOrderer holds every Broadcast until release is closed, and says on
// entered when one arrives.
type heldOrderer struct {
	*fakeOrderer
	entered chan struct{}
	release chan struct{}
}

func (o *heldOrderer) Broadcast(ctx context.Context, data []byte) (uint64, error) {
	o.entered <- struct{}{}
	<-o.release
	return o.fakeOrderer.Broadcast(ctx, data)
}

func newHeldService(t *testing.T, max int) (*Service, *heldOrderer) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.MaxInflightCommits = max
	o := &heldOrderer{fakeOrderer: &fakeOrderer{applied: 1, verdict: certification.Commit},
		entered: make(chan struct{}, max), release: make(chan struct{})}
	s, err := New(cfg, emptyStore{}, o)
	if err != nil {
		t.Fatal(err)
	}
	o.svc = s
	return s, o
}

func idWriteSet(i int) *galenapb.WriteSet {
	return &galenapb.WriteSet{Id: []byte(fmt.Sprintf("id%d", i)), Origin: 1, Writes: []*galenapb.Write{{Key: []byte("k"), Value: []byte("v")}}}
}

// hold starts n commits and returns once all of them are in Broadcast; their
// errors arrive on the returned channel once released.
func hold(t *testing.T, s *Service, o *heldOrderer, n int) <-chan error {
	t.Helper()
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := s.Commit(context.Background(), idWriteSet(i), 0)
			errs <- err
		}()
	}
	for range n {
		<-o.entered
	}
	return errs
}

func TestCommitsBeyondTheBoundAreRefusedAtOnce(t *testing.T) {
	s, o := newHeldService(t, 3)
	errs := hold(t, s, o, 3)

	_, err := s.Commit(context.Background(), idWriteSet(99), 0)
	if !errors.Is(err, ErrOverloaded) {
		t.Fatalf("commit beyond the bound: %v, want ErrOverloaded", err)
	}
	if code, reason := status.Code(ToStatus(err)), reasonOf(ToStatus(err)); code != codes.ResourceExhausted || reason != api.ReasonOverloaded {
		t.Fatalf("overload on the wire: %v %q, want ResourceExhausted %s", code, reason, api.ReasonOverloaded)
	}
	if got := testutil.ToFloat64(s.m.inflight); got != 3 {
		t.Errorf("galena_inflight_commits = %v, want 3", got)
	}
	if got := testutil.ToFloat64(s.m.overloaded); got != 1 {
		t.Errorf("galena_commits_overloaded_total = %v, want 1", got)
	}

	close(o.release)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatalf("held commit: %v", err)
		}
	}
	if _, err := s.Commit(context.Background(), idWriteSet(100), 0); err != nil {
		t.Fatalf("commit under the bound again: %v", err)
	}
	if n := testutil.CollectAndCount(s, "galena_commit_duration_seconds"); n != 3 {
		t.Errorf("commit duration series = %d, want 3 (committed, conflict, error)", n)
	}
}

func TestDrainRefusesNewCommitsAndWaitsForInflight(t *testing.T) {
	s, o := newHeldService(t, 8)
	errs := hold(t, s, o, 2)

	drained := make(chan error, 1)
	go func() { drained <- s.Drain(context.Background()) }()
	for !s.gate.draining() {
		runtime.Gosched()
	}
	if _, err := s.Commit(context.Background(), idWriteSet(50), 0); !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("commit while draining: %v, want ErrShuttingDown", err)
	}
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) with commits in flight", err)
	default:
	}
	close(o.release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("in-flight commit during drain: %v", err)
		}
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
}

func TestDrainIsBounded(t *testing.T) {
	s, o := newHeldService(t, 8)
	errs := hold(t, s, o, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain with a commit held: %v, want DeadlineExceeded", err)
	}
	close(o.release)
	<-errs
	if err := s.Drain(context.Background()); err != nil {
		t.Fatalf("second Drain: %v", err)
	}
}
