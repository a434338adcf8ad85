package txn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/galenadb/galena/certification"
	"github.com/galenadb/galena/storage"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
)

// watchStore is an in-memory storage.Store as the Service reads it.
type watchStore struct{ *storage.Store }

func (watchStore) Outcome([]byte) (certification.Outcome, bool, error) {
	return certification.Outcome{}, false, nil
}

type watchFixture struct {
	t     *testing.T
	svc   *Service
	ord   *fakeOrderer
	store *storage.Store
}

func newWatchFixture(t *testing.T, buffer int) *watchFixture {
	t.Helper()
	store, err := storage.Open(storage.Config{InMemory: true, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	cfg := DefaultConfig()
	cfg.WatchProgress, cfg.WatchBuffer = 5*time.Millisecond, buffer
	o := &fakeOrderer{verdict: certification.Commit}
	svc, err := New(cfg, watchStore{store}, o)
	if err != nil {
		t.Fatal(err)
	}
	o.svc = svc
	return &watchFixture{t: t, svc: svc, ord: o, store: store}
}

// apply applies one write-set per element of specs at the next seqnos,
// without telling the feed; each spec is "k=v" puts and "-k" deletes.
func (fx *watchFixture) apply(specs ...string) []storage.Record {
	fx.t.Helper()
	seq := fx.store.Applied().Seqno
	var recs []storage.Record
	for _, spec := range specs {
		seq++
		r := storage.Record{Seqno: seq, Outcome: []byte("ok")}
		for _, w := range strings.Fields(spec) {
			if k, ok := strings.CutPrefix(w, "-"); ok {
				r.Writes = append(r.Writes, storage.Write{Key: []byte(k), Delete: true})
			} else {
				k, v, _ := strings.Cut(w, "=")
				r.Writes = append(r.Writes, storage.Write{Key: []byte(k), Value: []byte(v)})
			}
		}
		recs = append(recs, r)
	}
	if err := fx.store.ApplyBatch(recs, storage.AppliedState{Seqno: seq}); err != nil {
		fx.t.Fatal(err)
	}
	fx.ord.mu.Lock()
	fx.ord.applied = seq
	fx.ord.mu.Unlock()
	return recs
}

// publish applies and tells the feed, as the apply goroutine does.
func (fx *watchFixture) publish(specs ...string) {
	fx.t.Helper()
	recs := fx.apply(specs...)
	fx.svc.OnApplied(recs, fx.store.Applied().Seqno)
}

type sent struct {
	events   []Event
	progress uint64
}

type watchRun struct {
	t      *testing.T
	sent   chan sent
	done   chan error
	cancel context.CancelFunc
	got    []string
	at     uint64 // the last progress
}

func (fx *watchFixture) watch(start, end string, after uint64) *watchRun {
	ctx, cancel := context.WithCancel(context.Background())
	r := &watchRun{t: fx.t, sent: make(chan sent), done: make(chan error, 1), cancel: cancel}
	go func() {
		r.done <- fx.svc.Watch(ctx, []byte(start), []byte(end), after, 0, func(events []Event, progress uint64) error {
			select {
			case r.sent <- sent{events, progress}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	fx.t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// until collects events until the progress reaches seqno, and returns
// them as "seqno:k=v,-k" strings.
func (r *watchRun) until(seqno uint64) string {
	r.t.Helper()
	deadline := time.After(30 * time.Second)
	for r.at < seqno {
		select {
		case s := <-r.sent:
			for _, e := range s.events {
				if e.Seqno <= r.at {
					r.t.Fatalf("event at seqno %d after progress %d", e.Seqno, r.at)
				}
				r.got = append(r.got, eventString(e))
				r.at = e.Seqno
			}
			if s.progress < r.at {
				r.t.Fatalf("progress %d below the last event %d", s.progress, r.at)
			}
			r.at = s.progress
		case err := <-r.done:
			r.t.Fatalf("watch ended before seqno %d: %v", seqno, err)
		case <-deadline:
			r.t.Fatalf("watch did not reach seqno %d (at %d)", seqno, r.at)
		}
	}
	return strings.Join(r.got, " ")
}

// ended waits for the watch to end and returns its error.
func (r *watchRun) ended() error {
	r.t.Helper()
	for {
		select {
		case <-r.sent:
		case err := <-r.done:
			r.done <- err // for the cleanup
			return err
		case <-time.After(30 * time.Second):
			r.t.Fatal("watch did not end")
		}
	}
}

func eventString(e Event) string {
	var parts []string
	for _, c := range e.Changes {
		if c.Delete {
			parts = append(parts, "-"+string(c.Key))
		} else {
			parts = append(parts, string(c.Key)+"="+string(c.Value))
		}
	}
	return fmt.Sprintf("%d:%s", e.Seqno, strings.Join(parts, ","))
}

// A watch reads history from storage, then follows the apply path, with
// nothing lost or repeated at the seam, even for a batch applied but not
// yet handed to the feed when the watch began.
func TestWatchHistoryThenLive(t *testing.T) {
	fx := newWatchFixture(t, DefaultWatchBuffer)
	fx.publish("a=1 b=1", "x=1", "a=2 -b")
	pending := fx.apply("b=3 a=3 a=4") // applied; the feed hears of it after the watch began
	w := fx.watch("a", "c", 1)
	if got := w.until(4); got != "3:a=2,-b 4:a=4,b=3" {
		t.Fatalf("history after seqno 1 = %q", got)
	}
	fx.svc.OnApplied(pending, 4)
	fx.publish("x=5", "c=6 b=6")
	want := "3:a=2,-b 4:a=4,b=3 6:b=6"
	if got := w.until(6); got != want {
		t.Fatalf("events = %q, want %q", got, want)
	}
	if n := testutil.ToFloat64(fx.svc.m.watchers); n != 1 {
		t.Fatalf("galena_watchers = %v, want 1", n)
	}
	if n := testutil.ToFloat64(fx.svc.m.watchEvents); n != 3 {
		t.Fatalf("galena_watch_events_sent_total = %v, want 3", n)
	}
}

// after 0 starts at the member's applied seqno; an idle watch is told the
// progress of write-sets outside its range.
func TestWatchFromNowAndProgress(t *testing.T) {
	fx := newWatchFixture(t, DefaultWatchBuffer)
	fx.publish("a=1", "a=2")
	w := fx.watch("a", "b", 0)
	if got := w.until(2); got != "" {
		t.Fatalf("a watch from now got history: %q", got)
	}
	fx.publish("z=3", "z=4")
	if got := w.until(4); got != "" {
		t.Fatalf("events outside the range: %q", got)
	}
	fx.publish("a=5")
	if got := w.until(5); got != "5:a=5" {
		t.Fatalf("events = %q", got)
	}
}

// A watcher whose sends block is cut once its buffer is full, and the
// apply path never waits for it.
func TestWatchCutsSlowWatcher(t *testing.T) {
	fx := newWatchFixture(t, 256)
	fx.publish("a=1")
	w := fx.watch("", "", 0)
	w.until(1) // started: the send of the start is taken, the next ones block
	for i := 0; i < 20; i++ {
		fx.publish(fmt.Sprintf("k%d=%s", i, strings.Repeat("v", 40)))
	}
	if err := w.ended(); !errors.Is(err, ErrWatchBehind) {
		t.Fatalf("slow watch ended with %v, want ErrWatchBehind", err)
	}
	if n := testutil.ToFloat64(fx.svc.m.watchersCut); n != 1 {
		t.Fatalf("galena_watchers_cut_total = %v, want 1", n)
	}
}

// A state transfer cuts every watch; history before the floor is refused.
func TestWatchRefusesLostHistory(t *testing.T) {
	fx := newWatchFixture(t, DefaultWatchBuffer)
	fx.publish("a=1")
	w := fx.watch("", "", 1)
	w.until(1)
	fx.svc.OnRestored(100)
	if err := w.ended(); !errors.Is(err, ErrSnapshotTooOld) {
		t.Fatalf("watch after a state transfer ended with %v, want ErrSnapshotTooOld", err)
	}

	src := newWatchFixture(t, DefaultWatchBuffer)
	src.publish("a=1", "b=2")
	sn, err := src.store.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, err = sn.WriteTo(&buf)
	sn.Release()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fx.store.Import(&buf); err != nil {
		t.Fatal(err)
	}
	if err := fx.watch("", "", 1).ended(); !errors.Is(err, ErrSnapshotTooOld) {
		t.Fatalf("watch after 1 on a store imported at 2: %v, want ErrSnapshotTooOld", err)
	}
}

// A watch is refused on a member cut off from the majority, and ends when
// its member is cut off.
func TestWatchNotPrimary(t *testing.T) {
	fx := newWatchFixture(t, DefaultWatchBuffer)
	fx.publish("a=1")
	w := fx.watch("", "", 1)
	w.until(1)
	fx.ord.mu.Lock()
	fx.ord.cutOff = true
	fx.ord.mu.Unlock()
	if err := w.ended(); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("watch on a member cut off ended with %v, want ErrNotPrimary", err)
	}
	if err := fx.watch("", "", 1).ended(); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("watch started on a member cut off: %v, want ErrNotPrimary", err)
	}
}

func TestWatchBadRange(t *testing.T) {
	fx := newWatchFixture(t, DefaultWatchBuffer)
	if err := fx.watch("b", "a", 0).ended(); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("watch of [b, a): %v, want ErrInvalidArgument", err)
	}
	long := strings.Repeat("k", DefaultLimits().MaxKeySize+1)
	if err := fx.watch(long, "", 0).ended(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("watch from an oversized key: %v, want ErrTooLarge", err)
	}
}

// The range index finds exactly the watchers a brute-force scan finds.
func TestRangeIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	key := func() []byte {
		if rng.IntN(8) == 0 {
			return nil
		}
		return []byte{byte('a' + rng.IntN(8)), byte('a' + rng.IntN(3))}
	}
	for round := 0; round < 200; round++ {
		ws := map[*watcher]struct{}{}
		for range 1 + rng.IntN(12) {
			start, end := key(), key()
			if len(end) > 0 && bytes.Compare(start, end) >= 0 {
				start, end = end, start
				if bytes.Equal(start, end) {
					end = nil
				}
			}
			if len(end) > 0 && bytes.Compare(start, end) >= 0 {
				end = nil
			}
			ws[newWatcher(start, end, 1)] = struct{}{}
		}
		idx := newRangeIndex(ws)
		for range 50 {
			k := key()
			if len(k) == 0 {
				k = []byte{byte('a' + rng.IntN(9))}
			}
			got := map[*watcher]bool{}
			for _, w := range idx.lookup(k) {
				if got[w] {
					t.Fatalf("watcher [%q, %q) listed twice for %q", w.start, w.end, k)
				}
				got[w] = true
			}
			for w := range ws {
				in := bytes.Compare(k, w.start) >= 0 && (len(w.end) == 0 || bytes.Compare(k, w.end) < 0)
				if in != got[w] {
					t.Fatalf("key %q, watcher [%q, %q): found %v, want %v", k, w.start, w.end, got[w], in)
				}
			}
		}
	}
}

// One watch more than MaxWatches is refused with ErrOverloaded; closing one
// makes room.
func TestWatchMaxWatches(t *testing.T) {
	fx := newWatchFixture(t, DefaultWatchBuffer)
	fx.svc.cfg.MaxWatches = 1
	fx.publish("a=1")
	first := fx.watch("", "", 1)
	first.until(1)
	if err := fx.watch("", "", 1).ended(); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("a second watch with MaxWatches 1: %v, want ErrOverloaded", err)
	}
	first.cancel()
	if err := first.ended(); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled watch ended with %v, want context.Canceled", err)
	}
	fx.watch("", "", 1).until(1)
}
