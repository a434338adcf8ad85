package txn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/galenadb/galena/api/writesetpb"
	"github.com/galenadb/galena/certification"
	"github.com/galenadb/galena/groupcomm"
	"github.com/galenadb/galena/storage"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeOrderer orders entries itself and reports a verdict per entry through
// the Service's OnOutcome, as the apply loop would.
type fakeOrderer struct {
	mu      sync.Mutex
	applied uint64
	svc     *Service
	err     error // returned by Broadcast when set
	sent    int
	verdict certification.Verdict
	commit  uint64        // the leader's commit point ReadIndex reports; 0: applied
	cutOff  bool          // not primary: Serving refuses unless stale
	waits   chan<- uint64 // told the seqno each WaitApplied waits for, when set
}

func (o *fakeOrderer) Broadcast(_ context.Context, data []byte) (uint64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return 0, o.err
	}
	var ws writesetpb.WriteSet
	if err := certification.DecodeEntry(data, &ws); err != nil {
		return 0, err
	}
	o.sent++
	o.applied++
	o.svc.OnOutcome(ws.Id, certification.Outcome{Seqno: o.applied, Verdict: o.verdict})
	return o.applied, nil
}

func (o *fakeOrderer) WaitApplied(ctx context.Context, s uint64) error {
	o.mu.Lock()
	waits := o.waits
	o.mu.Unlock()
	if waits != nil {
		select {
		case waits <- s:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for o.Applied() < s {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

func (o *fakeOrderer) ReadIndex(context.Context) (uint64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.commit != 0 {
		return o.commit, o.err
	}
	return o.applied, o.err
}

// WaitIndex waits as WaitApplied does: the fake's log indexes are its
// seqnos.
func (o *fakeOrderer) WaitIndex(ctx context.Context, idx uint64) (uint64, error) {
	if err := o.WaitApplied(ctx, idx); err != nil {
		return 0, err
	}
	return o.Applied(), nil
}

func (o *fakeOrderer) setWaits(c chan<- uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.waits = c
}

func (o *fakeOrderer) Serving(stale bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cutOff && !stale {
		return fmt.Errorf("%w: no leader", ErrNotPrimary)
	}
	return nil
}

func (o *fakeOrderer) Applied() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.applied
}

type emptyStore struct{}

func (emptyStore) Get([]byte, uint64) ([]byte, error) { return nil, storage.ErrNotFound }
func (emptyStore) Scan([]byte, []byte, int, uint64) ([]storage.KV, error) {
	return nil, nil
}
func (emptyStore) Outcome([]byte) (certification.Outcome, bool, error) {
	return certification.Outcome{}, false, nil
}
func (emptyStore) Changes([]byte, []byte, uint64, uint64, int) ([]storage.Change, uint64, error) {
	return nil, 0, nil
}
func (emptyStore) HistoryHeld(uint64) error      { return nil }
func (emptyStore) Applied() storage.AppliedState { return storage.AppliedState{} }

// newService returns a Service whose causal waits give up after 50ms, for
// tests that want the refusal of a seqno that never comes.
func newService(t *testing.T) (*Service, *fakeOrderer) {
	t.Helper()
	return newServiceWaiting(t, 50*time.Millisecond)
}

// newServiceWaiting returns a Service whose causal waits last up to wait.
func newServiceWaiting(t *testing.T, wait time.Duration) (*Service, *fakeOrderer) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Limits = Limits{MaxKeySize: 8, MaxValueSize: 16, MaxWriteSetSize: 64, MaxScanBatch: 10, MaxReadSetSize: 40}
	cfg.CausalWait = wait
	o := &fakeOrderer{applied: 1, verdict: certification.Commit}
	s, err := New(cfg, emptyStore{}, o)
	if err != nil {
		t.Fatal(err)
	}
	o.svc = s
	return s, o
}

func wset(keys ...string) *writesetpb.WriteSet {
	ws := &writesetpb.WriteSet{Id: []byte("id"), Origin: 1}
	for _, k := range keys {
		ws.Writes = append(ws.Writes, &writesetpb.Write{Key: []byte(k), Value: []byte("v")})
	}
	return ws
}

// reads gives ws a snapshot and the keys of a serializable read set.
func reads(ws *writesetpb.WriteSet, snapshot uint64, keys ...string) *writesetpb.WriteSet {
	ws.Snapshot = snapshot
	for _, k := range keys {
		ws.Reads = append(ws.Reads, []byte(k))
	}
	return ws
}

// scans gives ws snapshot 1 and a scanned range of [start, end).
func scans(ws *writesetpb.WriteSet, start, end string) *writesetpb.WriteSet {
	ws.Snapshot = 1
	ws.Scans = append(ws.Scans, &writesetpb.KeyRange{Start: []byte(start), End: []byte(end)})
	return ws
}

func TestCommitValidation(t *testing.T) {
	cases := []struct {
		name string
		ws   *writesetpb.WriteSet
		want error
	}{
		{"nil", nil, ErrInvalidWriteSet},
		{"no id", &writesetpb.WriteSet{Writes: wset("k").Writes}, ErrInvalidWriteSet},
		{"no writes", &writesetpb.WriteSet{Id: []byte("x")}, ErrInvalidWriteSet},
		{"empty key", wset(""), ErrInvalidKey},
		{"key too long", wset("123456789"), ErrTooLarge},
		{"value too long", &writesetpb.WriteSet{Id: []byte("x"), Origin: 1, Writes: []*writesetpb.Write{{Key: []byte("k"), Value: make([]byte, 17)}}}, ErrTooLarge},
		{"write-set too large", wset("a", "b", "c", "d", "e", "f", "g", "h"), ErrTooLarge},
		{"snapshot not applied", &writesetpb.WriteSet{Id: []byte("x"), Snapshot: 99, Writes: wset("k").Writes}, ErrSnapshotUnavailable},
		{"read set without a snapshot", reads(wset("k"), 0, "r"), ErrInvalidWriteSet},
		{"empty key read", reads(wset("k"), 1, ""), ErrInvalidKey},
		{"key read too long", reads(wset("k"), 1, "123456789"), ErrTooLarge},
		{"range bound too long", scans(wset("k"), "123456789", ""), ErrTooLarge},
		{"empty range", scans(wset("k"), "b", "a"), ErrInvalidArgument},
		{"read set too large", reads(wset("k"), 1, "a", "b", "c", "d", "e"), ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, o := newService(t)
			_, err := s.Commit(context.Background(), tc.ws, 0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if o.sent != 0 {
				t.Fatal("a rejected write-set was broadcast")
			}
			if len(s.waiters) != 0 {
				t.Fatalf("%d waiters left behind by a rejected write-set", len(s.waiters))
			}
		})
	}
}

func TestCommitReportsOwnVerdict(t *testing.T) {
	s, o := newService(t)
	got, err := s.Commit(context.Background(), wset("k"), 0)
	if err != nil || got.Verdict != certification.Commit || got.Seqno != 2 {
		t.Fatalf("got %+v, %v", got, err)
	}
	o.verdict = certification.Conflict
	if got, _ := s.Commit(context.Background(), wset("k"), 0); got.Verdict != certification.Conflict {
		t.Fatalf("got %+v, want the conflict the apply loop reported", got)
	}
	if len(s.waiters) != 0 {
		t.Fatalf("%d waiters left behind", len(s.waiters))
	}
}

func TestBroadcastErrorsMap(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{groupcomm.ErrNotPrimary, ErrNotPrimary},
		{groupcomm.ErrIndeterminate, ErrIndeterminate},
		{groupcomm.ErrClosed, ErrShuttingDown},
	} {
		s, o := newService(t)
		o.err = tc.err
		if _, err := s.Commit(context.Background(), wset("k"), 0); !errors.Is(err, tc.want) {
			t.Fatalf("broadcast error %v became %v, want %v", tc.err, err, tc.want)
		}
		if len(s.waiters) != 0 {
			t.Fatal("waiter left behind after a failed broadcast")
		}
	}
}

func TestSnapshotChoice(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	if _, _, at, err := s.Get(ctx, []byte("k"), ReadAt{}); err != nil || at != 1 {
		t.Fatalf("new read at %d, %v; want the applied seqno 1", at, err)
	}
	if _, _, _, err := s.Get(ctx, []byte("k"), ReadAt{Snapshot: 50}); !errors.Is(err, ErrSnapshotUnavailable) {
		t.Fatalf("read at a future snapshot: %v", err)
	}
	s, o := newServiceWaiting(t, time.Minute)
	if at, err := readWhileApplying(t, s, o, ReadAt{MinSeqno: 2}, 2); err != nil || at < 2 {
		t.Fatalf("read with min_seqno 2 at %d, %v", at, err)
	}
}

// readWhileApplying starts a read at r, and once the read waits for seqno
// want to be applied, applies it; it returns what the read returned. It fails
// the test if the read waits for another seqno, and returns at once, without
// applying anything, if the read does not wait at all.
func readWhileApplying(t *testing.T, s *Service, o *fakeOrderer, r ReadAt, want uint64) (uint64, error) {
	t.Helper()
	waits := make(chan uint64)
	o.setWaits(waits)
	defer o.setWaits(nil)
	type result struct {
		at  uint64
		err error
	}
	done := make(chan result, 1)
	go func() {
		_, _, at, err := s.Get(context.Background(), []byte("k"), r)
		done <- result{at, err}
	}()
	select {
	case got := <-waits:
		if got != want {
			t.Errorf("read waits for seqno %d, want %d", got, want)
		}
	case res := <-done:
		return res.at, res.err
	}
	if _, err := o.Broadcast(context.Background(), mustEntry(t)); err != nil {
		t.Fatal(err)
	}
	res := <-done
	return res.at, res.err
}

func mustEntry(t *testing.T) []byte {
	b, err := certification.EncodeEntry(&writesetpb.WriteSet{Id: []byte("bg"), Origin: 1, Writes: wset("k").Writes})
	if err != nil {
		t.Error(err)
	}
	return b
}

func TestLinearizableReadWaitsForCommitPoint(t *testing.T) {
	s, o := newService(t)
	ctx := context.Background()
	o.commit = 2
	if _, _, _, err := s.Get(ctx, []byte("k"), ReadAt{Linearizable: true}); !errors.Is(err, ErrSnapshotUnavailable) {
		t.Fatalf("read with the commit point never applied: %v, want ErrSnapshotUnavailable", err)
	}
	s, o = newServiceWaiting(t, time.Minute)
	o.commit = 2
	if at, err := readWhileApplying(t, s, o, ReadAt{Linearizable: true}, 2); err != nil || at < 2 {
		t.Fatalf("linearizable read at %d, %v; want at or after the commit point 2", at, err)
	}
	o.mu.Lock()
	o.err = groupcomm.ErrNotPrimary
	o.mu.Unlock()
	if _, _, _, err := s.Get(ctx, []byte("k"), ReadAt{Linearizable: true}); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("linearizable read without a leader: %v", err)
	}
}

// A member cut off from the majority refuses reads unless they allow stale
// state; its commits are left to Broadcast, which bounds the wait.
func TestReadsRefusedWhenNotPrimary(t *testing.T) {
	s, o := newService(t)
	o.mu.Lock()
	o.cutOff = true
	o.mu.Unlock()
	ctx := context.Background()
	if _, _, _, err := s.Get(ctx, []byte("k"), ReadAt{}); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("Get on a cut-off member: %v, want ErrNotPrimary", err)
	}
	if _, _, _, err := s.Scan(ctx, nil, nil, 0, ReadAt{}); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("Scan on a cut-off member: %v, want ErrNotPrimary", err)
	}
	if _, _, at, err := s.Get(ctx, []byte("k"), ReadAt{AllowStale: true}); err != nil || at != 1 {
		t.Fatalf("stale Get: at %d, %v; want a read at the applied seqno", at, err)
	}
}
