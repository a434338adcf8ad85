package client

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/galenadb/galena/api/galenapb"
)

// maxSubBuffer bounds the bytes of updates a watch holds that its Next has
// not taken; past it the watch is dropped from the stream (errSubBehind)
// and watches again from its progress, so that one slow reader neither
// grows memory nor holds up the other watches of the stream.
const maxSubBuffer = 4 << 20

// errSubBehind: a watch's reader fell more than maxSubBuffer behind.
var errSubBehind = errors.New("client: watch read slower than its events came")

// watchMux carries the client's watches on one endpoint over one Watch
// stream, opened when a watch needs one and again after it broke: many
// watches on one member then cost a message per batch the member applies,
// not one each.
type watchMux struct {
	conn    *grpc.ClientConn
	timeout time.Duration // Config.WatchTimeout
	lg      *zap.Logger

	mu     sync.Mutex
	cur    *muxStream // nil when none is open
	nextID uint64
	closed bool
}

func newWatchMux(conn *grpc.ClientConn, timeout time.Duration, lg *zap.Logger) *watchMux {
	return &watchMux{conn: conn, timeout: timeout, lg: lg}
}

// watch creates a watch on the stream, opening one if none is open. Its
// updates, and its end, come through the returned sub.
func (m *watchMux) watch(create *galenapb.WatchCreate) (*watchSub, error) {
	m.mu.Lock()
	for m.cur == nil && !m.closed {
		// Opening waits for the connection (at most about DialTimeout):
		// not under mu, which the stream's reader takes.
		m.mu.Unlock()
		ms, err := m.open()
		if err != nil {
			return nil, err
		}
		m.mu.Lock()
		if m.cur == nil && !m.closed && ms.subs != nil { // nil: it broke already
			m.cur = ms
			break
		}
		m.mu.Unlock()
		ms.cancel() // another watch opened one meanwhile, or the client closed
		<-ms.done
		m.mu.Lock()
	}
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	ms := m.cur
	m.nextID++
	sub := &watchSub{id: m.nextID, ms: ms, wake: make(chan struct{}, 1)}
	ms.subs[sub.id] = sub
	ms.silent.Reset(m.timeout) // the member has a full timeout to answer
	m.mu.Unlock()
	create.Id = sub.id
	if err := ms.send(&galenapb.WatchRequest{Request: &galenapb.WatchRequest_Create{Create: create}}); err != nil {
		sub.close()
		// The stream ended (Send says io.EOF; its reader learns why from
		// Recv): another member may take the watch.
		return nil, status.Errorf(codes.Unavailable, "watch stream ended: %v", err)
	}
	return sub, nil
}

// open starts a stream and its reader.
func (m *watchMux) open() (*muxStream, error) {
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := galenapb.NewKVClient(m.conn).Watch(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	ms := &muxStream{m: m, stream: stream, cancel: cancel, subs: map[uint64]*watchSub{}, done: make(chan struct{})}
	ms.silent = time.AfterFunc(m.timeout, func() { ms.timedOut.Store(true); cancel() })
	go ms.read()
	return ms, nil
}

// close ends the stream, failing its watches with ErrClosed, and waits for
// its reader.
func (m *watchMux) close() {
	m.mu.Lock()
	m.closed = true
	ms := m.cur
	m.mu.Unlock()
	if ms != nil {
		ms.cancel()
		<-ms.done
	}
}

// muxStream is one Watch stream and the watches on it.
type muxStream struct {
	m        *watchMux
	stream   galenapb.KV_WatchClient
	cancel   context.CancelFunc
	silent   *time.Timer // cancels the stream after the timeout without a message
	timedOut atomic.Bool // silent fired
	sendMu   sync.Mutex
	subs     map[uint64]*watchSub // guarded by m.mu; nil once the stream broke
	done     chan struct{}        // closed when read returns
}

func (ms *muxStream) send(req *galenapb.WatchRequest) error {
	ms.sendMu.Lock()
	defer ms.sendMu.Unlock()
	return ms.stream.Send(req)
}

// read hands each update to its watch until the stream breaks, then ends
// every watch on it with the reason.
func (ms *muxStream) read() {
	defer close(ms.done)
	for {
		resp, err := ms.stream.Recv()
		if err != nil {
			ms.broke(err)
			return
		}
		ms.silent.Reset(ms.m.timeout)
		ms.m.mu.Lock()
		for _, u := range resp.GetUpdates() {
			if sub := ms.subs[u.GetId()]; sub != nil {
				sub.push(u)
			}
		}
		ms.m.mu.Unlock()
	}
}

// broke ends every watch of the stream with why it broke, and lets the
// next watch open a new stream.
func (ms *muxStream) broke(err error) {
	ms.silent.Stop()
	ms.cancel()
	switch {
	case ms.timedOut.Load():
		err = status.Error(codes.Unavailable, "the member sent nothing within WatchTimeout")
	case errors.Is(err, io.EOF):
		err = status.Error(codes.Unavailable, "the member ended the watch stream")
	}
	ms.m.mu.Lock()
	defer ms.m.mu.Unlock()
	if ms.m.closed {
		err = ErrClosed
	}
	if ms.m.cur == ms {
		ms.m.cur = nil
	}
	for _, sub := range ms.subs {
		sub.end(err)
	}
	ms.subs = nil
	ms.m.lg.Debug("watch stream ended", zap.Error(err))
}

// watchSub is one watch on a stream: the updates its reader has not taken,
// and how it ended.
type watchSub struct {
	id   uint64
	ms   *muxStream
	wake chan struct{} // signalled when updates arrive or the watch ends

	mu      sync.Mutex
	updates []*galenapb.WatchUpdate
	size    int
	err     error // why the watch ended, once it did
}

// push queues u; the stream's reader calls it, holding the mux's mu.
func (s *watchSub) push(u *galenapb.WatchUpdate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	if e := u.GetError(); e != nil {
		s.err = callErr(e)
	} else if s.size += updateSize(u); s.size > maxSubBuffer && len(s.updates) > 0 {
		s.err, s.updates = errSubBehind, nil
	} else {
		s.updates = append(s.updates, u)
	}
	signal(s.wake)
}

// end ends the watch with err, after the updates it holds.
func (s *watchSub) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
		signal(s.wake)
	}
}

// next waits for the watch's updates and returns them, or once it holds
// none, why it ended.
func (s *watchSub) next(ctx context.Context) ([]*galenapb.WatchUpdate, error) {
	for {
		s.mu.Lock()
		updates, err := s.updates, s.err
		s.updates, s.size = nil, 0
		s.mu.Unlock()
		if len(updates) > 0 {
			return updates, nil
		}
		if err != nil {
			return nil, err
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// close takes the watch off its stream and asks the member to end it,
// unless it already ended there. It may be called more than once.
func (s *watchSub) close() {
	ms := s.ms
	ms.m.mu.Lock()
	_, open := ms.subs[s.id]
	delete(ms.subs, s.id)
	ms.m.mu.Unlock()
	s.mu.Lock()
	ended := s.err != nil && !errors.Is(s.err, errSubBehind)
	s.mu.Unlock()
	if open && !ended {
		_ = ms.send(&galenapb.WatchRequest{Request: &galenapb.WatchRequest_Cancel{Cancel: s.id}})
	}
}

// updateSize is about the bytes u holds.
func updateSize(u *galenapb.WatchUpdate) int {
	n := 16
	for _, e := range u.GetEvents() {
		n += 16
		for _, c := range e.GetChanges() {
			n += len(c.GetKey()) + len(c.GetValue()) + 8
		}
	}
	return n
}

// signal wakes the receiver of ch, a channel of capacity one, unless it
// is already woken.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
