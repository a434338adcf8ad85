package groupcomm

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// logsOfSizes are entries 11, 12, ... of term 3 with data of the given sizes.
func logsOfSizes(sizes ...int) []*raft.Log {
	logs := make([]*raft.Log, len(sizes))
	for i, n := range sizes {
		logs[i] = &raft.Log{Index: uint64(11 + i), Term: 3, Data: make([]byte, n)}
	}
	return logs
}

func partLens(parts [][]*raft.Log) []int {
	var lens []int
	for _, p := range parts {
		lens = append(lens, len(p))
	}
	return lens
}

func TestSplitEntries(t *testing.T) {
	tests := []struct {
		name  string
		sizes []int
		max   int
		want  []int // entries per part; nil: sent as it is
	}{
		{"none", nil, 10, nil},
		{"all fit", []int{3, 3, 4}, 10, nil},
		{"one too large", []int{50}, 10, nil},
		{"even", []int{3, 3, 3, 3}, 6, []int{2, 2}},
		{"uneven", []int{3, 3, 3}, 6, []int{2, 1}},
		{"large first", []int{20, 1, 1}, 10, []int{1, 2}},
		{"large between", []int{1, 20, 1}, 10, []int{1, 1, 1}},
		{"each alone", []int{6, 6, 6}, 10, []int{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries := logsOfSizes(tt.sizes...)
			parts := splitEntries(entries, tt.max)
			if got := partLens(parts); !slices.Equal(got, tt.want) {
				t.Fatalf("parts of %v within %d: %v, want %v", tt.sizes, tt.max, got, tt.want)
			}
			if parts != nil && !slices.Equal(slices.Concat(parts...), entries) {
				t.Fatalf("parts %v do not make up the entries in order", parts)
			}
		})
	}
}

// sentParts records the requests appendInParts sends and answers each
// with the next of answers (success when they run out).
type sentParts struct {
	reqs    []raft.AppendEntriesRequest
	answers []error // nil: success; errRefuse: Success false
}

var errRefuse = errors.New("refuse")

func (s *sentParts) send(req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	s.reqs = append(s.reqs, *req)
	var answer error
	if len(s.answers) > 0 {
		answer, s.answers = s.answers[0], s.answers[1:]
	}
	*resp = raft.AppendEntriesResponse{Term: req.Term, LastLog: uint64(len(s.reqs)), Success: answer == nil}
	if answer == errRefuse {
		return nil
	}
	return answer
}

func TestAppendInPartsChainsParts(t *testing.T) {
	args := &raft.AppendEntriesRequest{Term: 3, PrevLogEntry: 10, PrevLogTerm: 2, LeaderCommitIndex: 9,
		Entries: logsOfSizes(4, 4, 4, 4, 4)}
	var s sentParts
	var resp raft.AppendEntriesResponse
	if err := appendInParts(args, &resp, 8, s.send); err != nil {
		t.Fatal(err)
	}
	if len(s.reqs) != 3 {
		t.Fatalf("sent %d parts, want 3", len(s.reqs))
	}
	prev, prevTerm := uint64(10), uint64(2)
	for i, req := range s.reqs {
		if req.PrevLogEntry != prev || req.PrevLogTerm != prevTerm || req.Term != 3 || req.LeaderCommitIndex != 9 {
			t.Errorf("part %d follows %d/%d, term %d, commit %d; want it to follow %d/%d, term 3, commit 9",
				i, req.PrevLogEntry, req.PrevLogTerm, req.Term, req.LeaderCommitIndex, prev, prevTerm)
		}
		last := req.Entries[len(req.Entries)-1]
		prev, prevTerm = last.Index, last.Term
	}
	if !resp.Success || resp.LastLog != 3 {
		t.Errorf("response %+v, want the last part's", resp)
	}
	if len(args.Entries) != 5 || args.PrevLogEntry != 10 {
		t.Errorf("the request raft holds was changed: %+v", args)
	}
}

func TestAppendInPartsStopsAtFirstFailure(t *testing.T) {
	broken := errors.New("connection reset")
	tests := []struct {
		name    string
		answers []error
		sent    int
		err     error
	}{
		{"refused", []error{nil, errRefuse}, 2, nil},
		{"failed", []error{nil, broken}, 2, broken},
		{"first refused", []error{errRefuse}, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := &raft.AppendEntriesRequest{Term: 3, Entries: logsOfSizes(8, 8, 8)}
			s := sentParts{answers: tt.answers}
			var resp raft.AppendEntriesResponse
			err := appendInParts(args, &resp, 8, s.send)
			if !errors.Is(err, tt.err) || len(s.reqs) != tt.sent {
				t.Fatalf("error %v after %d parts, want %v after %d", err, len(s.reqs), tt.err, tt.sent)
			}
			if err == nil && (resp.Success || resp.LastLog != uint64(tt.sent)) {
				t.Errorf("response %+v, want the refusing part's", resp)
			}
		})
	}
}

// readBursts measures, on the connections a member accepts, the most bytes
// read between two writes: on a Raft connection, one request (and what
// the reader buffered of the next).
type readBursts struct {
	mu  sync.Mutex
	max int
}

func (b *readBursts) largest() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.max
}

type burstListener struct {
	net.Listener
	b *readBursts
}

func (l burstListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &burstConn{Conn: c, b: l.b}, nil
}

type burstConn struct {
	net.Conn
	b *readBursts
	n atomic.Int64 // read since the last write
}

func (c *burstConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	burst := int(c.n.Add(int64(n)))
	c.b.mu.Lock()
	c.b.max = max(c.b.max, burst)
	c.b.mu.Unlock()
	return n, err
}

func (c *burstConn) Write(p []byte) (int, error) {
	c.n.Store(0)
	return c.Conn.Write(p)
}

// A follower that catches up on entries it missed receives them in
// requests of at most MaxAppendBytes, where MaxAppendEntries alone would
// send them all in one.
func TestCatchUpRequestsAreBoundedByBytes(t *testing.T) {
	const (
		budget  = 1 << 20
		entry   = 192 << 10
		entries = 40 // 7.5 MiB, far below MaxAppendEntries
		// readAhead is what raft's reader may buffer of the next request
		// (its 256 KiB buffer), plus the requests' own framing.
		readAhead = 256<<10 + 64<<10
	)
	ms := startGroupWith(t, 3, func(_ int, cfg *Config) { cfg.MaxAppendBytes = budget })
	ld := leader(t, ms)
	f := (ld + 1) % len(ms)
	ms[f].close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	last := broadcastRandom(t, ctx, ms[ld].g, entries, entry)

	var bursts readBursts
	back := startMember(t, ms[f].cfg, burstListener{relisten(t, ms[f].cfg.Addr), &bursts})
	if _, err := back.g.WaitIndex(ctx, last); err != nil {
		t.Fatalf("the follower did not catch up to %d: %v", last, err)
	}
	if n := back.d.delivered(); n < entries {
		t.Fatalf("the follower delivered %d entries, want %d", n, entries)
	}
	if got := bursts.largest(); got > budget+readAhead {
		t.Fatalf("the follower read %d KiB in one request, more than MaxAppendBytes (%d KiB) and read-ahead", got>>10, budget>>10)
	}
}

func (d *memDeliverer) delivered() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.log)
}

// broadcastRandom broadcasts n entries of size random bytes, four at a
// time, and returns the highest index.
func broadcastRandom(t *testing.T, ctx context.Context, g *Group, n, size int) uint64 {
	t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		last uint64
		errs []error
		sem  = make(chan struct{}, 4)
	)
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			data := make([]byte, size)
			rand.Read(data)
			idx, err := g.Broadcast(ctx, data)
			mu.Lock()
			last, errs = max(last, idx), append(errs, err)
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return last
}

// recordingPipeline records the requests sent through it.
type recordingPipeline struct {
	raft.AppendPipeline
	reqs  []*raft.AppendEntriesRequest
	resps []*raft.AppendEntriesResponse
}

func (p *recordingPipeline) AppendEntries(req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	p.reqs, p.resps = append(p.reqs, req), append(p.resps, resp)
	return nil, nil
}

// A pipelined request is sent as parts too, each a request of the pipeline
// whose response raft consumes; the caller's response is the last part's.
func TestPipelineSendsParts(t *testing.T) {
	rec := &recordingPipeline{}
	p := boundedPipeline{AppendPipeline: rec, maxBytes: 8}
	args := &raft.AppendEntriesRequest{Term: 3, PrevLogEntry: 10, PrevLogTerm: 3, Entries: logsOfSizes(8, 8, 8)}
	resp := new(raft.AppendEntriesResponse)
	if _, err := p.AppendEntries(args, resp); err != nil {
		t.Fatal(err)
	}
	if len(rec.reqs) != 3 {
		t.Fatalf("sent %d parts, want 3", len(rec.reqs))
	}
	for i, req := range rec.reqs {
		if want := uint64(10 + i); req.PrevLogEntry != want || len(req.Entries) != 1 || req.Entries[0].Index != want+1 {
			t.Errorf("part %d follows %d with entry %d, want %d and %d", i, req.PrevLogEntry, req.Entries[0].Index, want, want+1)
		}
	}
	if rec.resps[2] != resp || rec.resps[0] == resp || rec.resps[0] == rec.resps[1] {
		t.Error("each part needs a response of its own, the last the caller's")
	}
}
