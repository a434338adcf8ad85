package nemesis

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/galenadb/galena/integration/harness"
)

// Kind names a kind of fault a Nemesis injects (see ParseKinds). Each has a
// start, an effect it must show while it lasts, and a heal.
type Kind string

// The kinds of fault. The network kinds need a cluster on a Net (see
// NewCluster); their heal is Net.Heal, which heals the whole network.
const (
	kindKill          Kind = "kill"           // SIGKILL a random member; heal: start it again
	kindLeader        Kind = "leader"         // SIGKILL the leader; heal: start it again
	kindCrashAll      Kind = "crash-all"      // SIGKILL every member at once; heal: start them all
	kindPause         Kind = "pause"          // SIGSTOP a random member; heal: SIGCONT
	kindIsolateLeader Kind = "isolate-leader" // cut the leader off both ways
	kindSplit         Kind = "split"          // cut a random minority off from the majority
	kindBridge        Kind = "bridge"         // random chain from the leader: each member sees only its neighbours
	kindOneWay        Kind = "one-way"        // a random member is mute (sends nothing) or deaf (receives nothing)
	kindLatency       Kind = "latency"        // 20–100ms on every link, or on one member's links
)

var (
	// allKinds is every kind, what "all" stands for in ParseKinds.
	allKinds = []Kind{kindKill, kindLeader, kindCrashAll, kindPause,
		kindIsolateLeader, kindSplit, kindBridge, kindOneWay, kindLatency}
	// partitionKinds are what "partition" stands for in ParseKinds.
	partitionKinds = []Kind{kindIsolateLeader, kindSplit, kindBridge, kindOneWay}
)

// network reports whether faults of kind k act on the Net.
func (k Kind) network() bool {
	return k == kindLatency || slices.Contains(partitionKinds, k)
}

// ParseKinds parses a comma-separated mix of kinds, such as
// "kill,partition,pause,crash-all,latency,leader": the kind names kill,
// leader, crash-all, pause, isolate-leader, split, bridge, one-way and
// latency; "partition" for isolate-leader, split, bridge and one-way; "all"
// for every kind. Each kind is listed once.
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
			add(allKinds...)
		case k == "partition":
			add(partitionKinds...)
		case slices.Contains(allKinds, k):
			add(k)
		default:
			return nil, fmt.Errorf("nemesis: unknown fault kind %q (want all, partition or one of %v)", k, allKinds)
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

// New returns a Nemesis for c, whose members reach each other
// through nw (nil when they do not: the network kinds then fail), and whose
// random choices follow seed.
func New(c *harness.Cluster, nw *Net, seed uint64) *Nemesis {
	return &Nemesis{c: c, net: nw, rg: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// fault is an injected fault.
type fault struct {
	Kind   Kind
	Detail string // what was done, e.g. "killed n2"

	heal    func() error
	effect  func() (string, error) // the evidence so far, or why there is none
	once    sync.Once
	healErr error
}

// Heal undoes the fault; later calls return the first call's result.
func (f *fault) Heal() error {
	f.once.Do(func() { f.healErr = f.heal() })
	return f.healErr
}

// Effect checks, while the fault lasts (before Heal), that it took effect,
// as the kernel and the proxies see it rather than as the nemesis meant
// it: the processes it killed exited on SIGKILL, the one it paused is
// stopped, the links it cuts dropped bytes and those it slows delivered
// bytes late. It waits for the evidence up to a few seconds, and returns
// what it saw, such as "n2 exited on SIGKILL", or an error wrapping
// errNoEffect.
func (f *fault) Effect() (string, error) { return effectOf(f.effect) }

// inject starts a fault of kind k and returns it. On error nothing is left
// to heal, except that a failed crash-all may have killed some members
// (HealAll restarts them).
func (n *Nemesis) inject(k Kind) (*fault, error) {
	if k.network() && n.net == nil {
		return nil, fmt.Errorf("nemesis: %s needs a cluster on a Net", k)
	}
	switch k {
	case kindKill:
		return n.kill(k, n.pick(n.c.RunningMembers()))
	case kindLeader:
		ld, err := n.c.Leader()
		if err != nil {
			return nil, err
		}
		return n.kill(k, ld)
	case kindCrashAll:
		return n.crashAll()
	case kindPause:
		return n.pause(n.pick(n.c.LiveMembers()))
	case kindIsolateLeader:
		ld, err := n.c.Leader()
		if err != nil {
			return nil, err
		}
		links := CrossLinks([]int{ld}, n.others(ld))
		f := n.netFault(k, links, "isolated leader %s", n.c.ID(ld))
		n.net.Isolate(ld)
		return f, nil
	case kindSplit:
		return n.split(), nil
	case kindBridge:
		return n.bridge()
	case kindOneWay:
		return n.oneWay(), nil
	case kindLatency:
		return n.latency(), nil
	}
	return nil, fmt.Errorf("nemesis: unknown fault kind %q", k)
}

func (n *Nemesis) kill(k Kind, i int) (*fault, error) {
	if i < 0 {
		return nil, errors.New("nemesis: no member is running")
	}
	m := n.c.Member(i)
	p := m.Process()
	if err := m.Kill(); err != nil {
		return nil, err
	}
	return &fault{Kind: k, Detail: "killed " + n.c.ID(i),
		heal:   m.StartIfDown,
		effect: func() (string, error) { return sigkilled(n.c.IDs(i), []*harness.Process{p}) }}, nil
}

// crashAll kills every member at once, as a power cut would.
func (n *Nemesis) crashAll() (*fault, error) {
	idx := n.c.RunningMembers()
	ps := make([]*harness.Process, len(idx))
	for k, i := range idx {
		ps[k] = n.c.Member(i).Process()
	}
	if err := n.c.Each((*harness.Member).Kill); err != nil {
		return nil, err
	}
	return &fault{Kind: kindCrashAll, Detail: "killed every member",
		heal:   func() error { return n.c.Each((*harness.Member).StartIfDown) },
		effect: func() (string, error) { return sigkilled(n.c.IDs(idx...), ps) }}, nil
}

func (n *Nemesis) pause(i int) (*fault, error) {
	if i < 0 {
		return nil, errors.New("nemesis: no member is running")
	}
	m := n.c.Member(i)
	p := m.Process()
	if err := m.Pause(); err != nil {
		return nil, err
	}
	return &fault{Kind: kindPause, Detail: "paused " + n.c.ID(i),
		heal:   m.Resume,
		effect: func() (string, error) { return stopped(n.c.ID(i), p) }}, nil
}

// split cuts a random minority (at least one member) off from the rest.
func (n *Nemesis) split() *fault {
	p := n.perm()
	k := 1 + n.intn((len(p)-1)/2)
	minority, majority := p[:k], p[k:]
	f := n.netFault(kindSplit, CrossLinks(minority, majority), "split %v | %v", n.c.IDs(minority...), n.c.IDs(majority...))
	n.net.split(minority, majority)
	return f
}

// bridge makes a random chain that starts at the leader, so that the
// leader is cut off from some members (in the middle of three it would
// reach both), and each member sees only its neighbours in it.
func (n *Nemesis) bridge() (*fault, error) {
	ld, err := n.c.Leader()
	if err != nil {
		return nil, err
	}
	chain := n.perm()
	at := slices.Index(chain, ld)
	chain[0], chain[at] = chain[at], chain[0]
	var links []Link
	for a := range chain {
		for b := a + 2; b < len(chain); b++ {
			links = append(links, Link{chain[a], chain[b]}, Link{chain[b], chain[a]})
		}
	}
	f := n.netFault(kindBridge, links, "bridge %s", strings.Join(n.c.IDs(chain...), "-"))
	n.net.bridge(chain...)
	return f, nil
}

// oneWay makes a random member mute (what it sends is dropped) or deaf
// (what it is sent is dropped).
func (n *Nemesis) oneWay() *fault {
	x := n.intn(n.c.Size())
	mute := n.intn(2) == 0
	var links []Link
	for j := range n.c.Size() {
		switch {
		case j == x:
		case mute:
			links = append(links, Link{x, j})
		default:
			links = append(links, Link{j, x})
		}
	}
	var f *fault
	if mute {
		f = n.netFault(kindOneWay, links, "%s mute: its traffic to the others is dropped", n.c.ID(x))
	} else {
		f = n.netFault(kindOneWay, links, "%s deaf: the others' traffic to it is dropped", n.c.ID(x))
	}
	for _, l := range links {
		n.net.oneWay(l.From, l.To)
	}
	return f
}

// latency delays every link, or every link of one member, by 20–100ms.
func (n *Nemesis) latency() *fault {
	d := time.Duration(20+n.intn(81)) * time.Millisecond
	x := -1 // every link
	if n.intn(2) == 0 {
		x = n.intn(n.c.Size())
	}
	var links []Link
	for from := range n.c.Size() {
		for to := range n.c.Size() {
			if from != to && (x < 0 || from == x || to == x) {
				links = append(links, Link{from, to})
			}
		}
	}
	var f *fault
	if x < 0 {
		f = n.netFault(kindLatency, links, "+%v on every link", d)
	} else {
		f = n.netFault(kindLatency, links, "+%v on the links of %s", d, n.c.ID(x))
	}
	for _, l := range links {
		n.net.Delay(l.From, l.To, d)
	}
	return f
}

// netFault is a fault of kind k on links, which the caller blocks (or, for
// latency, delays) once it returns: its effect is the bytes dropped (or
// delivered late) on them from then on, and its heal heals the whole Net.
func (n *Nemesis) netFault(k Kind, links []Link, format string, args ...any) *fault {
	nw := n.net
	before := nw.Traffic(links)
	return &fault{Kind: k, Detail: fmt.Sprintf(format, args...),
		heal: func() error {
			nw.Heal()
			return nil
		},
		effect: func() (string, error) { return nw.linkEffect(links, before, k == kindLatency) }}
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
