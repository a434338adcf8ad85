package integration

import (
	"context"
	"fmt"
	"time"
)

// The Jepsen runs inject faults with a Schedule of the kinds -jepsen.nemesis
// names (see ParseKinds: "all", "partition", "kill,pause", ...).
func init() { FaultsFor = scheduleFaults }

func scheduleFaults(c *Cluster, name string) Faults {
	if name == "" || name == "none" {
		return nil
	}
	kinds, err := ParseKinds(name)
	if err != nil {
		return nil
	}
	return &scheduled{c: c, kinds: kinds, seed: uint64(time.Now().UnixNano())}
}

type scheduled struct {
	c     *Cluster
	kinds []Kind
	seed  uint64
}

func (s *scheduled) Run(ctx context.Context) []FaultEvent {
	start := time.Now()
	events, err := Schedule{Kinds: s.kinds}.Run(ctx, NewNemesis(s.c, s.seed))
	out := make([]FaultEvent, 0, len(events)+1)
	for _, e := range events {
		detail := e.Detail
		if e.Err != nil {
			detail += fmt.Sprintf(" (error: %v)", e.Err)
		}
		out = append(out, FaultEvent{Time: e.Time.Sub(start), Kind: string(e.Kind), Detail: detail})
	}
	if err != nil {
		out = append(out, FaultEvent{Time: time.Since(start), Kind: "schedule", Detail: fmt.Sprintf("seed %d: %v", s.seed, err)})
	}
	return out
}

func (s *scheduled) HealAll() error { return s.c.HealAll() }
