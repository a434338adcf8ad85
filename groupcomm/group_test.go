package groupcomm

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soheilhy/cmux"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memDeliverer keeps delivered entries in memory.
type memDeliverer struct {
	mu      sync.Mutex
	applied Position
	log     []Entry
	at      []time.Time // when each entry of log was delivered

	gate atomic.Pointer[chan struct{}] // if set, Deliver of entries waits until it is closed
}

func (d *memDeliverer) Deliver(entries []Entry, last Position) error {
	if g := d.gate.Load(); g != nil && len(entries) > 0 {
		<-*g
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range entries {
		if e.Index > d.applied.Index {
			d.log = append(d.log, Entry{Index: e.Index, Seqno: e.Seqno, Data: append([]byte(nil), e.Data...)})
			d.at = append(d.at, time.Now())
		}
	}
	if last.Index > d.applied.Index {
		d.applied = last
	}
	return nil
}

// deliveredAt returns when the entry at idx was delivered.
func (d *memDeliverer) deliveredAt(idx uint64) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := sort.Search(len(d.log), func(i int) bool { return d.log[i].Index >= idx })
	if i == len(d.log) || d.log[i].Index != idx {
		return time.Time{}, false
	}
	return d.at[i], true
}

func (d *memDeliverer) Applied() Position {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.applied
}

// holds reports whether data was delivered in the entry at log index idx.
func (d *memDeliverer) holds(idx uint64, data []byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.ContainsFunc(d.log, func(e Entry) bool { return e.Index == idx && bytes.Equal(e.Data, data) })
}

// batched counts the commands delivered in an entry with others.
func (d *memDeliverer) batched() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for i, e := range d.log {
		if (i > 0 && d.log[i-1].Index == e.Index) || (i+1 < len(d.log) && d.log[i+1].Index == e.Index) {
			n++
		}
	}
	return n
}

// seqnosInOrder checks the delivered commands' seqnos against Position's
// rule: one more for the next command of the same entry, and the distance
// in the log for the first command of a later entry.
func (d *memDeliverer) seqnosInOrder() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := 1; i < len(d.log); i++ {
		p, e := d.log[i-1], d.log[i]
		want := p.Seqno + 1
		if e.Index != p.Index {
			want = p.Seqno + e.Index - p.Index
		}
		if e.Index < p.Index || e.Seqno != want {
			return fmt.Errorf("command at %d has seqno %d after one at %d with %d", e.Index, e.Seqno, p.Index, p.Seqno)
		}
	}
	return nil
}

func (d *memDeliverer) entries() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b bytes.Buffer
	for _, e := range d.log {
		fmt.Fprintf(&b, "%d:%s ", e.Seqno, e.Data)
	}
	return b.String()
}

type memSnapshot struct {
	at  Position
	log []Entry
}

func (s memSnapshot) Index() uint64 { return s.at.Index }
func (s memSnapshot) Seqno() uint64 { return s.at.Seqno }
func (s memSnapshot) Release()      {}
func (s memSnapshot) WriteTo(w io.Writer) (int64, error) {
	return 0, gob.NewEncoder(w).Encode(struct {
		At  Position
		Log []Entry
	}{s.at, s.log})
}

func (d *memDeliverer) Snapshot() (Snapshot, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return memSnapshot{at: d.applied, log: append([]Entry(nil), d.log...)}, nil
}

func (d *memDeliverer) Restore(r io.Reader, _ uint64) error {
	var s struct {
		At  Position
		Log []Entry
	}
	if err := gob.NewDecoder(r).Decode(&s); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.applied, d.log, d.at = s.At, s.Log, make([]time.Time, len(s.Log))
	return nil
}

type member struct {
	cfg Config
	g   *Group
	d   *memDeliverer
	mux cmux.CMux
	ln  net.Listener
	wg  sync.WaitGroup

	closeOnce sync.Once
}

func (m *member) close() {
	m.closeOnce.Do(m.stop)
}

func (m *member) stop() {
	m.g.Close()
	m.mux.Close()
	m.ln.Close()
	m.wg.Wait()
}

func startGroup(t *testing.T, n int) []*member { return startGroupWith(t, n, nil) }

// startGroupWith starts n members; edit, if set, adjusts member i's
// configuration first. An arbitrator gets no Deliverer. Raft's timeouts are
// the defaults (1s): with shorter ones a busy machine deposes leaders in the
// middle of tests that rely on one staying.
func startGroupWith(t testing.TB, n int, edit func(i int, cfg *Config)) []*member {
	t.Helper()
	lns := make([]net.Listener, n)
	var peers []Peer
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		peers = append(peers, Peer{ID: fmt.Sprintf("m%d", i), Addr: ln.Addr().String()})
	}
	ms := make([]*member, n)
	for i := range ms {
		cfg := DefaultConfig()
		cfg.ID, cfg.Addr, cfg.Dir, cfg.Bootstrap = peers[i].ID, peers[i].Addr, t.TempDir(), peers
		cfg.Logger = zaptest.NewLogger(t).Named(cfg.ID)
		cfg.NotPrimaryTimeout = time.Second
		if edit != nil {
			edit(i, &cfg)
		}
		ms[i] = startMember(t, cfg, lns[i])
	}
	return ms
}

// startMember starts a member with cfg on ln, with a new, empty Deliverer
// unless it is an arbitrator: on a restart, raft restores it from the
// member's snapshot and log.
func startMember(t testing.TB, cfg Config, ln net.Listener) *member {
	t.Helper()
	m := &member{cfg: cfg, ln: ln, mux: cmux.New(ln)}
	var d Deliverer
	if !cfg.Arbitrator {
		m.d = &memDeliverer{}
		d = m.d
	}
	g, err := New(cfg, m.mux.Match(Match), d, func(err error) { t.Errorf("fatal: %v", err) })
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	m.g = g
	m.wg.Add(1)
	go func() { defer m.wg.Done(); m.mux.Serve() }()
	t.Cleanup(m.close)
	return m
}

// restart starts a member again on the address and directory of the
// stopped member m.
func restart(t *testing.T, m *member) *member {
	t.Helper()
	return startMember(t, m.cfg, relisten(t, m.cfg.Addr))
}

// relisten listens on addr again, once a stopped member has released it.
func relisten(t *testing.T, addr string) net.Listener {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			return ln
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // the port is released asynchronously
	}
}

func leader(t testing.TB, ms []*member) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i, m := range ms {
			if m.g.Status().RaftState == "Leader" {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no leader")
	return -1
}

// Every member delivers every entry in the same order, and Broadcast returns
// only once its entry is delivered on the calling member — on followers too.
func TestBroadcastTotalOrder(t *testing.T) {
	ms := startGroup(t, 3)
	leader(t, ms)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 90)
	for i, m := range ms {
		for j := 0; j < 30; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				data := []byte(fmt.Sprintf("m%d-%d", i, j))
				idx, err := m.g.Broadcast(ctx, data)
				if err == nil && !m.d.holds(idx, data) {
					err = fmt.Errorf("Broadcast returned index %d before delivering %s locally", idx, data)
				}
				errs <- err
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := ms[0].d.entries()
	deadline := time.Now().Add(10 * time.Second)
	for _, m := range ms[1:] {
		for m.d.entries() != want && time.Now().Before(deadline) {
			want = ms[0].d.entries()
			time.Sleep(10 * time.Millisecond)
		}
		if got := m.d.entries(); got != want {
			t.Fatalf("members delivered different logs:\n%s\n%s", want, got)
		}
	}
	if n := bytes.Count([]byte(want), []byte(" ")); n != 90 {
		t.Fatalf("delivered %d entries, want 90", n)
	}
	// 90 commands at once: the leader's group commit put some of them in
	// one entry, and they still have seqnos of their own, in order.
	if ms[0].d.batched() == 0 {
		t.Fatal("no entry carried more than one command")
	}
	if err := ms[0].d.seqnosInOrder(); err != nil {
		t.Fatal(err)
	}
}

// A member cut off from the majority answers ErrNotPrimary within its bound
// instead of hanging.
func TestNotPrimaryWithoutMajority(t *testing.T) {
	ms := startGroup(t, 3)
	ld := leader(t, ms)
	var alone *member
	for i, m := range ms {
		if i != ld && alone == nil {
			alone = m
			continue
		}
		m.close()
	}
	// A commit written into the forwarding stream as the leader closed it
	// has an unknown outcome; this test is about the commits after that.
	waitFor(t, "the stream to the closed leader to break", func() bool {
		alone.g.fwd.mu.Lock()
		defer alone.g.fwd.mu.Unlock()
		return alone.g.fwd.conns[ms[ld].cfg.Addr] == nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := alone.g.Broadcast(ctx, []byte("x"))
	if !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("Broadcast without a majority = %v, want ErrNotPrimary", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("ErrNotPrimary took %v", d)
	}
	// It refuses once it no longer counts itself primary, unless the last
	// append the leader sent before closing arrived after the call began.
	if alone.g.Status().Primary && alone.g.raft.LastContact().Before(start) {
		t.Fatalf("a member alone reports itself primary after refusing; last heard from a leader %v ago", alone.g.lastContact())
	}
	// Cut off for longer than NotPrimaryTimeout already, it refuses at once:
	// the bound counts from when it last heard from a leader.
	waitFor(t, "a not-primary timeout since the leader was heard", func() bool {
		return alone.g.lastContact() > alone.cfg.NotPrimaryTimeout
	})
	start = time.Now()
	if _, err := alone.g.Broadcast(ctx, []byte("y")); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("second Broadcast = %v, want ErrNotPrimary", err)
	}
	if d := time.Since(start); d >= alone.cfg.NotPrimaryTimeout {
		t.Fatalf("a member cut off for longer than %v took %v to refuse", alone.cfg.NotPrimaryTimeout, d)
	}
	if alone.g.Status().Primary {
		t.Fatal("a member alone reports itself primary")
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.ID, ok.Addr, ok.Dir = "a", "127.0.0.1:1", t.TempDir()
	cases := map[string]func(*Config){
		"no id":            func(c *Config) { c.ID = "" },
		"no dir":           func(c *Config) { c.Dir = "" },
		"lease > hb":       func(c *Config) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout },
		"self not listed":  func(c *Config) { c.Bootstrap = []Peer{{"b", "127.0.0.1:2"}} },
		"duplicate peer":   func(c *Config) { c.Bootstrap = []Peer{{"a", "127.0.0.1:1"}, {"a", "127.0.0.1:1"}} },
		"self elsewhere":   func(c *Config) { c.Bootstrap = []Peer{{"a", "127.0.0.1:9"}} },
		"zero max entries": func(c *Config) { c.MaxAppendEntries = 0 },
		"zero max bytes":   func(c *Config) { c.MaxAppendBytes = 0 },
		"zero in flight":   func(c *Config) { c.MaxAppendsInFlight = 0 },
		"no max pause":     func(c *Config) { c.FlowControlMaxPause = 0 },
		"preferred twice":  func(c *Config) { c.LeaderPreference = []string{"a", "b", "a"} },
		"preferred empty":  func(c *Config) { c.LeaderPreference = []string{""} },
	}
	for name, edit := range cases {
		c := ok
		edit(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	wan := WANConfig()
	wan.ID, wan.Addr, wan.Dir = ok.ID, ok.Addr, ok.Dir
	if err := wan.Validate(); err != nil {
		t.Fatalf("WANConfig: %v", err)
	}
}

// A read index must be reachable by the apply loop even when the log ends in
// raft's own no-op (a new leader's first entry), with nothing written.
func TestReadIndexWithoutWrites(t *testing.T) {
	ms := startGroup(t, 3)
	check := func(ms []*member) {
		t.Helper()
		for _, m := range ms {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			idx, err := m.g.ReadIndex(ctx)
			if err == nil {
				_, err = m.g.WaitIndex(ctx, idx)
			}
			cancel()
			if err != nil {
				t.Fatalf("%s: read index: %v (applied %d)", m.g.cfg.ID, err, m.g.Applied())
			}
		}
	}
	ld := leader(t, ms)
	check(ms)
	ms[ld].close()
	rest := append(append([]*member(nil), ms[:ld]...), ms[ld+1:]...)
	leader(t, rest)
	check(rest)
}

// An entry the leader's Admit refuses is never ordered, whoever sends it.
func TestAdmitRefusesForwardedGarbage(t *testing.T) {
	ms := startGroup(t, 3)
	ld := leader(t, ms)
	var mu sync.Mutex
	refused := map[string]bool{}
	for _, m := range ms {
		m.g.cfg.Admit = func(b []byte) error {
			if bytes.HasPrefix(b, []byte("bad")) {
				mu.Lock()
				defer mu.Unlock()
				refused[string(b)] = true
				return errors.New("bad entry")
			}
			return nil
		}
	}
	wasRefused := func(entry string) bool {
		mu.Lock()
		defer mu.Unlock()
		return refused[entry]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := ms[(ld+1)%3]
	// Turned away by every leader it asks, the follower gives up as a
	// member with no leader would: the entry was never appended.
	if _, err := f.g.Broadcast(ctx, []byte("bad local")); !errors.Is(err, ErrNotPrimary) || !wasRefused("bad local") {
		t.Fatalf("a follower's Broadcast of a refused entry: %v (Admit refused it: %v), want ErrNotPrimary", err, wasRefused("bad local"))
	}
	// Bypass the follower's own check, as a stranger on the port would.
	if _, err := f.g.fwd.forward(ctx, ms[ld].g.cfg.Addr, []byte("bad forwarded")); !errors.Is(err, ErrNotLeader) || !wasRefused("bad forwarded") {
		t.Fatalf("forwarding a refused entry: %v (Admit refused it: %v), want ErrNotLeader", err, wasRefused("bad forwarded"))
	}
	if _, err := f.g.Broadcast(ctx, []byte("good")); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if strings.Contains(m.d.entries(), "bad") {
			t.Fatalf("%s delivered a refused entry: %s", m.g.cfg.ID, m.d.entries())
		}
	}
}
