package nemesis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/galenadb/galena/integration/harness"
)

// Event is one fault of a Schedule's run.
type Event struct {
	Time   time.Time // when it was injected (or injecting it failed)
	Kind   Kind
	Detail string    // what was done
	Effect string    // what it did, as the kernel and the proxies saw it
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
// FaultMin..FaultMax, check its effect, heal it, wait a random
// QuietMin..QuietMax, and so on, until Duration has passed (and at least
// MinFaults faults were injected) or ctx ends. Zero fields take the
// defaults listed.
//
// A fault's effect is checked as the kernel and the proxies see it rather
// than as the nemesis meant it: the processes it killed exited on SIGKILL,
// the one it paused is stopped, the links it cuts dropped bytes and those
// it slows delivered bytes late. The check waits for the evidence up to a
// few seconds; without it the fault's Event has an error saying so.
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

// fitted returns s with its fault and quiet times sized so that MinFaults
// faults fit in Duration: each fault gets a slot of Duration/MinFaults, of
// which about five eighths are faulty and a quarter quiet, leaving time to
// inject and heal. The times stay within the defaults (at most 1–3s of
// fault and 0.5–1.5s of quiet) and do not drop below 500ms of fault and
// 100ms of quiet, so a long run keeps the defaults. Without Duration it
// returns s as it is.
func (s Schedule) fitted() Schedule {
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
		errs = append(errs, fmt.Errorf("nemesis: schedule: %d faults injected, want at least %d: %w",
			len(events), s.MinFaults, context.Cause(ctx)))
	}
	return events, errors.Join(errs...)
}

// check fails a schedule without kinds, or with kinds it cannot inject.
func (s Schedule) check(n *Nemesis) error {
	if len(s.Kinds) == 0 {
		return errors.New("nemesis: schedule: no fault kinds")
	}
	for _, k := range s.Kinds {
		if k.network() && n.net == nil {
			return fmt.Errorf("nemesis: schedule: %s needs a cluster on a Net", k)
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
		harness.Idle(ctx, n.duration(s.QuietMin, s.QuietMax))
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
	f, err := n.inject(k)
	if err != nil {
		e.Err = err
		return e
	}
	e.Detail = f.Detail
	harness.Idle(ctx, n.duration(s.FaultMin, s.FaultMax))
	effect, err := f.Effect()
	e.Effect = effect
	healErr := f.Heal()
	if healErr == nil {
		e.Healed = time.Now()
	}
	e.Err = errors.Join(err, healErr)
	return e
}

// FaultSpec says which faults one Jepsen run injects.
type FaultSpec struct {
	// Nemesis names the fault kinds as ParseKinds takes them ("all",
	// "partition", "kill,pause", ...); "" or "none" for no faults.
	Nemesis string
	// Seed seeds the nemesis's random choices: which member, how long.
	Seed uint64
	// Part and Parts share the kinds out among Parts runs (default 1), of
	// which this one is number Part (from 0): each takes the kinds in turn,
	// this one from kind Part×share on, and injects at least share of
	// them, share being the number of kinds divided by Parts and rounded
	// up. So the Parts runs together inject every kind at least once.
	Part, Parts int
}

// Schedule is the Schedule of a run of d that spec describes, with fault
// and quiet times sized so that the faults it promises fit in d (see
// fitted), or one without Kinds when spec names no faults. It fails on a name
// ParseKinds does not know.
func (spec FaultSpec) Schedule(d time.Duration) (Schedule, error) {
	if spec.Nemesis == "" || spec.Nemesis == "none" {
		return Schedule{}, nil
	}
	kinds, err := ParseKinds(spec.Nemesis)
	if err != nil {
		return Schedule{}, err
	}
	parts := max(spec.Parts, 1)
	share := (len(kinds) + parts - 1) / parts
	s := Schedule{Kinds: kinds, Rotate: true, Offset: spec.Part * share, Duration: d, MinFaults: share}
	return s.fitted(), nil
}
