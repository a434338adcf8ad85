package groupcomm

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// Flow control (Galera's gcs.fc_limit). A commit waits for a majority, not
// for every member to apply it, so a member that applies slowly (a slow
// disk, a slow link, a busy machine) would fall further and further
// behind while the others commit: its reads go stale, and a member that
// falls behind the log's retention needs a state transfer.
//
// The leader asks every voter that keeps data for its applied index, every
// fcInterval. When a voter's backlog (the leader's last log index less
// what the voter applied) passes Config.FlowControlLimit entries, the
// leader stops handing new entries to Raft: commits queue (and their
// callers may give up: a queued command was never sent) until every such
// backlog is down to half the limit. Commits go on at the pace of the
// slowest member, as in Galera.
//
// A member counts only once it has been within half the limit (caught up),
// and stops counting when it has not answered for fcFresh, so a member
// that restarts, joins or comes back from a partition with a large backlog
// does not stop the cluster while it catches up. A member that keeps commits paused longer than
// Config.FlowControlMaxPause is reported (a warning, and Status.Lagging)
// and no longer counts until it has caught up again: one sick member does
// not stop the cluster for good, and it is not silently stale either.
const fcInterval = 100 * time.Millisecond

// flowControl is the leader's flow control. Its state is read by the
// appender and Status; run owns the decisions.
type flowControl struct {
	g        *Group
	limit    uint64
	maxPause time.Duration

	mu      sync.Mutex
	resumed chan struct{} // closed while commits flow; open while paused
	by      string        // the member whose backlog paused commits
	backlog uint64        // its backlog when last heard
	since   time.Time     // paused since
	lagging []string      // members released after pausing too long
	total   time.Duration // paused so far, before since
	counted []string      // the members that count: caught up since this member leads

	isPaused atomic.Bool
}

func newFlowControl(g *Group) *flowControl {
	open := make(chan struct{})
	close(open)
	return &flowControl{g: g, limit: g.cfg.FlowControlLimit, maxPause: g.cfg.FlowControlMaxPause, resumed: open}
}

// wait returns once commits may flow, or closing is closed.
func (f *flowControl) wait(closing <-chan struct{}) {
	f.mu.Lock()
	ch := f.resumed
	f.mu.Unlock()
	select {
	case <-ch:
	case <-closing:
	}
}

// paused reports whether commits are held back now.
func (f *flowControl) paused() bool { return f.isPaused.Load() }

// FlowControl is the state of a leader's flow control.
type FlowControl struct {
	// PausedBy is the member whose backlog holds commits back now, and
	// Backlog its backlog in log entries; empty when commits flow.
	PausedBy string
	Backlog  uint64
	// Paused is how long commits were held back since this member started.
	Paused time.Duration
	// Lagging are the members that held commits back longer than
	// FlowControlMaxPause; commits no longer wait for them until they
	// catch up.
	Lagging []string
}

func (f *flowControl) state(now time.Time) FlowControl {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := FlowControl{Paused: f.total, Lagging: slices.Clone(f.lagging)}
	if f.by != "" {
		st.PausedBy, st.Backlog, st.Paused = f.by, f.backlog, f.total+now.Sub(f.since)
	}
	return st
}

// set pauses commits for member by, backlog entries behind, or, with by
// empty, lets them flow.
func (f *flowControl) set(by string, backlog uint64, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case by != "" && f.by == "":
		f.resumed, f.since = make(chan struct{}), now
		f.g.lg.Debug("flow control: commits paused", zap.String("member", by), zap.Uint64("backlog", backlog))
	case by == "" && f.by != "":
		close(f.resumed)
		f.total += now.Sub(f.since)
		f.g.lg.Debug("flow control: commits resumed", zap.Duration("paused", now.Sub(f.since)))
	}
	f.by, f.backlog = by, backlog
	f.isPaused.Store(by != "")
}

// run decides, every fcInterval, until the group closes.
func (f *flowControl) run() {
	t := time.NewTicker(fcInterval)
	defer t.Stop()
	held := map[string]time.Duration{} // in the current pause, by member
	prev := time.Now()
	for {
		select {
		case <-f.g.closing:
			f.set("", 0, time.Now())
			return
		case <-t.C:
		}
		now := time.Now()
		var ms []Member
		err := ErrNotLeader
		if f.g.raft.State() == raft.Leader {
			ms, err = f.g.Members()
		}
		if err != nil {
			f.set("", 0, now)
			f.mu.Lock()
			f.lagging, f.counted = nil, nil
			f.mu.Unlock()
			continue
		}
		by, backlog := f.worst(ms, f.g.peers.answers(now))
		if f.paused() {
			held[f.holder()] += now.Sub(prev)
		} else {
			clear(held)
		}
		prev = now
		switch {
		case by == "" || backlog <= f.limit/2 || backlog <= f.limit && !f.paused():
			f.set("", 0, now)
		case held[by] > f.maxPause:
			f.release(by)
			f.g.lg.Warn("flow control: a member has been too far behind for too long; commits no longer wait for it until it catches up",
				zap.String("member", by), zap.Uint64("backlog", backlog), zap.Duration("held", held[by]))
			delete(held, by)
			f.set("", 0, now)
		default:
			f.set(by, backlog, now)
		}
	}
}

// reason says who holds commits back, for an error.
func (f *flowControl) reason() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.by == "" {
		return "no member holds them back now"
	}
	return fmt.Sprintf("%s is %d log entries behind (limit %d)", f.by, f.backlog, f.limit)
}

// holder is the member whose backlog holds commits back now.
func (f *flowControl) holder() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.by
}

// release stops counting member id and reports it lagging.
func (f *flowControl) release(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counted = slices.DeleteFunc(f.counted, func(c string) bool { return c == id })
	if !slices.Contains(f.lagging, id) {
		f.lagging = append(f.lagging, id)
	}
}

// counts reports whether member id's backlog can hold commits back.
func (f *flowControl) counts(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.counted, id)
}

// worst returns, of the voters in ms that keep data, the one with the
// largest backlog among those that count, given the members' latest
// answers (this member's own among them). A member within half the limit
// counts from then on (and is no longer lagging); one without a fresh
// answer, or no longer a voter, no longer counts, so that it must catch up
// again first; members no longer in ms are forgotten.
func (f *flowControl) worst(ms []Member, answers map[string]answer) (string, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := func(id string) bool { return slices.ContainsFunc(ms, func(m Member) bool { return m.ID == id }) }
	voter := func(id string) bool {
		return slices.ContainsFunc(ms, func(m Member) bool { return m.ID == id && m.Voter })
	}
	f.lagging = slices.DeleteFunc(f.lagging, func(id string) bool { return !in(id) })
	f.counted = slices.DeleteFunc(f.counted, func(id string) bool { _, ok := answers[id]; return !ok || !voter(id) })
	var by string
	var worst uint64
	for _, m := range ms {
		a, ok := answers[m.ID]
		if !ok || a.Arbitrator || !m.Voter {
			continue
		}
		backlog := a.backlog()
		if backlog <= f.limit/2 && !slices.Contains(f.counted, m.ID) {
			f.counted = append(f.counted, m.ID)
			f.lagging = slices.DeleteFunc(f.lagging, func(id string) bool { return id == m.ID })
		}
		if slices.Contains(f.counted, m.ID) && (by == "" || backlog > worst) {
			by, worst = m.ID, backlog
		}
	}
	return by, worst
}

// fcFresh is how old an answer may be and still count.
const fcFresh = time.Second

// pollers ask each other member what it says of itself (PeerState) every
// fcInterval while this member leads, each on its own, so that a member
// that does not answer does not slow the questions to the others; the
// latest answer of each is kept. Flow control, the leadership preference
// and leadership that follows the writes read them.
type pollers struct {
	g    *Group
	mu   sync.Mutex
	last map[string]answer             // by member id
	live map[Member]context.CancelFunc // by member id and address
	wg   sync.WaitGroup
}

// answer is what a member last said of itself, with this member's last log
// index when it asked: the member's backlog is measured against that, not
// against entries appended since, which the answer could not cover.
type answer struct {
	PeerState
	asked uint64    // this member's last log index when it asked
	at    time.Time // when the answer came
}

// backlog is how many entries the member had still to apply.
func (a answer) backlog() uint64 { return a.asked - min(a.Applied, a.asked) }

// caughtUp reports whether the member had applied within lag entries.
func (a answer) caughtUp(lag uint64) bool { return a.backlog() <= lag }

func newPollers(g *Group) *pollers {
	return &pollers{g: g, last: map[string]answer{}, live: map[Member]context.CancelFunc{}}
}

// sync runs a poller for each member of ms other than this one, and stops
// the others, forgetting their answers.
func (p *pollers) sync(ms []Member) {
	want := map[Member]bool{}
	for _, m := range ms {
		if m.ID != p.g.cfg.ID && m.Addr != "" {
			want[Member{ID: m.ID, Addr: m.Addr}] = true
		}
	}
	for m, cancel := range p.live {
		if !want[m] {
			cancel()
			delete(p.live, m)
			p.mu.Lock()
			delete(p.last, m.ID)
			p.mu.Unlock()
		}
	}
	for m := range want {
		if _, ok := p.live[m]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(p.g.ctx)
		p.live[m] = cancel
		p.wg.Go(func() { p.poll(ctx, m) })
	}
}

// poll asks m until ctx ends. It logs when m has not answered for fcFresh
// (it no longer counts), and when it answers again.
func (p *pollers) poll(ctx context.Context, m Member) {
	t := time.NewTicker(fcInterval)
	defer t.Stop()
	answering, lastOK := true, time.Now()
	for {
		asked := p.g.raft.LastIndex()
		ask, cancel := context.WithTimeout(ctx, fcFresh)
		st, err := p.g.cfg.Peers.Applied(ask, m)
		cancel()
		switch {
		case err == nil:
			lastOK = time.Now()
			p.mu.Lock()
			if ctx.Err() == nil { // sync may have stopped this poller and forgotten m
				p.last[m.ID] = answer{PeerState: st, asked: asked, at: lastOK}
			}
			p.mu.Unlock()
			if !answering {
				p.g.lg.Info("flow control: member answers again", zap.String("member", m.ID))
			}
			answering = true
		case ctx.Err() == nil && answering && time.Since(lastOK) >= fcFresh:
			p.g.lg.Warn("flow control: member does not answer; commits do not wait for it until it answers and catches up",
				zap.String("member", m.ID), zap.String("addr", m.Addr), zap.Error(err))
			answering = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// answers returns the answers younger than fcFresh at now, and this
// member's own.
func (p *pollers) answers(now time.Time) map[string]answer {
	out := map[string]answer{p.g.cfg.ID: {PeerState: p.g.selfState(), asked: p.g.raft.LastIndex(), at: now}}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, a := range p.last {
		if now.Sub(a.at) < fcFresh {
			out[id] = a
		}
	}
	return out
}

// run keeps a poller for every other member while this member leads, and
// none otherwise, until the group closes.
func (p *pollers) run() {
	t := time.NewTicker(fcInterval)
	defer t.Stop()
	defer p.wg.Wait()
	defer p.sync(nil)
	for {
		select {
		case <-p.g.closing:
			return
		case <-t.C:
		}
		var ms []Member
		if p.g.raft.State() == raft.Leader {
			ms, _ = p.g.Members()
		}
		p.sync(ms)
	}
}
