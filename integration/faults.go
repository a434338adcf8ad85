package integration

import (
	"context"
	"fmt"
	"time"

	"github.com/galenadb/galena/integration/harness"
)

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

// FaultsFor returns the fault injector spec names for cluster c, whose
// members reach each other through nw, or nil when spec names no faults. It
// fails on a name ParseKinds does not know.
func FaultsFor(c *harness.Cluster, nw *Net, spec FaultSpec) (Faults, error) {
	if spec.Nemesis == "" || spec.Nemesis == "none" {
		return nil, nil
	}
	kinds, err := ParseKinds(spec.Nemesis)
	if err != nil {
		return nil, err
	}
	parts := max(spec.Parts, 1)
	share := (len(kinds) + parts - 1) / parts
	n := NewNemesis(c, nw, spec.Seed)
	return &scheduled{n: n, kinds: kinds, seed: spec.Seed, offset: spec.Part * share, min: share}, nil
}

// scheduled runs a Schedule that takes its kinds in turn.
type scheduled struct {
	n           *Nemesis
	kinds       []Kind
	seed        uint64
	offset, min int
}

// schedule is the Schedule of a run of d.
func (s *scheduled) schedule(d time.Duration) Schedule {
	return Schedule{Kinds: s.kinds, Rotate: true, Offset: s.offset, Duration: d, MinFaults: s.min}.Fitted()
}

func (s *scheduled) Run(ctx context.Context, d time.Duration) ([]FaultEvent, error) {
	start := time.Now()
	events, err := s.schedule(d).Run(ctx, s.n)
	out := make([]FaultEvent, len(events))
	for i, e := range events {
		out[i] = FaultEvent{Time: e.Time.Sub(start), Kind: string(e.Kind), Detail: e.Detail, Effect: e.Effect, Err: e.Err}
	}
	if err != nil {
		err = fmt.Errorf("nemesis with seed %d: %w", s.seed, err)
	}
	return out, err
}

func (s *scheduled) HealAll() error { return s.n.HealAll() }
