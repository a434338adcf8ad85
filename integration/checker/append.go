package checker

import (
	"fmt"
	"maps"
	"slices"
)

// AppendConfig says what CheckListAppend may assume about when a read must
// see an append.
type AppendConfig struct {
	// RealTime: every transaction reads at a snapshot holding every commit
	// acknowledged before it began, as with client.Linearizable. Without it,
	// Galena promises this only within one client session (one Process).
	RealTime bool
	// Serializable: every transaction that appended ran serializable
	// (client.Serializable), so G2 cycles are anomalies too, not allowed.
	// Read-only transactions are never certified; that they too fit the
	// serial order, at their snapshot, is part of what this checks.
	Serializable bool
}

// CheckListAppend checks the list-append transactions of h (other workloads
// are ignored), in the manner of Elle. The workload appends each value at
// most once per key and implements an append as a read-modify-write of the
// key in the transaction. Reads in ok transactions are the evidence; the
// reads of info and fail transactions are ignored.
//
// Each key's version order is its longest ok read. It reports:
//
//   - KindDuplicateElement: a read holds a value twice;
//   - KindPhantom: a read holds a value no transaction appended;
//   - KindIncompatibleOrder: a read of a key is not a prefix of the key's
//     longest read (one anomaly per key);
//   - KindInternal: a read does not reflect the transaction's own earlier
//     read and appends of the key;
//   - KindG1a (aborted read): a read holds a value appended by a fail
//     transaction;
//   - KindG1b (intermediate read): a read ends in a value that its writer
//     followed with another append to the same key;
//   - KindLostAppend: an ok append missing from a read that must hold it,
//     because the reader observed an append by a transaction that began
//     after the append completed (under first-committer-wins that
//     transaction read the list with the value in it), or the reader began
//     after the append completed in the same process (session causality)
//     or, with cfg.RealTime, in any process;
//   - cycles in the dependency graph over ok transactions, and info
//     transactions some read observed: KindG0 (ww edges only), KindG1c (ww
//     and wr, at least one wr), KindGSingle (exactly one rw: read skew).
//     Cycles with two or more rw edges are KindG2, which snapshot isolation
//     allows: they go to Result.Allowed, unless cfg.Serializable.
//
// Edges: T1 -ww-> T2 when T2 appended the element right after T1's in the
// version order; T1 -wr-> T2 when T2 read a list whose last element T1
// appended; T1 -rw-> T2 when T1 read a list and T2 appended the next element
// in the version order. Each strongly connected component reports at most
// one cycle of each kind, and a G2 only when it has no other. Reads that
// are not prefixes of the version order give no rw edges.
//
// It returns an error wrapping ErrMalformed for a malformed op or a value
// appended twice to one key.
func CheckListAppend(h []Op, cfg AppendConfig) (Result, error) {
	idx, err := opsOf(h, WorkloadAppend)
	if err != nil {
		return Result{}, err
	}
	a, err := newAppendAnalysis(h, idx, cfg)
	if err != nil {
		return Result{}, err
	}
	a.checkReads()
	a.checkInternal()
	a.inferOrders()
	a.checkLostAppends()
	a.checkCycles()
	return a.res, nil
}

// appendRead is one read micro-op of an ok transaction.
type appendRead struct {
	txn        int // history index of the transaction
	key        string
	list       []int
	compatible bool // a prefix of the key's version order
	latest     int  // of the committed writers of list's values, the last invoked; -1 if none
}

// appendAnalysis holds one CheckListAppend run.
type appendAnalysis struct {
	h        []Op
	cfg      AppendConfig
	res      Result
	txns     []int                  // history indexes of the list-append ops
	writer   map[string]map[int]int // key -> value -> transaction that appended it
	reads    []*appendRead          // in history order
	readsOf  map[string][]*appendRead
	observed map[int]bool           // transactions with a value some read holds
	order    map[string][]int       // key -> version order
	pos      map[string]map[int]int // key -> value -> position in order
}

func newAppendAnalysis(h []Op, idx []int, cfg AppendConfig) (*appendAnalysis, error) {
	a := &appendAnalysis{h: h, cfg: cfg, res: newResult(), txns: idx,
		writer: map[string]map[int]int{}, readsOf: map[string][]*appendRead{},
		observed: map[int]bool{}, order: map[string][]int{}, pos: map[string]map[int]int{}}
	for _, t := range idx {
		a.res.Counts[string(h[t].Type)+"-txns"]++
		if err := a.index(t); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// index records t's appends and, when t is ok, its reads.
func (a *appendAnalysis) index(t int) error {
	for _, m := range a.h[t].Append.Mops {
		if m.F == MopRead {
			if a.h[t].Type == TypeOK {
				r := &appendRead{txn: t, key: m.Key, list: m.List, latest: -1}
				a.reads = append(a.reads, r)
				a.readsOf[m.Key] = append(a.readsOf[m.Key], r)
			}
			continue
		}
		if a.writer[m.Key] == nil {
			a.writer[m.Key] = map[int]int{}
		}
		if prev, dup := a.writer[m.Key][m.Value]; dup {
			return fmt.Errorf("op %d: %w: value %d appended to %q again (first by op %d)", t, ErrMalformed, m.Value, m.Key, prev)
		}
		a.writer[m.Key][m.Value] = t
	}
	return nil
}

// lastAppend returns the last value t appended to key, and whether it
// appended any.
func (a *appendAnalysis) lastAppend(t int, key string) (int, bool) {
	v, ok := 0, false
	for _, m := range a.h[t].Append.Mops {
		if m.F == MopAppend && m.Key == key {
			v, ok = m.Value, true
		}
	}
	return v, ok
}

// checkReads reports duplicate elements, phantoms, aborted reads and
// intermediate reads, and notes which transactions were observed.
func (a *appendAnalysis) checkReads() {
	for _, r := range a.reads {
		a.checkElements(r)
		a.checkIntermediate(r)
	}
}

func (a *appendAnalysis) checkElements(r *appendRead) {
	seen := map[int]bool{}
	aborted := map[int]bool{}
	var dups, phantoms []int
	for _, v := range r.list {
		if seen[v] {
			dups = append(dups, v)
		}
		seen[v] = true
		w, ok := a.writer[r.key][v]
		switch {
		case !ok:
			phantoms = append(phantoms, v)
		case a.h[w].Type == TypeFail:
			if !aborted[w] {
				a.res.add(Anomaly{Kind: KindG1a, Ops: refs(a.h, r.txn, w), Detail: fmt.Sprintf(
					"#%d read %s %v, holding %d appended by failed #%d", r.txn, r.key, r.list, v, w)})
			}
			aborted[w] = true
		default:
			a.observed[w] = true
			if r.latest < 0 || a.h[w].Invoke > a.h[r.latest].Invoke {
				r.latest = w
			}
		}
	}
	if len(dups) > 0 {
		a.res.add(Anomaly{Kind: KindDuplicateElement, Ops: refs(a.h, r.txn), Detail: fmt.Sprintf(
			"#%d read %s %v: %v appear more than once", r.txn, r.key, r.list, dups)})
	}
	if len(phantoms) > 0 {
		a.res.add(Anomaly{Kind: KindPhantom, Ops: refs(a.h, r.txn), Detail: fmt.Sprintf(
			"#%d read %s %v: %v never appended", r.txn, r.key, r.list, phantoms)})
	}
}

// checkIntermediate reports a read ending in a value its writer (another
// transaction) followed with a later append to the key.
func (a *appendAnalysis) checkIntermediate(r *appendRead) {
	if len(r.list) == 0 {
		return
	}
	x := r.list[len(r.list)-1]
	w, ok := a.writer[r.key][x]
	if !ok || w == r.txn || a.h[w].Type == TypeFail {
		return
	}
	if last, _ := a.lastAppend(w, r.key); last != x {
		a.res.add(Anomaly{Kind: KindG1b, Ops: refs(a.h, r.txn, w), Detail: fmt.Sprintf(
			"#%d read %s %v, ending in %d, but #%d appended %d after it", r.txn, r.key, r.list, x, w, last)})
	}
}

// txnKeyState is what a transaction knows of one key: the list it last read
// (if any) and what it appended since.
type txnKeyState struct {
	read     bool
	prefix   []int
	appended []int
}

// checkInternal reports reads that do not reflect the transaction's own
// earlier read and appends of the same key.
func (a *appendAnalysis) checkInternal() {
	for _, t := range a.txns {
		if a.h[t].Type != TypeOK {
			continue
		}
		states := map[string]*txnKeyState{}
		for _, m := range a.h[t].Append.Mops {
			s := states[m.Key]
			if s == nil {
				s = &txnKeyState{}
				states[m.Key] = s
			}
			if m.F == MopAppend {
				s.appended = append(s.appended, m.Value)
				continue
			}
			if want := s.expect(m.List); want != "" {
				a.res.add(Anomaly{Kind: KindInternal, Ops: refs(a.h, t), Detail: fmt.Sprintf(
					"#%d read %s %v, but its own earlier micro-ops imply %s", t, m.Key, listOrEmpty(m.List), want)})
			}
			*s = txnKeyState{read: true, prefix: m.List}
		}
	}
}

// expect describes what a read should have returned given s, or returns ""
// when got is consistent with it.
func (s *txnKeyState) expect(got []int) string {
	if s.read {
		want := append(slices.Clone(s.prefix), s.appended...)
		if !slices.Equal(got, want) {
			return fmt.Sprint(listOrEmpty(want))
		}
		return ""
	}
	n := len(s.appended)
	if n > 0 && (len(got) < n || !slices.Equal(got[len(got)-n:], s.appended)) {
		return fmt.Sprintf("a list ending in %v", s.appended)
	}
	return ""
}

// inferOrders takes each key's longest read as its version order, marks the
// reads that are prefixes of it, and reports one incompatible read per key.
func (a *appendAnalysis) inferOrders() {
	for _, key := range slices.Sorted(maps.Keys(a.readsOf)) {
		reads := a.readsOf[key]
		longest := reads[0]
		for _, r := range reads[1:] {
			if len(r.list) > len(longest.list) {
				longest = r
			}
		}
		a.order[key] = longest.list
		a.pos[key] = map[int]int{}
		for i, v := range slices.Backward(longest.list) {
			a.pos[key][v] = i // the first occurrence wins
		}
		a.markCompatible(key, longest, reads)
	}
}

func (a *appendAnalysis) markCompatible(key string, longest *appendRead, reads []*appendRead) {
	var bad []*appendRead
	for _, r := range reads {
		r.compatible = len(r.list) <= len(longest.list) && slices.Equal(r.list, longest.list[:len(r.list)])
		if !r.compatible {
			bad = append(bad, r)
		}
	}
	if len(bad) == 0 {
		return
	}
	a.res.add(Anomaly{Kind: KindIncompatibleOrder, Ops: refs(a.h, longest.txn, bad[0].txn), Detail: fmt.Sprintf(
		"key %s: #%d read %v, not a prefix of #%d's %v (%d such reads)",
		key, bad[0].txn, listOrEmpty(bad[0].list), longest.txn, longest.list, len(bad))})
}

// holds reports whether r's list holds v.
func (a *appendAnalysis) holds(r *appendRead, v int) bool {
	if r.compatible {
		p, ok := a.pos[r.key][v]
		return ok && p < len(r.list)
	}
	return slices.Contains(r.list, v)
}

// checkLostAppends reports, once per value, an ok append missing from a
// read that must hold it.
func (a *appendAnalysis) checkLostAppends() {
	for _, t := range a.txns {
		if a.h[t].Type != TypeOK {
			continue
		}
		for _, m := range a.h[t].Append.Mops {
			if m.F == MopAppend {
				a.checkLostAppend(t, m.Key, m.Value)
			}
		}
	}
}

func (a *appendAnalysis) checkLostAppend(t int, key string, v int) {
	for _, r := range a.readsOf[key] {
		if r.txn == t || a.holds(r, v) {
			continue
		}
		if why := a.mustHold(t, r); why != "" {
			a.res.add(Anomaly{Kind: KindLostAppend, Ops: refs(a.h, t, r.txn), Detail: fmt.Sprintf(
				"append %s %d by #%d is missing from #%d's read %v, which %s", key, v, t, r.txn, listOrEmpty(r.list), why)})
			return
		}
	}
}

// mustHold says why read r must hold the appends of ok transaction t, or
// returns "" when it need not.
func (a *appendAnalysis) mustHold(t int, r *appendRead) string {
	w, u := a.h[t], a.h[r.txn]
	switch {
	case r.latest >= 0 && a.h[r.latest].Invoke > w.Complete:
		return fmt.Sprintf("holds an append by #%d, begun after #%d completed", r.latest, t)
	case w.precedes(u) && w.Process == u.Process:
		return fmt.Sprintf("began after #%d completed in the same process", t)
	case w.precedes(u) && a.cfg.RealTime:
		return fmt.Sprintf("began after #%d completed (real time)", t)
	}
	return ""
}
