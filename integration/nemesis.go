package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// Kind names a kind of fault a Nemesis injects. Each has a start (Inject)
// and a heal (Fault.Heal).
type Kind string

// The kinds of fault. The network kinds need a cluster started with
// Options.Proxy; their heal is Net.Heal, which heals the whole network.
const (
	KindKill          Kind = "kill"           // SIGKILL a random member; heal: start it again
	KindLeader        Kind = "leader"         // SIGKILL the leader; heal: start it again
	KindCrashAll      Kind = "crash-all"      // SIGKILL every member at once; heal: start them all
	KindPause         Kind = "pause"          // SIGSTOP a random member; heal: SIGCONT
	KindIsolateLeader Kind = "isolate-leader" // cut the leader off both ways
	KindSplit         Kind = "split"          // cut a random minority off from the majority
	KindBridge        Kind = "bridge"         // random chain: each member sees only its neighbours
	KindOneWay        Kind = "one-way"        // a random member is mute (sends nothing) or deaf (receives nothing)
	KindLatency       Kind = "latency"        // 20–100ms on every link, or on one member's links
)

var (
	// AllKinds is every kind, what "all" stands for in ParseKinds.
	AllKinds = []Kind{KindKill, KindLeader, KindCrashAll, KindPause,
		KindIsolateLeader, KindSplit, KindBridge, KindOneWay, KindLatency}
	// PartitionKinds are what "partition" stands for in ParseKinds.
	PartitionKinds = []Kind{KindIsolateLeader, KindSplit, KindBridge, KindOneWay}
)

// network reports whether faults of kind k act on the Net.
func (k Kind) network() bool {
	return k == KindLatency || slices.Contains(PartitionKinds, k)
}

// ParseKinds parses a comma-separated mix of kinds, such as
// "kill,partition,pause,crash-all,latency,leader": kind names, "partition"
// for PartitionKinds and "all" for AllKinds. Each kind is listed once.
func ParseKinds(s string) ([]Kind, error) {
	var kinds []Kind
	add := func(ks ...Kind) {
		for _, k := range ks {
			if !slices.Contains(kinds, k) {
				kinds = append(kinds, k)
			}
		}
	}
	for _, name := range strings.Split(s, ",") {
		switch k := Kind(strings.TrimSpace(name)); {
		case k == "all":
			add(AllKinds...)
		case k == "partition":
			add(PartitionKinds...)
		case slices.Contains(AllKinds, k):
			add(k)
		default:
			return nil, fmt.Errorf("integration: unknown fault kind %q (want all, partition or one of %v)", k, AllKinds)
		}
	}
	return kinds, nil
}

// Nemesis injects faults into one cluster. Its methods are safe for
// concurrent use, with each other and with client workloads, but faults are
// meant to be injected one at a time: a network fault's heal heals the whole
// network, and a fault that needs the leader waits for one.
type Nemesis struct {
	c  *Cluster
	mu sync.Mutex // guards rng
	rg *rand.Rand
}

// NewNemesis returns a Nemesis for c whose random choices follow seed.
func NewNemesis(c *Cluster, seed uint64) *Nemesis {
	return &Nemesis{c: c, rg: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Fault is an injected fault.
type Fault struct {
	Kind   Kind
	Detail string // what was done, e.g. "killed n2"

	heal    func() error
	once    sync.Once
	healErr error
}

// Heal undoes the fault; later calls return the first call's result.
func (f *Fault) Heal() error {
	f.once.Do(func() { f.healErr = f.heal() })
	return f.healErr
}

// Inject starts a fault of kind k and returns it. On error nothing is left
// to heal, except that a failed crash-all may have killed some members
// (Cluster.HealAll restarts them).
func (n *Nemesis) Inject(k Kind) (*Fault, error) {
	if k.network() && n.c.net == nil {
		return nil, fmt.Errorf("integration: %s needs a cluster started with Options.Proxy", k)
	}
	switch k {
	case KindKill:
		return n.kill(k, n.pick(n.running()))
	case KindLeader:
		ld, err := n.c.Leader()
		if err != nil {
			return nil, err
		}
		return n.kill(k, ld)
	case KindCrashAll:
		return n.crashAll()
	case KindPause:
		return n.pause(n.pick(n.live()))
	case KindIsolateLeader:
		ld, err := n.c.Leader()
		if err != nil {
			return nil, err
		}
		n.c.net.Isolate(ld)
		return n.netFault(k, "isolated leader %s", n.c.ID(ld)), nil
	case KindSplit:
		return n.split(), nil
	case KindBridge:
		chain := n.perm()
		n.c.net.Bridge(chain...)
		return n.netFault(k, "bridge %s", strings.Join(n.c.ids(chain), "-")), nil
	case KindOneWay:
		return n.oneWay(), nil
	case KindLatency:
		return n.latency(), nil
	}
	return nil, fmt.Errorf("integration: unknown fault kind %q", k)
}

func (n *Nemesis) kill(k Kind, i int) (*Fault, error) {
	if i < 0 {
		return nil, errors.New("integration: no member is running")
	}
	if err := n.c.Kill(i); err != nil {
		return nil, err
	}
	return &Fault{Kind: k, Detail: "killed " + n.c.ID(i), heal: func() error { return n.c.startIfDown(i) }}, nil
}

// crashAll kills every member at once, as a power cut would.
func (n *Nemesis) crashAll() (*Fault, error) {
	if err := n.c.each(n.c.Kill); err != nil {
		return nil, err
	}
	heal := func() error { return n.c.each(n.c.startIfDown) }
	return &Fault{Kind: KindCrashAll, Detail: "killed every member", heal: heal}, nil
}

func (n *Nemesis) pause(i int) (*Fault, error) {
	if i < 0 {
		return nil, errors.New("integration: no member is running")
	}
	if err := n.c.Pause(i); err != nil {
		return nil, err
	}
	return &Fault{Kind: KindPause, Detail: "paused " + n.c.ID(i), heal: func() error { return n.c.Resume(i) }}, nil
}

// split cuts a random minority (at least one member) off from the rest.
func (n *Nemesis) split() *Fault {
	p := n.perm()
	k := 1 + n.intn((len(p)-1)/2)
	minority, majority := p[:k], p[k:]
	n.c.net.Split(minority, majority)
	return n.netFault(KindSplit, "split %v | %v", n.c.ids(minority), n.c.ids(majority))
}

// oneWay makes a random member mute (what it sends is dropped) or deaf
// (what it is sent is dropped).
func (n *Nemesis) oneWay() *Fault {
	x := n.intn(n.c.Size())
	mute := n.intn(2) == 0
	for j := range n.c.Size() {
		if j == x {
			continue
		}
		if mute {
			n.c.net.OneWay(x, j)
		} else {
			n.c.net.OneWay(j, x)
		}
	}
	if mute {
		return n.netFault(KindOneWay, "%s mute: its traffic to the others is dropped", n.c.ID(x))
	}
	return n.netFault(KindOneWay, "%s deaf: the others' traffic to it is dropped", n.c.ID(x))
}

// latency delays every link, or every link of one member, by 20–100ms.
func (n *Nemesis) latency() *Fault {
	d := time.Duration(20+n.intn(81)) * time.Millisecond
	x := -1 // every link
	if n.intn(2) == 0 {
		x = n.intn(n.c.Size())
	}
	for from := range n.c.Size() {
		for to := range n.c.Size() {
			if from != to && (x < 0 || from == x || to == x) {
				n.c.net.Delay(from, to, d)
			}
		}
	}
	if x < 0 {
		return n.netFault(KindLatency, "+%v on every link", d)
	}
	return n.netFault(KindLatency, "+%v on the links of %s", d, n.c.ID(x))
}

func (n *Nemesis) netFault(k Kind, format string, args ...any) *Fault {
	return &Fault{Kind: k, Detail: fmt.Sprintf(format, args...), heal: func() error {
		n.c.net.Heal()
		return nil
	}}
}

// running lists the running members; live, those that are also not paused.
func (n *Nemesis) running() []int { return n.c.filter(n.c.Running) }
func (n *Nemesis) live() []int    { return n.c.filter(n.c.live) }

// pick returns a random element of xs, or -1 when it is empty.
func (n *Nemesis) pick(xs []int) int {
	if len(xs) == 0 {
		return -1
	}
	return xs[n.intn(len(xs))]
}

func (n *Nemesis) intn(k int) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.rg.IntN(k)
}

// perm is a random order of every member.
func (n *Nemesis) perm() []int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.rg.Perm(n.c.Size())
}

func (n *Nemesis) duration(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return lo + time.Duration(n.rg.Int64N(int64(hi-lo)+1))
}

// HealAll undoes every fault: it heals the network (when proxied), resumes
// paused members, starts every member that is not running, and then waits
// until the cluster is ready (WaitReady).
func (c *Cluster) HealAll() error {
	if c.net != nil {
		c.net.Heal()
	}
	errs := []error{c.each(c.Resume), c.each(c.startIfDown)}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return c.WaitReady()
}

// startIfDown starts member i unless it is running.
func (c *Cluster) startIfDown(i int) error {
	m := c.members[i]
	m.op.Lock()
	defer m.op.Unlock()
	if p := m.current(); p != nil && !p.exited() {
		return nil
	}
	return c.start(m)
}

// each runs fn on every member at once and joins the errors.
func (c *Cluster) each(fn func(i int) error) error {
	errs := make([]error, c.Size())
	var wg sync.WaitGroup
	for i := range c.Size() {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// filter lists the members for which keep holds.
func (c *Cluster) filter(keep func(int) bool) []int {
	var idx []int
	for i := range c.Size() {
		if keep(i) {
			idx = append(idx, i)
		}
	}
	return idx
}

// Event is one fault of a Schedule's run.
type Event struct {
	Time   time.Time // when it was injected (or injecting it failed)
	Kind   Kind
	Detail string    // what was done
	Healed time.Time // when it was healed; zero if it never was
	Err    error     // why injecting or healing it failed
}

// describe describes e, its times relative to since.
func (e Event) describe(since time.Time) string {
	s := fmt.Sprintf("%6.1fs %-14s %s", e.Time.Sub(since).Seconds(), e.Kind, e.Detail)
	if !e.Healed.IsZero() {
		s += fmt.Sprintf(" (healed after %.1fs)", e.Healed.Sub(e.Time).Seconds())
	}
	if e.Err != nil {
		s += fmt.Sprintf(" ERROR: %v", e.Err)
	}
	return s
}

// Summary describes events, one per line, times relative to the first.
func Summary(events []Event) string {
	if len(events) == 0 {
		return "no faults"
	}
	lines := make([]string, len(events))
	for i, e := range events {
		lines[i] = e.describe(events[0].Time)
	}
	return strings.Join(lines, "\n")
}

// Schedule injects faults in a loop: pick a kind at random, inject it, wait
// a random FaultMin..FaultMax, heal it, wait a random QuietMin..QuietMax,
// and so on, until Duration has passed or ctx ends. Zero fields take the
// defaults listed.
type Schedule struct {
	Kinds              []Kind        // required; see ParseKinds
	Duration           time.Duration // 0: until ctx ends
	FaultMin, FaultMax time.Duration // default 1s and 3s
	QuietMin, QuietMax time.Duration // default 500ms and 1.5s
	// Logf, if set, is called with each event as it ends, e.g. t.Logf.
	Logf func(format string, args ...any)
}

func (s Schedule) withDefaults() Schedule {
	if s.FaultMin == 0 && s.FaultMax == 0 {
		s.FaultMin, s.FaultMax = time.Second, 3*time.Second
	}
	if s.QuietMin == 0 && s.QuietMax == 0 {
		s.QuietMin, s.QuietMax = 500*time.Millisecond, 1500*time.Millisecond
	}
	return s
}

// Run runs the schedule against n's cluster and returns every event, with
// the errors of the faults that could not be injected or healed. The fault
// active when time runs out is healed before Run returns; Cluster.HealAll
// then undoes anything left (a failed heal). Run is safe to call while
// clients use the cluster.
func (s Schedule) Run(ctx context.Context, n *Nemesis) ([]Event, error) {
	s = s.withDefaults()
	if len(s.Kinds) == 0 {
		return nil, errors.New("integration: schedule: no fault kinds")
	}
	for _, k := range s.Kinds {
		if k.network() && n.c.net == nil {
			return nil, fmt.Errorf("integration: schedule: %s needs a cluster started with Options.Proxy", k)
		}
	}
	if s.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Duration)
		defer cancel()
	}
	var events []Event
	var errs []error
	began := time.Now()
	for ctx.Err() == nil {
		e := s.step(ctx, n)
		if e.Err != nil {
			errs = append(errs, fmt.Errorf("%s at %.1fs: %w", e.Kind, e.Time.Sub(began).Seconds(), e.Err))
		}
		if s.Logf != nil {
			s.Logf("nemesis: %s", e.describe(began))
		}
		events = append(events, e)
		pause(ctx, n.duration(s.QuietMin, s.QuietMax))
	}
	return events, errors.Join(errs...)
}

// step injects one fault, lets it last, and heals it.
func (s Schedule) step(ctx context.Context, n *Nemesis) Event {
	k := s.Kinds[n.intn(len(s.Kinds))]
	e := Event{Time: time.Now(), Kind: k}
	f, err := n.Inject(k)
	if err != nil {
		e.Err = err
		return e
	}
	e.Detail = f.Detail
	pause(ctx, n.duration(s.FaultMin, s.FaultMax))
	if e.Err = f.Heal(); e.Err == nil {
		e.Healed = time.Now()
	}
	return e
}

// pause waits d or until ctx ends: the pacing of schedules and clients.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
