package txn

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/galenadb/galena/api/writesetpb"
	"github.com/galenadb/galena/certification"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
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

// newHeldService is a Service admitting at most max commits at once (and
// what edit sets, if given) whose Broadcasts are held.
func newHeldService(t *testing.T, max int, edit ...func(*Config)) (*Service, *heldOrderer) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.MaxInflightCommits = max
	for _, e := range edit {
		e(&cfg)
	}
	o := &heldOrderer{fakeOrderer: &fakeOrderer{applied: 1, verdict: certification.Commit},
		entered: make(chan struct{}, max), release: make(chan struct{})}
	s, err := New(cfg, emptyStore{}, o)
	if err != nil {
		t.Fatal(err)
	}
	o.svc = s
	return s, o
}

func idWriteSet(i int) *writesetpb.WriteSet {
	return &writesetpb.WriteSet{Id: []byte(fmt.Sprintf("id%d", i)), Origin: 1, Writes: []*writesetpb.Write{{Key: []byte("k"), Value: []byte("v")}}}
}

// sizedWriteSet is write-set i with a value of n bytes.
func sizedWriteSet(i, n int) *writesetpb.WriteSet {
	ws := idWriteSet(i)
	ws.Writes[0].Value = make([]byte, n)
	return ws
}

// hold starts n commits and returns once all of them are in Broadcast; their
// errors arrive on the returned channel once released.
func hold(t *testing.T, s *Service, o *heldOrderer, n int) <-chan error {
	t.Helper()
	wss := make([]*writesetpb.WriteSet, n)
	for i := range wss {
		wss[i] = idWriteSet(i)
	}
	return holdSets(t, s, o, wss...)
}

// holdSets is hold for the commits of the write-sets wss.
func holdSets(t *testing.T, s *Service, o *heldOrderer, wss ...*writesetpb.WriteSet) <-chan error {
	t.Helper()
	errs := make(chan error, len(wss))
	for _, ws := range wss {
		go func() {
			_, err := s.Commit(context.Background(), ws, 0)
			errs <- err
		}()
	}
	for range wss {
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

// smallLimits allow write-sets of up to 4 KiB and 10 KiB of them in flight.
func smallLimits(c *Config) {
	c.Limits.MaxValueSize, c.Limits.MaxWriteSetSize, c.MaxInflightBytes = 4<<10, 4<<10, 10<<10
}

// The bytes of the write-sets in flight are bounded as their number is: a
// commit that would exceed the bound is refused at once, a smaller one that
// fits is admitted, and a write-set over the size limit is refused as too
// large, not as overload.
func TestCommitsBeyondTheByteBoundAreRefusedAtOnce(t *testing.T) {
	s, o := newHeldService(t, 8, smallLimits)
	held := []*writesetpb.WriteSet{sizedWriteSet(0, 4000), sizedWriteSet(1, 4000)}
	errs := holdSets(t, s, o, held...)
	want := proto.Size(held[0]) + proto.Size(held[1])
	if got := testutil.ToFloat64(s.m.inflightBytes); got != float64(want) {
		t.Errorf("galena_inflight_commit_bytes = %v, want %d", got, want)
	}

	if err := refusedAtOnce(t, s, sizedWriteSet(2, 4000)); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("commit beyond the byte bound: %v, want ErrOverloaded", err)
	}
	if err := refusedAtOnce(t, s, sizedWriteSet(3, 5000)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized write-set under load: %v, want ErrTooLarge", err)
	}
	if got := testutil.ToFloat64(s.m.overloaded); got != 1 {
		t.Errorf("galena_commits_overloaded_total = %v, want 1", got)
	}
	small := holdSets(t, s, o, sizedWriteSet(4, 100)) // still fits
	close(o.release)
	for _, ch := range []<-chan error{errs, errs, small} {
		if err := <-ch; err != nil {
			t.Fatalf("held commit: %v", err)
		}
	}
	if got := testutil.ToFloat64(s.m.inflightBytes); got != 0 {
		t.Errorf("galena_inflight_commit_bytes = %v once answered, want 0", got)
	}
}

// refusedAtOnce commits ws and returns its error, failing the test if the
// commit is held instead of answered at once.
func refusedAtOnce(t *testing.T, s *Service, ws *writesetpb.WriteSet) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := s.Commit(context.Background(), ws, 0)
		errc <- err
	}()
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("commit of %d bytes was admitted and held, not refused", proto.Size(ws))
		return nil
	}
}

// A commit is admitted whatever its size when none is in flight.
func TestGateAdmitsOneCommitOfAnySize(t *testing.T) {
	g := newGate(8, 10)
	if err := g.enter(50); err != nil {
		t.Fatalf("a commit over the byte bound with none in flight: %v", err)
	}
	if err := g.enter(1); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("a commit beside it: %v, want ErrOverloaded", err)
	}
	g.leave(50)
	if err := g.enter(10); err != nil {
		t.Fatalf("a commit within the bound: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no inflight commits", func(c *Config) { c.MaxInflightCommits = 0 }, "MaxInflightCommits must be positive"},
		{"inflight bytes below a write-set", func(c *Config) { c.MaxInflightBytes = c.Limits.MaxWriteSetSize - 1 },
			"MaxInflightBytes (16777215) must be at least MaxWriteSetSize (16777216)"},
		{"value over the write-set", func(c *Config) { c.Limits.MaxValueSize = c.Limits.MaxWriteSetSize + 1 }, "must not exceed the write-set limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.edit(&cfg)
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}
