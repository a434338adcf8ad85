package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/galenadb/galena/api"
	"github.com/galenadb/galena/api/galenapb"
	noderpc "github.com/galenadb/galena/node/rpc"
)

// watchLog is the committed history the fake watch members serve: one
// event per seqno from 6 to 10, each a put of key k<seqno>.
const watchFirst, watchLast = 6, 10

// watchMember serves KV.Watch from watchLog, as its behaviour says:
// "serve" sends every event after the request's seqno; "stall" sends the
// start and the first event, then nothing more on the stream; "idle"
// sends the start and then the progress up to watchLast alone; any other
// is the error every watch ends with at once.
type watchMember struct {
	galenapb.UnimplementedKVServer
	behaviour string
	err       error
	calls     chan uint64 // the after of each watch created
}

func (m *watchMember) Watch(stream galenapb.KV_WatchServer) error {
	stalled := false
	for {
		req, err := stream.Recv()
		if err != nil {
			return nil
		}
		c := req.GetCreate()
		if c == nil || stalled {
			continue
		}
		m.calls <- c.GetAfter()
		if m.err != nil {
			if err := stream.Send(&galenapb.WatchResponse{Updates: []*galenapb.WatchUpdate{{Id: c.GetId(), Error: noderpc.CallError(m.err)}}}); err != nil {
				return err
			}
			continue
		}
		updates := []*galenapb.WatchUpdate{{Id: c.GetId(), Progress: c.GetAfter()}}
		if m.behaviour == "idle" { // the range saw nothing up to watchLast
			updates = append(updates, &galenapb.WatchUpdate{Id: c.GetId(), Progress: watchLast})
		}
		for seq := max(c.GetAfter()+1, watchFirst); seq <= watchLast && m.behaviour != "idle"; seq++ {
			e := &galenapb.WatchEvent{Seqno: seq, Changes: []*galenapb.Change{{Key: fmt.Appendf(nil, "k%d", seq), Value: []byte("v")}}}
			updates = append(updates, &galenapb.WatchUpdate{Id: c.GetId(), Events: []*galenapb.WatchEvent{e}, Progress: seq})
			if m.behaviour == "stall" {
				stalled = true
				break
			}
		}
		if err := stream.Send(&galenapb.WatchResponse{Updates: updates}); err != nil {
			return err
		}
	}
}

func serveWatch(t *testing.T, m *watchMember) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.calls = make(chan uint64, 100)
	srv := grpc.NewServer()
	galenapb.RegisterKVServer(srv, m)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String()
}

func watchClient(t *testing.T, eps ...string) *Client {
	t.Helper()
	c, err := New(Config{Endpoints: eps, WatchTimeout: 300 * time.Millisecond, NoLeaderWait: true, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// readAll returns the seqnos of the events up to watchLast.
func readAll(t *testing.T, w *Watcher) []uint64 {
	t.Helper()
	var got []uint64
	for w.Progress() < watchLast {
		e, err := w.Next()
		if err != nil {
			t.Fatalf("Next after %v: %v", got, err)
		}
		if want := fmt.Sprintf("k%d", e.Seqno); len(e.Changes) != 1 || string(e.Changes[0].Key) != want {
			t.Fatalf("event %d = %+v, want one put of %s", e.Seqno, e, want)
		}
		got = append(got, e.Seqno)
	}
	return got
}

// A member that goes silent (a stopped process keeps its connections) is
// left after WatchTimeout; the watch goes on on the next member after the
// last event it returned, with no gap and no repeat.
func TestWatchLeavesASilentMember(t *testing.T) {
	stalled, good := &watchMember{behaviour: "stall"}, &watchMember{behaviour: "serve"}
	c := watchClient(t, serveWatch(t, stalled), serveWatch(t, good))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	w, err := c.Watch(ctx, nil, nil, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got := fmt.Sprint(readAll(t, w)); got != "[6 7 8 9 10]" {
		t.Fatalf("events %s, want [6 7 8 9 10]", got)
	}
	if after := <-good.calls; after != 6 || w.Resumes() != 1 {
		t.Fatalf("resumed on the next member after %d (%d resumes), want after 6 once", after, w.Resumes())
	}
}

// A member that no longer holds the history is passed over; when none
// does, the watch fails with ErrSnapshotTooOld. Other refusals fail it at
// once.
func TestWatchRefusals(t *testing.T) {
	tooOld := &watchMember{err: reasonErr(codes.FailedPrecondition, api.ReasonSnapshotTooOld, "oldest held after 7")}
	good := &watchMember{behaviour: "serve"}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	w, err := watchClient(t, serveWatch(t, tooOld), serveWatch(t, good)).Watch(ctx, nil, nil, 5)
	if err != nil {
		t.Fatalf("watch with one member holding the history: %v", err)
	}
	if got := fmt.Sprint(readAll(t, w)); got != "[6 7 8 9 10]" {
		t.Fatalf("events %s, want [6 7 8 9 10]", got)
	}
	w.Close()
	if _, err := w.Next(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v, want ErrClosed", err)
	}

	_, err = watchClient(t, serveWatch(t, tooOld), serveWatch(t, tooOld)).Watch(ctx, nil, nil, 5)
	if !errors.Is(err, ErrSnapshotTooOld) || !strings.Contains(err.Error(), "oldest held after 7") {
		t.Fatalf("watch no member holds: %v, want ErrSnapshotTooOld with the member's message", err)
	}

	bad := &watchMember{err: reasonErr(codes.InvalidArgument, api.ReasonTooLarge, "range bound too long")}
	_, err = watchClient(t, serveWatch(t, bad), serveWatch(t, good)).Watch(ctx, nil, nil, 5)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("watch refused as too large: %v, want ErrTooLarge", err)
	}
	if _, err := watchClient(t, "127.0.0.1:1").Watch(ctx, []byte("b"), []byte("a"), 0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("watch of [b, a): %v, want ErrInvalidArgument", err)
	}
}

// With WithProgress, Next returns the progress of an idle range as an
// event without changes; without it, Next waits for an event.
func TestWatchWithProgress(t *testing.T) {
	ep := serveWatch(t, &watchMember{behaviour: "idle"})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	w, err := watchClient(t, ep).Watch(ctx, nil, nil, 5, WithProgress())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	e, err := w.Next()
	if err != nil || e.Seqno != watchLast || len(e.Changes) != 0 || w.Progress() != watchLast {
		t.Fatalf("Next = %+v, %v (progress %d); want the progress %d alone", e, err, w.Progress(), watchLast)
	}

	short, stop := context.WithTimeout(ctx, 500*time.Millisecond)
	defer stop()
	w, err = watchClient(t, ep).Watch(short, nil, nil, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if e, err := w.Next(); !errors.Is(err, context.DeadlineExceeded) || w.Progress() != watchLast {
		t.Fatalf("Next without WithProgress = %+v, %v (progress %d); want it to wait, with the progress at %d", e, err, w.Progress(), watchLast)
	}
}
