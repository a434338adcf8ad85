package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/checker"
	"github.com/galenadb/galena/integration/harness"
	"github.com/galenadb/galena/integration/nemesis"
	"github.com/galenadb/galena/integration/workload"
)

// The regions of TestRegionsUnderDelaysAndPartition: member i runs in
// region regionNames[i]. me (the Middle East) lies between eu and asia.
const (
	regionEU = iota
	regionAsia
	regionME
)

var regionNames = [...]string{"eu", "asia", "me"}

// regionLinks are the one-way delays between the regions, the same both
// ways: a round trip eu-asia takes 200ms, eu-me 80ms, asia-me 120ms.
var regionLinks = []struct {
	a, b  int
	delay time.Duration
}{
	{regionEU, regionAsia, 100 * time.Millisecond},
	{regionEU, regionME, 40 * time.Millisecond},
	{regionAsia, regionME, 60 * time.Millisecond},
}

const (
	// The members' timeouts across regions, those galena start's
	// --network wan sets (the harness passes heartbeat and election
	// timeouts of its own unless told these): a round trip or two of jitter
	// must not look like a dead leader.
	regionsHeartbeat  = 2 * time.Second
	regionsElection   = 2 * time.Second
	regionsNotPrimary = 4 * time.Second
	// regionsSlack is room for a busy machine in the bounds below.
	regionsSlack = 6 * time.Second
	// regionsStatusBound bounds how long, from its isolation, eu takes to
	// report NON_PRIMARY: a follower counts itself primary until it has not
	// heard from a leader for the not-primary timeout (a leader steps down
	// sooner, when its lease runs out).
	regionsStatusBound = regionsNotPrimary + regionsSlack
	// regionsKnownBound bounds the answer to a commit sent to eu once it
	// is NON_PRIMARY: it forwards nothing to a leader it has not heard from
	// for a heartbeat timeout, and refuses with ErrNotPrimary once the
	// not-primary timeout has passed since it last heard from one (at once,
	// as a follower; a leader that stepped down waits that long from the
	// call).
	regionsKnownBound = regionsNotPrimary + regionsSlack
	// regionsRefusalBound bounds how long, from its isolation, eu takes to
	// refuse a commit with ErrNotPrimary, sent one after another (see
	// regionsKnownBound), and to answer the commit in flight as it was cut
	// off: Raft gives up on a silent leader at most three heartbeat
	// timeouts after its last heartbeat (the forwarder notices a moment
	// later: one heartbeat timeout more), then a commit waits the
	// not-primary timeout.
	regionsRefusalBound = 4*regionsHeartbeat + regionsNotPrimary + regionsSlack
	// regionsPutTimeout bounds a commit the test expects to succeed,
	// through the majority side, an election included.
	regionsPutTimeout = 30 * time.Second
	// regionsSkew bounds how far the workload's clock (its recorder's,
	// started as the clients are made) runs ahead of the schedule's, started
	// when workload.Run calls Faults.Run a moment later: an op of the
	// history counts as inside a window of the schedule only when it was
	// invoked at least this long after the window began.
	regionsSkew = 500 * time.Millisecond
	// regionsClients is the number of workload clients, two per member.
	regionsClients = 6
	// regionsPrefix starts the keys of the schedule's own commits.
	regionsPrefix = "regions/"
	// regionsPreference is the members' --leader-preference: asia, then
	// eu (the harness names member i n<i+1>). A data member leads once
	// caught up, so that cutting asia from eu cuts the leader from a
	// follower: while me leads, eu and asia send each other nothing.
	regionsPreference = "n2,n1"
	// regionsBaseDuration is the default of -jepsen.duration: a longer one
	// stretches every phase of the schedule in proportion.
	regionsBaseDuration = 6 * time.Second
)

// setRegionDelays puts regionLinks' delays on the links of nw, both ways,
// to stay: healing keeps them.
func setRegionDelays(nw *nemesis.Net) {
	for _, l := range regionLinks {
		nw.BaseDelay(l.a, l.b, l.delay)
		nw.BaseDelay(l.b, l.a, l.delay)
	}
}

// regionRTT is the shortest round trip from member i to another: a commit
// through i waits for at least that, since it needs a majority.
func regionRTT(i int) time.Duration {
	rtt := time.Duration(-1)
	for _, l := range regionLinks {
		if (l.a == i || l.b == i) && (rtt < 0 || 2*l.delay < rtt) {
			rtt = 2 * l.delay
		}
	}
	return rtt
}

// TestRegionsUnderDelaysAndPartition runs three members as three regions,
// eu, asia and me (between them), with one-way delays on every link,
// wide-area timeouts and asia preferred as leader, and runs the bank workload, then the list-append
// workload, with clients on every member, each under one schedule: delays
// only; eu isolated from asia and me, the minority side, for some seconds;
// healed (the delays stay); asia cut from eu but not from me, a
// non-transitive partition; healed. It requires valid histories (totals
// kept, no anomaly, every acknowledged append read at the end), members that
// converge on the same contents and digests, commits that pay each region's
// round trip, and, while eu is isolated: eu reporting NON_PRIMARY and
// refusing commits with ErrNotPrimary within bounds and acknowledging none,
// asia serving ops and the majority committing; and while asia is cut from
// eu: me committing. -jepsen.duration longer than its default stretches
// every phase.
func TestRegionsUnderDelaysAndPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts real galena processes")
	}
	plan := newRegionsPlan()
	seed := jepsenSeedOf(t)
	c, nw := nemesis.NewCluster(t, harness.Options{Binary: galenaBin, Members: 3,
		HeartbeatTimeout: regionsHeartbeat, ElectionTimeout: regionsElection,
		ExtraArgs:   []string{"--network", "wan", "--leader-preference", regionsPreference},
		WaitTimeout: 45 * time.Second}, 0)
	setRegionDelays(nw)
	t.Logf("regions: %s = eu, asia, me; links %v; schedule %+v", strings.Join(c.IDs(0, 1, 2), ", "), nw, plan)

	via := make([]*client.Client, c.Size())
	for i := range via {
		via[i] = newClient(t, c, c.Endpoint(i))
	}
	euProbe := c.Member(regionEU).Probe()
	want := make(map[string][]byte) // the schedules' own commits
	for _, name := range []string{checker.WorkloadBank, checker.WorkloadAppend} {
		t.Run(name, func(t *testing.T) {
			s := &regionsSchedule{name: name, c: c, nw: nw, plan: plan, via: via, euProbe: euProbe,
				logf: t.Logf, want: want}
			rep := workload.Run(t.Context(), c, workload.RunConfig{Workload: name, Duration: plan.total(),
				Clients: regionsClients, Faults: s, Seed: seed, HistoryDir: historyDir(t, "regions-"+name)})
			checkRegionsReport(t, rep)
			if s.began.IsZero() {
				t.Fatal("the schedule never ran")
			}
			s.check(t)
			s.checkHistory(t, rep.History)
		})
	}
	ensureSamePrefix(t, c, regionsPrefix, want)
	wantCheckOK(t, c)
}

// regionsPlan is how long each phase of a regionsSchedule lasts at least.
type regionsPlan struct {
	Delays, Isolated, Healed, Cut, Tail time.Duration
}

// newRegionsPlan is the schedule's plan, stretched by -jepsen.duration.
func newRegionsPlan() regionsPlan {
	k := float64(max(*jepsenDuration, regionsBaseDuration)) / float64(regionsBaseDuration)
	s := func(d time.Duration) time.Duration { return time.Duration(float64(d) * k) }
	return regionsPlan{Delays: s(4 * time.Second), Isolated: s(12 * time.Second), Healed: s(4 * time.Second),
		Cut: s(7 * time.Second), Tail: s(3 * time.Second)}
}

func (p regionsPlan) total() time.Duration { return p.Delays + p.Isolated + p.Healed + p.Cut + p.Tail }

// regionsPhase is a phase of a schedule's run, its times since it began.
type regionsPhase struct {
	name       string
	start, end time.Duration
}

// regionsPut is a commit the schedule sent.
type regionsPut struct {
	key  string
	at   time.Duration // when it was sent, since the fault began
	took time.Duration
	err  error
}

func (p regionsPut) String() string {
	return fmt.Sprintf("%s sent at %v: %v after %v", p.key, p.at.Round(time.Millisecond), p.err, p.took.Round(time.Millisecond))
}

// regionsSchedule is the workload.Faults of TestRegionsUnderDelaysAndPartition:
// it runs the phases of plan in order, each for its planned time and until
// what it waits for happened, sends commits of its own to probe each phase,
// and records what it saw for check. The delays are base delays of the
// network, on before it runs: its heals, and HealAll, keep them.
type regionsSchedule struct {
	name    string // the workload's
	c       *harness.Cluster
	nw      *nemesis.Net
	plan    regionsPlan
	via     []*client.Client // via[i]: a client of member i alone, which waits for a leader
	euProbe *client.Client   // eu's own answers (harness.Member.Probe)
	logf    func(format string, args ...any)

	// What Run saw. Run's goroutines write them; check reads them once
	// workload.Run, which waits for Run, has returned.
	began          time.Time
	phases         []regionsPhase
	latency        [len(regionNames)]regionsPut // a commit through each region under the delays alone
	euInflight     regionsPut                   // through eu as it was cut off
	euNonPrimary   time.Duration                // since the isolation, until eu reported NON_PRIMARY
	euStatusErr    error                        // why eu did not report NON_PRIMARY in time
	euKnown        regionsPut                   // through eu once it reported NON_PRIMARY
	majorityPuts   []regionsPut                 // through asia while eu was isolated, until one succeeded
	rejoined       time.Duration
	rejoinErr      error
	leaderIsolated string // the leader as eu was isolated
	leaderCut      string // the leader as asia was cut from eu
	cutPuts        []regionsPut
	cutStates      string // the members' states at the end of the cut

	mu   sync.Mutex
	want map[string][]byte // the commits sent: acknowledged (value), definitely failed (nil)
}

// Run implements workload.Faults: the phases, in order.
func (s *regionsSchedule) Run(ctx context.Context, _ time.Duration) ([]workload.FaultEvent, error) {
	s.began = time.Now()
	events := []workload.FaultEvent{s.delaysOnly(ctx), s.isolateEU(ctx)}
	s.healed(ctx)
	events = append(events, s.cutAsiaFromEU(ctx))
	start := s.since()
	harness.Idle(ctx, s.plan.Tail)
	s.endPhase("healed again", start)
	var errs []error
	for _, e := range events {
		if e.Err != nil {
			errs = append(errs, fmt.Errorf("%s at %.1fs: %w", e.Kind, e.Time.Seconds(), e.Err))
		}
	}
	return events, errors.Join(errs...)
}

// HealAll implements workload.Faults: it unblocks every link, and keeps the
// delays.
func (s *regionsSchedule) HealAll() error {
	s.nw.Heal()
	return nil
}

// since is the time since Run began.
func (s *regionsSchedule) since() time.Duration { return time.Since(s.began) }

// endPhase records phase name, which started at start, as ending now.
func (s *regionsSchedule) endPhase(name string, start time.Duration) {
	p := regionsPhase{name: name, start: start, end: s.since()}
	s.phases = append(s.phases, p)
	s.logf("regions %s: %s from %.1fs to %.1fs", s.name, name, p.start.Seconds(), p.end.Seconds())
}

func (s *regionsSchedule) phase(name string) regionsPhase {
	for _, p := range s.phases {
		if p.name == name {
			return p
		}
	}
	return regionsPhase{name: name}
}

// delaysOnly lets the workload run under the delays alone, and sends a
// commit through each region meanwhile. The leader's links carry its
// heartbeats, so each must have delivered bytes late.
func (s *regionsSchedule) delaysOnly(ctx context.Context) workload.FaultEvent {
	ld := s.leader()
	links := regionsDirected()
	before := make([]nemesis.LinkStats, len(links)) // each link's: the leader's must each have been slowed
	for k, l := range links {
		before[k] = s.nw.Stats(l.From, l.To)
	}
	start := s.since()
	began := time.Now()
	var wg sync.WaitGroup
	for i := range regionNames {
		wg.Go(func() {
			s.latency[i] = s.put(ctx, s.via[i], "latency/"+regionNames[i], began, regionsPutTimeout)
		})
	}
	harness.Idle(ctx, s.plan.Delays)
	wg.Wait()
	s.endPhase("delays only", start)
	var delays []string
	for _, l := range regionLinks {
		delays = append(delays, fmt.Sprintf("%s-%s %v", regionNames[l.a], regionNames[l.b], l.delay))
	}
	e := workload.FaultEvent{Time: start, Kind: "latency", Detail: "one way: " + strings.Join(delays, ", ")}
	var late int64
	var none []string
	for k, l := range links {
		d := s.nw.Stats(l.From, l.To).Sub(before[k]).Delayed
		late += d
		if d == 0 && ld >= 0 && (l.From == ld || l.To == ld) {
			none = append(none, regionsLinkName(l))
		}
	}
	switch {
	case ld < 0:
		e.Err = errors.New("no leader")
	case len(none) > 0:
		e.Err = fmt.Errorf("no byte delivered late on the leader %s's links %v", s.c.ID(ld), none)
	default:
		e.Effect = fmt.Sprintf("%d bytes delivered late (leader %s)", late, s.c.ID(ld))
	}
	return e
}

// isolateEU cuts eu off from asia and me, for the planned time and until
// eu refused a commit with ErrNotPrimary (or gave up trying) and a commit
// through asia succeeded (or gave up), then heals.
func (s *regionsSchedule) isolateEU(ctx context.Context) workload.FaultEvent {
	ld := s.leader()
	s.leaderIsolated = regionsMemberName(s.c, ld)
	links := nemesis.CrossLinks([]int{regionEU}, []int{regionAsia, regionME})
	before := s.nw.Traffic(links)
	start := s.since()
	s.nw.Isolate(regionEU)
	at := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() { s.refuseOnEU(ctx, at) })
	wg.Go(func() { s.majorityPuts = s.putUntilOK(ctx, s.via[regionAsia], "isolated/through-asia", at) })
	harness.Idle(ctx, s.plan.Isolated)
	wg.Wait()
	end := s.since()
	dropped := s.nw.Traffic(links).Sub(before).Dropped
	s.nw.Heal()
	s.phases = append(s.phases, regionsPhase{name: "eu isolated", start: start, end: end})
	s.logf("regions %s: eu isolated from %.1fs to %.1fs (leader %s)", s.name, start.Seconds(), end.Seconds(), s.leaderIsolated)
	e := workload.FaultEvent{Time: start, Kind: "split", Detail: fmt.Sprintf("eu (%s) isolated from asia and me; leader %s",
		s.c.ID(regionEU), s.leaderIsolated)}
	if dropped == 0 {
		e.Err = errors.New("no byte dropped on eu's links")
	} else {
		e.Effect = fmt.Sprintf("%d bytes dropped on eu's links", dropped)
	}
	return e
}

// refuseOnEU sends a commit to eu as it is cut off, at; waits until eu
// reports NON_PRIMARY; then sends another, which eu must refuse.
func (s *regionsSchedule) refuseOnEU(ctx context.Context, at time.Time) {
	inflight := make(chan regionsPut, 1)
	go func() { inflight <- s.put(ctx, s.euProbe, "isolated/eu-inflight", at, 2*regionsRefusalBound) }()
	defer func() { s.euInflight = <-inflight }()
	_, s.euStatusErr = s.c.Member(regionEU).WaitStatus(regionsStatusBound, func(st *galenapb.StatusResponse) error {
		if st.GetState() != "NON_PRIMARY" {
			return fmt.Errorf("%s is %s", st.GetId(), st.GetState())
		}
		return nil
	})
	if s.euStatusErr != nil {
		return
	}
	s.euNonPrimary = time.Since(at)
	s.euKnown = s.put(ctx, s.euProbe, "isolated/eu-known", at, 2*regionsKnownBound)
}

// healed lets the workload run on the healed network (delays kept) for the
// planned time and until every member is ready again.
func (s *regionsSchedule) healed(ctx context.Context) {
	start := s.since()
	at := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if s.rejoinErr = s.c.WaitReady(); s.rejoinErr == nil {
			s.rejoined = time.Since(at)
		}
	}()
	harness.Idle(ctx, s.plan.Healed)
	<-done
	s.endPhase("healed", start)
}

// cutAsiaFromEU blocks the links between asia and eu, both ways, while
// both still reach me, for the planned time and until a commit through me
// succeeded (or gave up), then heals. It waits first for asia or eu to lead
// (regionsPreference), so that the cut stands between the leader and a
// follower; the links through me must carry traffic and drop none.
func (s *regionsSchedule) cutAsiaFromEU(ctx context.Context) workload.FaultEvent {
	ld := -1
	err := harness.WaitFor(regionsPutTimeout, func() error {
		if ld = s.leader(); ld != regionEU && ld != regionAsia {
			return fmt.Errorf("%s leads, not eu or asia", regionsMemberName(s.c, ld))
		}
		return nil
	})
	s.leaderCut = regionsMemberName(s.c, ld)
	if err != nil {
		return workload.FaultEvent{Time: s.since(), Kind: "bridge", Err: fmt.Errorf("before cutting asia from eu: %w", err)}
	}
	cut := nemesis.CrossLinks([]int{regionEU}, []int{regionAsia})
	kept := nemesis.CrossLinks([]int{regionME}, []int{regionEU, regionAsia})
	beforeCut, beforeKept := s.nw.Traffic(cut), s.nw.Traffic(kept)
	start := s.since()
	s.nw.Cut(regionEU, regionAsia)
	at := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() { s.cutPuts = s.putUntilOK(ctx, s.via[regionME], "cut/through-me", at) })
	harness.Idle(ctx, s.plan.Cut)
	wg.Wait()
	s.cutStates = s.states()
	end := s.since()
	cutDropped := s.nw.Traffic(cut).Sub(beforeCut).Dropped
	keptSince := s.nw.Traffic(kept).Sub(beforeKept)
	keptDropped, keptBytes := keptSince.Dropped, keptSince.Bytes
	s.nw.Heal()
	s.phases = append(s.phases, regionsPhase{name: "asia cut from eu", start: start, end: end})
	s.logf("regions %s: asia cut from eu from %.1fs to %.1fs (leader %s); at its end: %s",
		s.name, start.Seconds(), end.Seconds(), s.leaderCut, s.cutStates)
	e := workload.FaultEvent{Time: start, Kind: "bridge", Detail: fmt.Sprintf("asia (%s) cut from eu (%s), both reach me (%s); leader %s",
		s.c.ID(regionAsia), s.c.ID(regionEU), s.c.ID(regionME), s.leaderCut)}
	switch {
	case keptDropped > 0:
		e.Err = fmt.Errorf("%d bytes dropped on the links through me, which the cut leaves alone", keptDropped)
	case keptBytes == 0:
		e.Err = errors.New("no traffic on the links through me")
	case cutDropped > 0:
		e.Effect = fmt.Sprintf("%d bytes dropped between eu and asia, %d delivered through me", cutDropped, keptBytes)
	default:
		e.Err = fmt.Errorf("no byte dropped between eu and asia while %s leads", s.leaderCut)
	}
	return e
}

// put commits key=name under regionsPrefix through cl, bounded by
// timeout, records it in want, and returns it, with the time it was sent
// since since.
func (s *regionsSchedule) put(ctx context.Context, cl *client.Client, key string, since time.Time, timeout time.Duration) regionsPut {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := regionsPut{key: regionsPrefix + s.name + "/" + key, at: time.Since(since)}
	began := time.Now()
	p.err = cl.Put(ctx, []byte(p.key), []byte(s.name))
	p.took = time.Since(began)
	s.mu.Lock()
	defer s.mu.Unlock()
	expectPut(s.want, p.key, []byte(s.name), p.err)
	return p
}

// putUntilOK commits keys key-0, key-1, ... through cl until one is
// acknowledged or regionsPutTimeout has passed, and returns them all. A
// commit sent as a fault begins may be lost with the old leader
// (ErrIndeterminate); the next one finds the new leader.
func (s *regionsSchedule) putUntilOK(ctx context.Context, cl *client.Client, key string, at time.Time) []regionsPut {
	deadline := time.Now().Add(regionsPutTimeout)
	var puts []regionsPut
	for n := 0; ; n++ {
		p := s.put(ctx, cl, fmt.Sprintf("%s-%d", key, n), at, time.Until(deadline))
		puts = append(puts, p)
		if p.err == nil || time.Until(deadline) <= 0 || ctx.Err() != nil {
			return puts
		}
		harness.Idle(ctx, 100*time.Millisecond)
	}
}

// leader is the index of the leader, or -1 when there is no single one.
func (s *regionsSchedule) leader() int {
	ld, err := s.c.Leader()
	if err != nil {
		s.logf("regions %s: %v", s.name, err)
		return -1
	}
	return ld
}

// states describes every member's state and leader, e.g. "n1 NON_PRIMARY
// (leader -), n2 SYNCED (leader n3), ...".
func (s *regionsSchedule) states() string {
	parts := make([]string, s.c.Size())
	for i := range parts {
		st, err := s.c.Member(i).Status()
		if err != nil {
			parts[i] = fmt.Sprintf("%s %v", s.c.ID(i), err)
			continue
		}
		leader := st.GetLeaderId()
		if leader == "" {
			leader = "-"
		}
		parts[i] = fmt.Sprintf("%s %s (leader %s)", s.c.ID(i), st.GetState(), leader)
	}
	return strings.Join(parts, ", ")
}

// check checks what the schedule's own commits and waits saw.
func (s *regionsSchedule) check(t *testing.T) {
	t.Helper()
	for i, p := range s.latency {
		t.Logf("commit through %s under the delays: %v", regionNames[i], p)
		switch {
		case p.err != nil:
			t.Errorf("commit through %s under the delays alone: %v", regionNames[i], p.err)
		case p.took < regionRTT(i):
			t.Errorf("commit through %s took %v, less than its shortest round trip %v: the delays are not in force",
				regionNames[i], p.took, regionRTT(i))
		}
	}

	t.Logf("eu isolated (leader %s): NON_PRIMARY after %v", s.leaderIsolated, s.euNonPrimary.Round(time.Millisecond))
	if s.euStatusErr != nil {
		t.Errorf("the isolated eu did not report NON_PRIMARY within %v: %v", regionsStatusBound, s.euStatusErr)
	}
	p := s.euInflight
	t.Logf("commit through eu as it was cut off: %v", p)
	switch {
	case p.err == nil:
		t.Errorf("the isolated eu acknowledged %s", p.key)
	case !errors.Is(p.err, client.ErrNotPrimary) && !errors.Is(p.err, client.ErrIndeterminate):
		t.Errorf("commit through eu as it was cut off: %v, want ErrNotPrimary or ErrIndeterminate", p.err)
	case p.took > regionsRefusalBound:
		t.Errorf("commit through eu as it was cut off: answered after %v, want within %v", p.took, regionsRefusalBound)
	}
	refused := time.Duration(-1) // since the isolation, until the first ErrNotPrimary
	if errors.Is(p.err, client.ErrNotPrimary) {
		refused = p.at + p.took
	}
	if p := s.euKnown; s.euStatusErr == nil {
		t.Logf("commit through the NON_PRIMARY eu: %v", p)
		switch {
		case !errors.Is(p.err, client.ErrNotPrimary):
			t.Errorf("commit through the NON_PRIMARY eu: %v, want ErrNotPrimary: it must not forward to a leader it does not hear", p)
		case p.took > regionsKnownBound:
			t.Errorf("commit through the NON_PRIMARY eu: %v, want an answer within %v", p, regionsKnownBound)
		}
		if errors.Is(p.err, client.ErrNotPrimary) && (refused < 0 || p.at+p.took < refused) {
			refused = p.at + p.took
		}
	}
	switch {
	case refused < 0:
		t.Errorf("the isolated eu refused no commit with ErrNotPrimary")
	case refused > regionsRefusalBound:
		t.Errorf("the isolated eu first refused a commit with ErrNotPrimary %v after its isolation, want within %v", refused, regionsRefusalBound)
	default:
		t.Logf("the isolated eu first refused a commit with ErrNotPrimary %v after its isolation (bound %v)", refused.Round(time.Millisecond), regionsRefusalBound)
	}

	checkAcked := func(what string, puts []regionsPut) {
		for _, p := range puts {
			t.Logf("commit through %s: %v", what, p)
		}
		if len(puts) == 0 || puts[len(puts)-1].err != nil {
			t.Errorf("no commit through %s succeeded within %v", what, regionsPutTimeout)
		}
	}
	checkAcked("asia while eu was isolated", s.majorityPuts)
	t.Logf("ready again %v after the heal (%v)", s.rejoined.Round(time.Millisecond), s.rejoinErr)
	if s.rejoinErr != nil {
		t.Errorf("after eu's isolation was healed: %v", s.rejoinErr)
	}
	checkAcked(fmt.Sprintf("me while asia was cut from eu (leader %s)", s.leaderCut), s.cutPuts)
}

// regionsTally counts a member's ops within a window.
type regionsTally struct {
	ok, okWrites, fail, info int
	notPrimary               int // failed or info ops whose error says the member was not primary
	errs                     map[string]int
}

func (n regionsTally) String() string {
	return fmt.Sprintf("ok %d (writes %d), fail %d, info %d", n.ok, n.okWrites, n.fail, n.info)
}

// tally counts the clients' ops through member i (final reads left out)
// within phase p of the schedule: strict counts only the ops invoked at
// least regionsSkew after p began and completed by its end, which surely ran
// within it; otherwise each op counts in the phase it completed in, as near
// as the two clocks tell.
func (s *regionsSchedule) tally(h []checker.Op, i int, p regionsPhase, strict bool) regionsTally {
	n := regionsTally{errs: map[string]int{}}
	for _, o := range h {
		if o.Node != s.c.ID(i) || o.Complete == 0 {
			continue
		}
		inv, done := time.Duration(o.Invoke), time.Duration(o.Complete)
		if strict && (inv < p.start+regionsSkew || done > p.end) || !strict && (done < p.start || done >= p.end) {
			continue
		}
		switch o.Type {
		case checker.TypeOK:
			n.ok++
			if regionsWrites(o) {
				n.okWrites++
			}
			continue
		case checker.TypeFail:
			n.fail++
		case checker.TypeInfo:
			n.info++
		}
		kind := regionsErrKind(o.Error)
		n.errs[kind]++
		if kind == "not primary" {
			n.notPrimary++
		}
	}
	return n
}

// checkHistory checks the workload's history phase by phase: while there
// was no partition, every member served ops and the cluster committed;
// while eu was isolated, eu acknowledged no write and refused with
// ErrNotPrimary, and asia served ops and the majority committed; while asia
// was cut from eu, me committed.
func (s *regionsSchedule) checkHistory(t *testing.T, h []checker.Op) {
	t.Helper()
	for _, p := range s.phases {
		var parts []string
		for i := range regionNames {
			parts = append(parts, fmt.Sprintf("%s %s", regionNames[i], s.tally(h, i, p, false)))
		}
		t.Logf("%-16s %5.1fs-%5.1fs: %s", p.name, p.start.Seconds(), p.end.Seconds(), strings.Join(parts, "; "))
	}

	// Without a partition every region gets ops done, and the members
	// commit. (A far region may starve for a few seconds: its transfers
	// conflict with those of the leader's region, which commit sooner, and
	// Update retries them.)
	quiet := []string{"delays only", "healed", "healed again"}
	for i := range regionNames {
		var ok int
		for _, name := range quiet {
			ok += s.tally(h, i, s.phase(name), false).ok
		}
		if ok == 0 {
			t.Errorf("no op through %s succeeded while the network had delays and no partition", regionNames[i])
		}
	}
	for _, name := range quiet {
		var writes int
		for i := range regionNames {
			writes += s.tally(h, i, s.phase(name), false).okWrites
		}
		if writes == 0 {
			t.Errorf("no write succeeded in phase %q", name)
		}
	}

	iso := s.phase("eu isolated")
	eu, asia, me := s.tally(h, regionEU, iso, true), s.tally(h, regionAsia, iso, true), s.tally(h, regionME, iso, true)
	t.Logf("while eu was isolated (ops invoked and completed within it): eu %v, errors %v; asia %v; me %v", eu, eu.errs, asia, me)
	if eu.okWrites > 0 {
		t.Errorf("the isolated eu acknowledged %d writes its clients sent while it was cut off", eu.okWrites)
	}
	if eu.notPrimary == 0 {
		t.Errorf("eu's clients saw no commit refused for want of a primary while eu was isolated: %v, errors %v", eu, eu.errs)
	}
	if asia.ok == 0 || asia.okWrites+me.okWrites == 0 {
		t.Errorf("the majority committed nothing while eu was isolated: asia %v, errors %v; me %v, errors %v", asia, asia.errs, me, me.errs)
	}
	if first, ok := s.firstNotPrimary(h, regionEU, iso); ok {
		t.Logf("eu's clients: first op refused for want of a primary completed %v after the isolation", first.Round(time.Millisecond))
	}

	cut := s.phase("asia cut from eu")
	eu, asia, me = s.tally(h, regionEU, cut, true), s.tally(h, regionAsia, cut, true), s.tally(h, regionME, cut, true)
	t.Logf("while asia was cut from eu (leader %s): eu %v, errors %v; asia %v, errors %v; me %v",
		s.leaderCut, eu, eu.errs, asia, asia.errs, me)
	if me.okWrites == 0 {
		t.Errorf("me, which reaches everyone, committed nothing while asia was cut from eu: %v, errors %v", me, me.errs)
	}
}

// firstNotPrimary is how long after phase p began the first op through
// member i refused for want of a primary completed.
func (s *regionsSchedule) firstNotPrimary(h []checker.Op, i int, p regionsPhase) (time.Duration, bool) {
	first, ok := time.Duration(0), false
	for _, o := range h {
		done := time.Duration(o.Complete)
		if o.Node != s.c.ID(i) || o.Type == checker.TypeOK ||
			done < p.start || done > p.end || regionsErrKind(o.Error) != "not primary" {
			continue
		}
		if !ok || done-p.start < first {
			first, ok = done-p.start, true
		}
	}
	return first, ok
}

// regionsWrites reports whether o wrote: a transfer that moved money (one
// from an empty account writes nothing), or a transaction that appended.
func regionsWrites(o checker.Op) bool {
	switch {
	case o.Bank != nil:
		return o.Bank.F == checker.BankTransfer && o.Bank.Amount > 0
	case o.Append != nil:
		for _, m := range o.Append.Mops {
			if m.F == checker.MopAppend {
				return true
			}
		}
	}
	return false
}

// regionsErrKind names the kind of an op's error text.
func regionsErrKind(text string) string {
	for _, k := range []struct{ kind, sub string }{
		{"indeterminate", client.ErrIndeterminate.Error()},
		{"not primary", client.ErrNotPrimary.Error()},
		{"conflict", client.ErrConflict.Error()},
		{"unavailable", client.ErrUnavailable.Error()},
		{"deadline", context.DeadlineExceeded.Error()},
	} {
		if strings.Contains(text, k.sub) {
			return k.kind
		}
	}
	return "other"
}

// checkRegionsReport fails t unless rep is a valid run that checked real
// operations, with the three faults injected, effective and healed.
func checkRegionsReport(t *testing.T, rep workload.Report) {
	t.Helper()
	checkRun(t, "regions", rep)
	if rep.Members != len(regionNames) {
		t.Errorf("contents of %d members compared, want %d", rep.Members, len(regionNames))
	}
	if kinds := rep.FaultKinds(); len(kinds) != 3 {
		t.Errorf("faults injected, effective and healed: %v, want latency, split and bridge", kinds)
	}
	counts := rep.Result.Counts
	switch rep.Workload {
	case checker.WorkloadBank:
		if counts["ok-reads"] == 0 || counts["final-reads"] != len(regionNames) {
			t.Errorf("bank: %d ok reads and %d final reads checked, want some and %d", counts["ok-reads"], counts["final-reads"], len(regionNames))
		}
	case checker.WorkloadAppend:
		if counts["ok-txns"] == 0 {
			t.Errorf("append: no ok transaction checked: %v", counts)
		}
	}
}

// regionsDirected is every link between the members, each direction.
func regionsDirected() []nemesis.Link {
	var links []nemesis.Link
	for _, l := range regionLinks {
		links = append(links, nemesis.CrossLinks([]int{l.a}, []int{l.b})...)
	}
	return links
}

func regionsLinkName(l nemesis.Link) string { return regionNames[l.From] + "→" + regionNames[l.To] }

// regionsMemberName names member i by region and id, e.g. "me (n3)", or
// "none" for -1.
func regionsMemberName(c *harness.Cluster, i int) string {
	if i < 0 {
		return "none"
	}
	return fmt.Sprintf("%s (%s)", regionNames[i], c.ID(i))
}
