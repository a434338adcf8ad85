package checker

import (
	"fmt"
	"maps"
	"slices"
)

// inGraph reports whether transaction t belongs in the dependency graph: it
// committed, or its outcome is unknown but a read observed one of its
// appends (so it committed too).
func (a *appendAnalysis) inGraph(t int) bool {
	return a.h[t].Type == TypeOK || (a.h[t].Type == TypeInfo && a.observed[t])
}

// graph builds the dependency graph from the version orders and the reads.
func (a *appendAnalysis) graph() *depGraph {
	g := newDepGraph()
	link := func(from, to int, kind depKind, key string) {
		if a.inGraph(from) && a.inGraph(to) {
			g.link(from, to, kind, key)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(a.order)) {
		order := a.order[key]
		for i := 0; i+1 < len(order); i++ {
			w1, ok1 := a.writer[key][order[i]]
			w2, ok2 := a.writer[key][order[i+1]]
			if ok1 && ok2 {
				link(w1, w2, depWW, key)
			}
		}
	}
	for _, r := range a.reads {
		if n := len(r.list); n > 0 {
			if w, ok := a.writer[r.key][r.list[n-1]]; ok {
				link(w, r.txn, depWR, r.key)
			}
		}
		if order := a.order[r.key]; r.compatible && len(r.list) < len(order) {
			if w, ok := a.writer[r.key][order[len(r.list)]]; ok {
				link(r.txn, w, depRW, r.key)
			}
		}
	}
	return g
}

// cycleSearch is one shape of cycle to look for: starting with an edge of
// kind first, continuing along edges allowed accepts.
type cycleSearch struct {
	first   depKind
	allowed func(depKind) bool
}

var (
	onlyWW  = func(k depKind) bool { return k == depWW }
	noRW    = func(k depKind) bool { return k != depRW }
	anyKind = func(depKind) bool { return true }

	// forbiddenCycles find G0, G1c and G-single in turn.
	forbiddenCycles = []cycleSearch{{depWW, onlyWW}, {depWR, noRW}, {depRW, noRW}}
)

// checkCycles reports the cycles of the dependency graph, component by
// component.
func (a *appendAnalysis) checkCycles() {
	g := a.graph()
	for kind, n := range g.countKinds() {
		a.res.Counts[kind.String()+"-edges"] = n
	}
	for _, scc := range g.sccs() {
		found := false
		for _, s := range forbiddenCycles {
			if c := g.findCycle(scc, s.first, s.allowed); c != nil {
				a.reportCycle(g, scc, c)
				found = true
			}
		}
		if found {
			continue
		}
		// Every cycle in this component has an rw edge, and none exactly
		// one: any cycle found here is G2.
		if c := g.findCycle(scc, depRW, anyKind); c != nil {
			a.reportCycle(g, scc, c)
		}
	}
}

func (a *appendAnalysis) reportCycle(g *depGraph, scc, cycle []int) {
	an := Anomaly{Kind: g.classify(cycle), Ops: refs(a.h, cycle...), Detail: fmt.Sprintf(
		"cycle %s, in a component of %d transactions", g.describe(cycle), len(scc))}
	if an.Kind == KindG2 && !a.cfg.Serializable {
		a.res.allow(an)
		return
	}
	a.res.add(an)
}
