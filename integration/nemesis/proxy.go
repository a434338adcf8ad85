package nemesis

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/galenadb/galena/integration/harness"
)

const (
	// proxyDialTimeout bounds a proxy's dial of the member behind it.
	proxyDialTimeout = 2 * time.Second
	// proxyChunk is the most one read of a proxied connection takes.
	proxyChunk = 32 << 10
	// proxyQueue is how many chunks one direction of a connection holds
	// between reading and delivery (the in-flight window under Delay).
	proxyQueue = 64
	// defaultSeverAfter is Net's default sever timeout (see Net).
	defaultSeverAfter = 5 * time.Second
	// severPoll is how often the Net looks for connections to sever.
	severPoll = 100 * time.Millisecond
)

// Net is the network between the members of a cluster started by
// NewCluster. Every ordered pair of members (i, j), i != j, has a proxy of
// its own: a loopback listener that forwards to member j's address, and
// member i dials j through it (`galena start --peer-route`). On a connection
// through proxy (i, j), bytes from i to j travel on link (i, j) and the
// replies, from j to i, on link (j, i); each link is blocked or delayed on
// its own. Clients are not proxied: they reach members directly.
//
// Blocked bytes are dropped, not held, as in a partition: a chunk due for
// delivery while its link is blocked is discarded. A byte stream with a gap
// in it is useless, so a direction that lost bytes drops everything after
// them too, and its connection is closed when the network heals or once it
// has lost bytes for SeverAfter (a sender's TCP timeout), whichever is first;
// the member redials. A connection opened on a blocked link is accepted and
// swallows what it is sent without ever reaching the member behind it. So a
// blocked link carries no Raft traffic at all: a leader cut off from the
// majority gets no acknowledgements and steps down.
//
// Net's methods are safe for concurrent use; like a slice index, they panic
// on a member out of range or a link from a member to itself. It owns every
// proxy goroutine and stops them in Close, which the cluster's cleanup calls.
type Net struct {
	n          int
	targets    []string // member addresses
	severAfter time.Duration
	proxies    []*proxy // index from*n+to; nil where from == to
	stats      []linkCounters

	mu      sync.Mutex
	links   []link // index from*n+to
	conns   map[*pconn]struct{}
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup
}

// link is the state of one direction between two members.
type link struct {
	blocked bool
	delay   time.Duration
	base    time.Duration // the delay Heal leaves (BaseDelay)
}

type linkCounters struct {
	conns, bytes, dropped, delayed, severed atomic.Int64
}

// LinkStats count what one link did since the Net started.
type LinkStats struct {
	Conns   int64 // connections from dialled through to's proxy
	Bytes   int64 // bytes delivered from → to
	Dropped int64 // bytes dropped from → to
	Delayed int64 // bytes delivered from → to later than read, by Delay
	Severed int64 // connections from opened to to that the Net closed
}

// add returns the sum of s and o.
func (s LinkStats) add(o LinkStats) LinkStats {
	return LinkStats{Conns: s.Conns + o.Conns, Bytes: s.Bytes + o.Bytes, Dropped: s.Dropped + o.Dropped,
		Delayed: s.Delayed + o.Delayed, Severed: s.Severed + o.Severed}
}

// Sub returns s less o: what a link did between two readings.
func (s LinkStats) Sub(o LinkStats) LinkStats {
	return LinkStats{Conns: s.Conns - o.Conns, Bytes: s.Bytes - o.Bytes, Dropped: s.Dropped - o.Dropped,
		Delayed: s.Delayed - o.Delayed, Severed: s.Severed - o.Severed}
}

// NewCluster starts a cluster as harness.NewCluster does, whose
// members reach each other only through the proxies of the Net it returns:
// member i of the cluster is member i of the Net. opts.Network is replaced.
// A connection that lost bytes to a blocked link lives on for severAfter
// (<= 0: defaultSeverAfter) before the Net closes it, as a sender's TCP
// timeout would; make it long to model a partition that never resets a
// connection.
func NewCluster(t testing.TB, opts harness.Options, severAfter time.Duration) (*harness.Cluster, *Net) {
	t.Helper()
	var nw *Net
	opts.Network = func(addrs []string) (harness.Router, error) {
		var err error
		if nw, err = newNet(addrs, severAfter); err != nil {
			return nil, err // not a nil *Net in a Router
		}
		return nw, nil
	}
	return harness.NewCluster(t, opts), nw
}

// newNet starts a proxy for every ordered pair of the members at targets
// (their addresses, in member order). severAfter <= 0 means
// defaultSeverAfter. Close it when done.
func newNet(targets []string, severAfter time.Duration) (*Net, error) {
	if severAfter <= 0 {
		severAfter = defaultSeverAfter
	}
	n := len(targets)
	nw := &Net{
		n: n, targets: append([]string(nil), targets...), severAfter: severAfter,
		proxies: make([]*proxy, n*n), stats: make([]linkCounters, n*n), links: make([]link, n*n),
		conns: make(map[*pconn]struct{}), closing: make(chan struct{}),
	}
	for from := range n {
		for to := range n {
			if from == to {
				continue
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				nw.Close()
				return nil, fmt.Errorf("nemesis: proxy %d→%d: %w", from, to, err)
			}
			p := &proxy{nw: nw, from: from, to: to, ln: ln}
			nw.proxies[from*n+to] = p
			nw.goTracked(p.serve)
		}
	}
	nw.goTracked(nw.severLoop)
	return nw, nil
}

// proxyAddr is the address member from dials to reach member to.
func (nw *Net) proxyAddr(from, to int) string {
	return nw.proxy(from, to).ln.Addr().String()
}

// PeerRoute is member i's --peer-route value: every other member's address
// mapped to i's proxy for it.
func (nw *Net) PeerRoute(i int) string {
	var parts []string
	for j, addr := range nw.targets {
		if j != i {
			parts = append(parts, addr+"="+nw.proxyAddr(i, j))
		}
	}
	return strings.Join(parts, ",")
}

// block stops the traffic from member from to member to: bytes in flight and
// later ones are dropped until Heal.
func (nw *Net) block(from, to int) {
	nw.set(from, to, func(l *link) { l.blocked = true })
}

// oneWay is block: from's traffic no longer reaches to, while to's still
// reaches from.
func (nw *Net) oneWay(from, to int) { nw.block(from, to) }

// Isolate cuts member i off from every other member, both ways.
func (nw *Net) Isolate(i int) {
	var rest []int
	for j := range nw.n {
		if j != i {
			rest = append(rest, j)
		}
	}
	nw.split([]int{i}, rest)
}

// Cut blocks the links between members a and b, both ways, until Heal, and
// leaves every other link alone: while both still reach a third member,
// the network is not transitive (as bridge makes it).
func (nw *Net) Cut(a, b int) {
	nw.block(a, b)
	nw.block(b, a)
}

// split partitions the members into groups: every link between members of
// different groups is blocked both ways. A member in no group is a group of
// its own.
func (nw *Net) split(groups ...[]int) {
	group := make([]int, nw.n)
	for i := range group {
		group[i] = -1 - i // alone unless listed
	}
	for g, members := range groups {
		for _, i := range members {
			nw.check(i)
			group[i] = g
		}
	}
	nw.mu.Lock()
	defer nw.mu.Unlock()
	for from := range nw.n {
		for to := range nw.n {
			if from != to && group[from] != group[to] {
				nw.links[from*nw.n+to].blocked = true
			}
		}
	}
}

// bridge connects each member of chain to its neighbours in chain and cuts
// it off from the others in chain, both ways: bridge(0, 1, 2) keeps 0↔1 and
// 1↔2 and blocks 0↔2, a non-transitive network in which 1 sees everyone.
// Links to members outside chain are left alone.
func (nw *Net) bridge(chain ...int) {
	pos := make(map[int]int, len(chain))
	for k, i := range chain {
		nw.check(i)
		pos[i] = k
	}
	nw.mu.Lock()
	defer nw.mu.Unlock()
	for a, pa := range pos {
		for b, pb := range pos {
			if a != b && pa-pb != 1 && pb-pa != 1 {
				nw.links[a*nw.n+b].blocked = true
			}
		}
	}
}

// Delay adds d of latency to every chunk of traffic from member from to
// member to; chunks in flight keep their order. Zero removes it.
func (nw *Net) Delay(from, to int, d time.Duration) {
	nw.set(from, to, func(l *link) { l.delay = d })
}

// BaseDelay gives the link from member from to member to a delay d that
// stays: Delay changes it only until Heal, which puts d back (members in
// different regions). Its chunks count as delayed in LinkStats.
func (nw *Net) BaseDelay(from, to int, d time.Duration) {
	nw.set(from, to, func(l *link) { l.base, l.delay = d, d })
}

// Heal unblocks every link and takes every delay back to its base delay
// (none unless BaseDelay), and closes the connections that lost bytes while
// blocked (their peers redial).
func (nw *Net) Heal() {
	nw.mu.Lock()
	for i, l := range nw.links {
		nw.links[i] = link{delay: l.base, base: l.base}
	}
	var lossy []*pconn
	for pc := range nw.conns {
		if pc.lostAt() != 0 {
			lossy = append(lossy, pc)
		}
	}
	nw.mu.Unlock()
	for _, pc := range lossy {
		pc.sever()
	}
}

// blocked reports whether traffic from member from to member to is blocked.
func (nw *Net) blocked(from, to int) bool { return nw.get(from, to).blocked }

// Stats reports what the link from member from to member to did.
func (nw *Net) Stats(from, to int) LinkStats {
	nw.proxy(from, to) // checks the pair
	c := &nw.stats[from*nw.n+to]
	return LinkStats{Conns: c.conns.Load(), Bytes: c.bytes.Load(), Dropped: c.dropped.Load(),
		Delayed: c.delayed.Load(), Severed: c.severed.Load()}
}

// String describes the links that are not healthy, e.g. "0→1 blocked,
// 2→0 +50ms", or "healthy".
func (nw *Net) String() string {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	var parts []string
	for from := range nw.n {
		for to := range nw.n {
			switch l := nw.links[from*nw.n+to]; {
			case l.blocked:
				parts = append(parts, fmt.Sprintf("%d→%d blocked", from, to))
			case l.delay > 0:
				parts = append(parts, fmt.Sprintf("%d→%d +%v", from, to, l.delay))
			}
		}
	}
	if len(parts) == 0 {
		return "healthy"
	}
	return strings.Join(parts, ", ")
}

// Close stops every proxy and closes every connection through them, and
// returns once their goroutines have exited. It is idempotent.
func (nw *Net) Close() {
	nw.mu.Lock()
	if nw.closed {
		nw.mu.Unlock()
		nw.wg.Wait()
		return
	}
	nw.closed = true
	close(nw.closing)
	conns := make([]*pconn, 0, len(nw.conns))
	for pc := range nw.conns {
		conns = append(conns, pc)
	}
	nw.mu.Unlock()
	for _, p := range nw.proxies {
		if p != nil {
			p.ln.Close()
		}
	}
	for _, pc := range conns {
		pc.close()
	}
	nw.wg.Wait()
}

func (nw *Net) check(i int) {
	if i < 0 || i >= nw.n {
		panic(fmt.Sprintf("nemesis: member %d of a %d-member network", i, nw.n))
	}
}

func (nw *Net) proxy(from, to int) *proxy {
	nw.check(from)
	nw.check(to)
	if from == to {
		panic(fmt.Sprintf("nemesis: no link from member %d to itself", from))
	}
	return nw.proxies[from*nw.n+to]
}

func (nw *Net) set(from, to int, fn func(*link)) {
	nw.proxy(from, to)
	nw.mu.Lock()
	defer nw.mu.Unlock()
	fn(&nw.links[from*nw.n+to])
}

func (nw *Net) get(from, to int) link {
	nw.proxy(from, to)
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return nw.links[from*nw.n+to]
}

// goTracked runs fn on a goroutine Close waits for; false once closed.
func (nw *Net) goTracked(fn func()) bool {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.closed {
		return false
	}
	nw.wg.Add(1)
	go func() {
		defer nw.wg.Done()
		fn()
	}()
	return true
}

// severLoop closes connections that have lost bytes for severAfter.
func (nw *Net) severLoop() {
	t := time.NewTicker(severPoll)
	defer t.Stop()
	for {
		select {
		case <-nw.closing:
			return
		case now := <-t.C:
			for _, pc := range nw.lossySince(now.Add(-nw.severAfter)) {
				pc.sever()
			}
		}
	}
}

func (nw *Net) lossySince(before time.Time) []*pconn {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	var old []*pconn
	for pc := range nw.conns {
		if at := pc.lostAt(); at != 0 && at <= before.UnixNano() {
			old = append(old, pc)
		}
	}
	return old
}

// admit reports whether a chunk of pc in direction dir (from → to) may be
// delivered: not if the link is blocked, which marks the direction lost, nor
// if it already lost bytes. Heal sees every mark made before it.
func (nw *Net) admit(pc *pconn, from, to, dir int) bool {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	switch {
	case pc.dirLost[dir].Load():
		return false
	case nw.links[from*nw.n+to].blocked:
		pc.markLost(dir)
		return false
	}
	return true
}

// register adds pc to the open connections; false once closed.
func (nw *Net) register(pc *pconn) bool {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.closed {
		return false
	}
	nw.conns[pc] = struct{}{}
	return true
}

func (nw *Net) unregister(pc *pconn) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	delete(nw.conns, pc)
}

// proxy forwards the connections member from opens to member to.
type proxy struct {
	nw       *Net
	from, to int
	ln       net.Listener
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.nw.stats[p.from*p.nw.n+p.to].conns.Add(1)
		pc := &pconn{p: p, down: c, done: make(chan struct{})}
		if !p.nw.register(pc) || !p.nw.goTracked(pc.run) {
			pc.close()
		}
	}
}

// pconn is one connection through a proxy: down is the dialling member's
// side, up the dialled member's.
type pconn struct {
	p    *proxy
	down net.Conn

	mu     sync.Mutex
	up     net.Conn // set by run before the pipes start
	closed bool

	lost      atomic.Int64   // UnixNano of the first dropped byte; 0 if none
	dirLost   [2]atomic.Bool // per direction: 0 from→to, 1 to→from
	severOnce sync.Once
	closeOnce sync.Once
	done      chan struct{}
}

// run connects to the member behind the proxy and pumps both ways; on a
// blocked link it swallows what it is sent instead.
func (pc *pconn) run() {
	p := pc.p
	if !p.nw.admit(pc, p.from, p.to, 0) {
		pc.discard()
		return
	}
	up, err := net.DialTimeout("tcp", p.nw.targets[p.to], proxyDialTimeout)
	if err != nil {
		pc.close() // as if refused: the member is down
		return
	}
	pc.mu.Lock()
	closed := pc.closed
	if !closed {
		pc.up = up
	}
	pc.mu.Unlock()
	if closed {
		up.Close()
		return
	}
	if !p.nw.goTracked(func() { pc.pipe(up, pc.down, p.to, p.from, 1) }) {
		pc.close()
		return
	}
	pc.pipe(pc.down, up, p.from, p.to, 0)
}

// discard reads and drops everything the dialling member sends.
func (pc *pconn) discard() {
	defer pc.close()
	buf := make([]byte, proxyChunk)
	for {
		n, err := pc.down.Read(buf)
		pc.p.nw.stats[pc.p.from*pc.p.nw.n+pc.p.to].dropped.Add(int64(n))
		if err != nil {
			return
		}
	}
}

type chunk struct {
	data    []byte
	due     time.Time
	delayed bool // the link had a Delay when the chunk was read
}

// pipe reads src and hands each chunk, stamped with its delivery time, to a
// goroutine that delivers it to dst.
func (pc *pconn) pipe(src, dst net.Conn, from, to, dir int) {
	q := make(chan chunk, proxyQueue)
	if !pc.p.nw.goTracked(func() { pc.deliver(q, dst, from, to, dir) }) {
		pc.close()
		return
	}
	defer close(q) // deliver drains q, then closes the connection
	buf := make([]byte, proxyChunk)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			d := pc.p.nw.get(from, to).delay
			c := chunk{data: bytes.Clone(buf[:n]), due: time.Now().Add(d), delayed: d > 0}
			select {
			case q <- c:
			case <-pc.done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// deliver writes each chunk to dst at its due time, unless the link is then
// blocked or this direction already lost bytes.
func (pc *pconn) deliver(q <-chan chunk, dst net.Conn, from, to, dir int) {
	defer pc.close()
	st := &pc.p.nw.stats[from*pc.p.nw.n+to]
	timer := time.NewTimer(0)
	defer timer.Stop()
	for c := range q {
		if wait := time.Until(c.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-pc.done:
				return
			}
		}
		if !pc.p.nw.admit(pc, from, to, dir) {
			st.dropped.Add(int64(len(c.data)))
			continue
		}
		st.bytes.Add(int64(len(c.data))) // before the peer can see them
		if c.delayed {
			st.delayed.Add(int64(len(c.data)))
		}
		if _, err := dst.Write(c.data); err != nil {
			return
		}
	}
}

func (pc *pconn) markLost(dir int) {
	pc.dirLost[dir].Store(true)
	pc.lost.CompareAndSwap(0, time.Now().UnixNano())
}

func (pc *pconn) lostAt() int64 { return pc.lost.Load() }

// sever closes a connection that lost bytes, counting it once.
func (pc *pconn) sever() {
	pc.severOnce.Do(func() {
		pc.p.nw.stats[pc.p.from*pc.p.nw.n+pc.p.to].severed.Add(1)
		pc.close()
	})
}

// close closes both sides, which ends every goroutine of the connection.
// It is idempotent.
func (pc *pconn) close() {
	pc.closeOnce.Do(func() {
		pc.mu.Lock()
		pc.closed = true
		up := pc.up
		pc.mu.Unlock()
		close(pc.done)
		pc.down.Close()
		if up != nil {
			up.Close()
		}
		pc.p.nw.unregister(pc)
	})
}
