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

	"github.com/galenadb/galena/integration/harness"
)

// Kind names a kind of fault a Nemesis injects. Each has a start (Inject)
// and a heal (Fault.Heal).
type Kind string

// The kinds of fault. The network kinds need a cluster on a Net (see
// NewProxiedCluster); their heal is Net.Heal, which heals the whole network.
const (
	KindKill          Kind = "kill"           // SIGKILL a random member; heal: start it again
	KindLeader        Kind = "leader"         // SIGKILL the leader; heal: start it again
	KindCrashAll      Kind = "crash-all"      // SIGKILL every member at once; heal: start them all
	KindPause         Kind = "pause"          // SIGSTOP a random member; heal: SIGCONT
	KindIsolateLeader Kind = "isolate-leader" // cut the leader off both ways
	KindSplit         Kind = "split"          // cut a random minority off from the majority
	KindBridge        Kind = "bridge"         // random chain from the leader: each member sees only its neighbours
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
	c   *harness.Cluster
	net *Net       // nil when the members are not proxied
	mu  sync.Mutex // guards rng
	rg  *rand.Rand
}

// NewNemesis returns a Nemesis for c, whose members reach each other
// through nw (nil when they do not: the network kinds then fail), and whose
// random choices follow seed.
func NewNemesis(c *harness.Cluster, nw *Net, seed uint64) *Nemesis {
	return &Nemesis{c: c, net: nw, rg: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Fault is an injected fault.
type Fault struct {
	Kind   Kind
	Detail string // what was done, e.g. "killed n2"

	heal    func() error
	effect  func() (string, error) // the evidence so far, or why there is none
	once    sync.Once
	healErr error
}

// Heal undoes the fault; later calls return the first call's result.
func (f *Fault) Heal() error {
	f.once.Do(func() { f.healErr = f.heal() })
	return f.healErr
}

// Effect checks, while the fault lasts (before Heal), that it took effect,
// as the kernel and the proxies see it rather than as the nemesis meant
// it: the processes it killed exited on SIGKILL, the one it paused is
// stopped, the links it cuts dropped bytes and those it slows delivered
// bytes late. It waits for the evidence up to a few seconds, and returns
// what it saw, such as "n2 exited on SIGKILL", or an error wrapping
// ErrNoEffect.
func (f *Fault) Effect() (string, error) { return effectOf(f.effect) }

// Inject starts a fault of kind k and returns it. On error nothing is left
// to heal, except that a failed crash-all may have killed some members
// (HealAll restarts them).
func (n *Nemesis) Inject(k Kind) (*Fault, error) {
	if k.network() && n.net == nil {
		return nil, fmt.Errorf("integration: %s needs a cluster on a Net", k)
	}
	switch k {
	case KindKill:
		return n.kill(k, n.pick(n.c.RunningMembers()))
	case KindLeader:
		ld, err := n.c.Leader()
		if err != nil {
			return nil, err
		}
		return n.kill(k, ld)
	case KindCrashAll:
		return n.crashAll()
	case KindPause:
		return n.pause(n.pick(n.c.LiveMembers()))
	case KindIsolateLeader:
		ld, err := n.c.Leader()
		if err != nil {
			return nil, err
		}
		links := crossLinks([]int{ld}, n.others(ld))
		f := n.netFault(k, links, "isolated leader %s", n.c.ID(ld))
		n.net.Isolate(ld)
		return f, nil
	case KindSplit:
		return n.split(), nil
	case KindBridge:
		return n.bridge()
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
	m := n.c.Member(i)
	p := m.Process()
	if err := m.Kill(); err != nil {
		return nil, err
	}
	return &Fault{Kind: k, Detail: "killed " + n.c.ID(i),
		heal:   m.StartIfDown,
		effect: func() (string, error) { return sigkilled(n.c.IDs(i), []*harness.Process{p}) }}, nil
}

// crashAll kills every member at once, as a power cut would.
func (n *Nemesis) crashAll() (*Fault, error) {
	idx := n.c.RunningMembers()
	ps := make([]*harness.Process, len(idx))
	for k, i := range idx {
		ps[k] = n.c.Member(i).Process()
	}
	if err := n.c.Each((*harness.Member).Kill); err != nil {
		return nil, err
	}
	return &Fault{Kind: KindCrashAll, Detail: "killed every member",
		heal:   func() error { return n.c.Each((*harness.Member).StartIfDown) },
		effect: func() (string, error) { return sigkilled(n.c.IDs(idx...), ps) }}, nil
}

func (n *Nemesis) pause(i int) (*Fault, error) {
	if i < 0 {
		return nil, errors.New("integration: no member is running")
	}
	m := n.c.Member(i)
	p := m.Process()
	if err := m.Pause(); err != nil {
		return nil, err
	}
	return &Fault{Kind: KindPause, Detail: "paused " + n.c.ID(i),
		heal:   m.Resume,
		effect: func() (string, error) { return stopped(n.c.ID(i), p) }}, nil
}

// split cuts a random minority (at least one member) off from the rest.
func (n *Nemesis) split() *Fault {
	p := n.perm()
	k := 1 + n.intn((len(p)-1)/2)
	minority, majority := p[:k], p[k:]
	f := n.netFault(KindSplit, crossLinks(minority, majority), "split %v | %v", n.c.IDs(minority...), n.c.IDs(majority...))
	n.net.Split(minority, majority)
	return f
}

// bridge makes a random chain that starts at the leader, so that the
// leader is cut off from some members (in the middle of three it would
// reach both), and each member sees only its neighbours in it.
func (n *Nemesis) bridge() (*Fault, error) {
	ld, err := n.c.Leader()
	if err != nil {
		return nil, err
	}
	chain := n.perm()
	at := slices.Index(chain, ld)
	chain[0], chain[at] = chain[at], chain[0]
	var links []pair
	for a := range chain {
		for b := a + 2; b < len(chain); b++ {
			links = append(links, pair{chain[a], chain[b]}, pair{chain[b], chain[a]})
		}
	}
	f := n.netFault(KindBridge, links, "bridge %s", strings.Join(n.c.IDs(chain...), "-"))
	n.net.Bridge(chain...)
	return f, nil
}

// oneWay makes a random member mute (what it sends is dropped) or deaf
// (what it is sent is dropped).
func (n *Nemesis) oneWay() *Fault {
	x := n.intn(n.c.Size())
	mute := n.intn(2) == 0
	var links []pair
	for j := range n.c.Size() {
		switch {
		case j == x:
		case mute:
			links = append(links, pair{x, j})
		default:
			links = append(links, pair{j, x})
		}
	}
	var f *Fault
	if mute {
		f = n.netFault(KindOneWay, links, "%s mute: its traffic to the others is dropped", n.c.ID(x))
	} else {
		f = n.netFault(KindOneWay, links, "%s deaf: the others' traffic to it is dropped", n.c.ID(x))
	}
	for _, l := range links {
		n.net.OneWay(l.from, l.to)
	}
	return f
}

// latency delays every link, or every link of one member, by 20–100ms.
func (n *Nemesis) latency() *Fault {
	d := time.Duration(20+n.intn(81)) * time.Millisecond
	x := -1 // every link
	if n.intn(2) == 0 {
		x = n.intn(n.c.Size())
	}
	var links []pair
	for from := range n.c.Size() {
		for to := range n.c.Size() {
			if from != to && (x < 0 || from == x || to == x) {
				links = append(links, pair{from, to})
			}
		}
	}
	var f *Fault
	if x < 0 {
		f = n.netFault(KindLatency, links, "+%v on every link", d)
	} else {
		f = n.netFault(KindLatency, links, "+%v on the links of %s", d, n.c.ID(x))
	}
	for _, l := range links {
		n.net.Delay(l.from, l.to, d)
	}
	return f
}

// netFault is a fault of kind k on links, which the caller blocks (or, for
// latency, delays) once it returns: its effect is the bytes dropped (or
// delivered late) on them from then on, and its heal heals the whole Net.
func (n *Nemesis) netFault(k Kind, links []pair, format string, args ...any) *Fault {
	nw := n.net
	before := nw.traffic(links)
	return &Fault{Kind: k, Detail: fmt.Sprintf(format, args...),
		heal: func() error {
			nw.Heal()
			return nil
		},
		effect: func() (string, error) { return nw.linkEffect(links, before, k == KindLatency) }}
}

// others lists every member but i.
func (n *Nemesis) others(i int) []int {
	var idx []int
	for j := range n.c.Size() {
		if j != i {
			idx = append(idx, j)
		}
	}
	return idx
}

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

// HealAll undoes every fault: it heals the network (when proxied), then
// resumes paused members, starts every member that is not running, and
// waits until the cluster is ready (harness.Cluster.Revive).
func (n *Nemesis) HealAll() error {
	if n.net != nil {
		n.net.Heal()
	}
	return n.c.Revive()
}

// Event is one fault of a Schedule's run.
type Event struct {
	Time   time.Time // when it was injected (or injecting it failed)
	Kind   Kind
	Detail string    // what was done
	Effect string    // what it did (see Fault.Effect)
	Healed time.Time // when it was healed; zero if it never was
	Err    error     // why injecting or healing it failed, or why it had no effect
}

// describe describes e, its times relative to since.
func (e Event) describe(since time.Time) string {
	s := fmt.Sprintf("%6.1fs %-14s %s", e.Time.Sub(since).Seconds(), e.Kind, e.Detail)
	if e.Effect != "" {
		s += ": " + e.Effect
	}
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

// Schedule injects faults in a loop: pick a kind, inject it, wait a random
// FaultMin..FaultMax, check its effect (Fault.Effect), heal it, wait a
// random QuietMin..QuietMax, and so on, until Duration has passed (and at
// least MinFaults faults were injected) or ctx ends. Zero fields take the
// defaults listed.
type Schedule struct {
	Kinds []Kind // required; see ParseKinds
	// Rotate takes Kinds in turn, from Kinds[Offset mod len(Kinds)] on,
	// instead of at random.
	Rotate bool
	Offset int
	// Duration is how long faults are injected; 0: until ctx ends.
	Duration time.Duration
	// MinFaults is how many faults are injected at least: the schedule goes
	// on past Duration until it has injected them; default 1.
	MinFaults          int
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
	s.MinFaults = max(s.MinFaults, 1)
	return s
}

// Fitted returns s with its fault and quiet times sized so that MinFaults
// faults fit in Duration: each fault gets a slot of Duration/MinFaults, of
// which about five eighths are faulty and a quarter quiet, leaving time to
// inject and heal. The times stay within the defaults (at most 1–3s of
// fault and 0.5–1.5s of quiet) and do not drop below 500ms of fault and
// 100ms of quiet, so a long run keeps the defaults. Without Duration it
// returns s as it is.
func (s Schedule) Fitted() Schedule {
	if s.Duration <= 0 {
		return s
	}
	slot := s.Duration / time.Duration(max(s.MinFaults, 1))
	clamp := func(d, lo, hi time.Duration) time.Duration { return min(max(d, lo), hi) }
	s.FaultMin = clamp(slot/2, 500*time.Millisecond, time.Second)
	s.FaultMax = clamp(slot*5/8, s.FaultMin, 3*time.Second)
	s.QuietMin = clamp(slot/8, 100*time.Millisecond, 500*time.Millisecond)
	s.QuietMax = clamp(slot/4, s.QuietMin, 1500*time.Millisecond)
	return s
}

// Run runs the schedule against n's cluster and returns every event, with
// the errors of the faults that could not be injected or healed or had no
// effect, and an error when fewer than MinFaults faults were injected
// before ctx ended. The fault active when Duration runs out is healed
// before Run returns; Nemesis.HealAll then undoes anything left (a failed
// heal). Run is safe to call while clients use the cluster.
func (s Schedule) Run(ctx context.Context, n *Nemesis) ([]Event, error) {
	s = s.withDefaults()
	if err := s.check(n); err != nil {
		return nil, err
	}
	var end time.Time
	if s.Duration > 0 {
		end = time.Now().Add(s.Duration)
	}
	var events []Event
	var errs []error
	began := time.Now()
	for i := 0; ; i++ {
		e, ok := s.next(ctx, n, i, end)
		if !ok {
			break
		}
		if e.Err != nil {
			errs = append(errs, fmt.Errorf("%s at %.1fs: %w", e.Kind, e.Time.Sub(began).Seconds(), e.Err))
		}
		if s.Logf != nil {
			s.Logf("nemesis: %s", e.describe(began))
		}
		events = append(events, e)
	}
	if len(events) < s.MinFaults {
		errs = append(errs, fmt.Errorf("integration: schedule: %d faults injected, want at least %d: %w",
			len(events), s.MinFaults, context.Cause(ctx)))
	}
	return events, errors.Join(errs...)
}

// check fails a schedule without kinds, or with kinds it cannot inject.
func (s Schedule) check(n *Nemesis) error {
	if len(s.Kinds) == 0 {
		return errors.New("integration: schedule: no fault kinds")
	}
	for _, k := range s.Kinds {
		if k.network() && n.net == nil {
			return fmt.Errorf("integration: schedule: %s needs a cluster on a Net", k)
		}
	}
	return nil
}

// next waits the quiet time before fault i (none before the first), then
// injects it, lets it last, and heals it. Once MinFaults faults were
// injected, both waits end at end (unless it is zero); ok is false when
// there is no time left for fault i.
func (s Schedule) next(ctx context.Context, n *Nemesis, i int, end time.Time) (e Event, ok bool) {
	if i >= s.MinFaults && !end.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, end)
		defer cancel()
	}
	if i > 0 {
		pause(ctx, n.duration(s.QuietMin, s.QuietMax))
	}
	if ctx.Err() != nil {
		return Event{}, false
	}
	return s.step(ctx, n, s.kind(n, i)), true
}

// kind is the kind of fault i.
func (s Schedule) kind(n *Nemesis, i int) Kind {
	if s.Rotate {
		k := len(s.Kinds)
		return s.Kinds[((s.Offset+i)%k+k)%k]
	}
	return s.Kinds[n.intn(len(s.Kinds))]
}

// step injects one fault, lets it last, checks its effect, and heals it.
func (s Schedule) step(ctx context.Context, n *Nemesis, k Kind) Event {
	e := Event{Time: time.Now(), Kind: k}
	f, err := n.Inject(k)
	if err != nil {
		e.Err = err
		return e
	}
	e.Detail = f.Detail
	pause(ctx, n.duration(s.FaultMin, s.FaultMax))
	effect, err := f.Effect()
	e.Effect = effect
	healErr := f.Heal()
	if healErr == nil {
		e.Healed = time.Now()
	}
	e.Err = errors.Join(err, healErr)
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
