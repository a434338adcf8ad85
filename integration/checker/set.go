package checker

import (
	"fmt"
	"maps"
	"slices"
)

// maxListed bounds the values named in an anomaly's detail and the ops
// attached to it, so that one broken run does not print thousands of lines.
const maxListed = 20

// CheckSet checks the set ops of h (other workloads are ignored) against
// every ok read of the set; the workload reads the set once per member at the
// end. For each such read:
//
//   - KindLost: a value whose add was ok and completed before the read began
//     is missing;
//   - KindUnexpected: a value is present whose every add failed, that is,
//     was definitely not applied;
//   - KindPhantom: a value is present that no add ever attempted.
//
// A value added more than once counts by its best outcome (ok over info
// over fail). Values whose adds are all info may be present or not; Counts
// reports them as "recovered" when some read holds them and "not-recovered"
// otherwise. CheckSet returns an error wrapping ErrMalformed for a malformed
// op, and ErrNoFinalRead when h has no ok read.
func CheckSet(h []Op) (Result, error) {
	idx, err := opsOf(h, WorkloadSet)
	if err != nil {
		return Result{}, err
	}
	adds, reads := splitSet(h, idx)
	if len(reads) == 0 {
		return Result{}, ErrNoFinalRead
	}
	res := newResult()
	for _, r := range reads {
		checkSetRead(&res, h, adds, r)
	}
	countSet(&res, h, adds, reads)
	return res, nil
}

// setValue is every attempt to add one value, and its best outcome.
type setValue struct {
	best Type
	ops  []int
}

// splitSet indexes the adds of h by value and lists the ok reads.
func splitSet(h []Op, idx []int) (map[int]*setValue, []int) {
	adds := map[int]*setValue{}
	var reads []int
	for _, i := range idx {
		s := h[i].Set
		if s.F == SetRead {
			if h[i].Type == TypeOK {
				reads = append(reads, i)
			}
			continue
		}
		v := adds[s.Value]
		if v == nil {
			v = &setValue{best: TypeFail}
			adds[s.Value] = v
		}
		v.ops = append(v.ops, i)
		v.best = better(v.best, h[i].Type)
	}
	return adds, reads
}

// better returns the more favourable outcome: ok over info over fail.
func better(a, b Type) Type {
	if a == TypeOK || b == TypeOK {
		return TypeOK
	}
	if a == TypeInfo || b == TypeInfo {
		return TypeInfo
	}
	return TypeFail
}

// checkSetRead reports the lost, unexpected and phantom values of read r.
func checkSetRead(res *Result, h []Op, adds map[int]*setValue, r int) {
	present := map[int]bool{}
	for _, v := range h[r].Set.Values {
		present[v] = true
	}
	var lost, unexpected, phantom []int
	for _, v := range slices.Sorted(maps.Keys(adds)) {
		a := adds[v]
		switch {
		case !present[v] && a.best == TypeOK && okAddPrecedes(h, a, r):
			lost = append(lost, v)
		case present[v] && a.best == TypeFail:
			unexpected = append(unexpected, v)
		}
	}
	for _, v := range slices.Sorted(maps.Keys(present)) {
		if adds[v] == nil {
			phantom = append(phantom, v)
		}
	}
	addSetAnomaly(res, h, adds, r, KindLost, lost, "acknowledged adds missing from")
	addSetAnomaly(res, h, adds, r, KindUnexpected, unexpected, "failed adds present in")
	addSetAnomaly(res, h, adds, r, KindPhantom, phantom, "never-added values present in")
}

func okAddPrecedes(h []Op, a *setValue, r int) bool {
	for _, i := range a.ops {
		if h[i].Type == TypeOK && h[i].precedes(h[r]) {
			return true
		}
	}
	return false
}

func addSetAnomaly(res *Result, h []Op, adds map[int]*setValue, r int, kind string, vs []int, what string) {
	if len(vs) == 0 {
		return
	}
	ops := refs(h, r)
	for _, v := range vs {
		if a := adds[v]; a != nil && len(ops) <= maxListed {
			ops = append(ops, refs(h, a.ops...)...)
		}
	}
	res.add(Anomaly{Kind: kind, Ops: ops, Detail: fmt.Sprintf("%d %s read %s on %s: %s",
		len(vs), what, refName(r), h[r].Node, formatInts(vs, maxListed))})
}

// countSet fills the add counts and the recovery of info adds.
func countSet(res *Result, h []Op, adds map[int]*setValue, reads []int) {
	seen := map[int]bool{}
	for _, r := range reads {
		for _, v := range h[r].Set.Values {
			seen[v] = true
		}
	}
	for v, a := range adds {
		res.Counts[string(a.best)+"-adds"]++
		if a.best == TypeInfo && seen[v] {
			res.Counts["recovered"]++
		} else if a.best == TypeInfo {
			res.Counts["not-recovered"]++
		}
	}
	res.Counts["final-reads"] = len(reads)
}
