package checker

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// depKind is the kind of a dependency between two transactions, in Adya's
// terms. Lower is stronger: a pair linked in several ways keeps the
// strongest, since a cycle through it can use that one and so needs fewer
// anti-dependencies.
type depKind uint8

const (
	depWW depKind = iota // write-write: the second appended the next element after the first's
	depWR                // write-read: the second read a list ending in the first's append
	depRW                // read-write (anti-dependency): the second appended the element after the first's read
)

func (k depKind) String() string {
	return [...]string{"ww", "wr", "rw"}[k]
}

// dep is one edge: its kind and the key that gave it.
type dep struct {
	kind depKind
	key  string
}

// depGraph is a dependency graph over transactions, named by history index.
type depGraph struct {
	out map[int]map[int]dep
}

func newDepGraph() *depGraph {
	return &depGraph{out: map[int]map[int]dep{}}
}

// link adds the edge from -> to, keeping the stronger kind if one exists.
// Self-edges are dropped: a transaction does not depend on itself.
func (g *depGraph) link(from, to int, kind depKind, key string) {
	if from == to {
		return
	}
	if g.out[from] == nil {
		g.out[from] = map[int]dep{}
	}
	if d, ok := g.out[from][to]; !ok || kind < d.kind {
		g.out[from][to] = dep{kind: kind, key: key}
	}
}

// succ returns n's successors, sorted so that searches are deterministic.
func (g *depGraph) succ(n int) []int {
	return slices.Sorted(maps.Keys(g.out[n]))
}

// countKinds counts the edges by kind.
func (g *depGraph) countKinds() map[depKind]int {
	c := map[depKind]int{}
	for _, m := range g.out {
		for _, d := range m {
			c[d.kind]++
		}
	}
	return c
}

// sccs returns the strongly connected components with more than one node
// (Tarjan), each sorted, ordered by their smallest node.
func (g *depGraph) sccs() [][]int {
	t := tarjan{g: g, index: map[int]int{}, low: map[int]int{}, onStack: map[int]bool{}}
	for _, n := range slices.Sorted(maps.Keys(g.out)) {
		if _, seen := t.index[n]; !seen {
			t.visit(n)
		}
	}
	slices.SortFunc(t.comps, func(a, b []int) int { return a[0] - b[0] })
	return t.comps
}

type tarjan struct {
	g       *depGraph
	next    int
	index   map[int]int
	low     map[int]int
	stack   []int
	onStack map[int]bool
	comps   [][]int
}

func (t *tarjan) visit(n int) {
	t.index[n], t.low[n] = t.next, t.next
	t.next++
	t.stack = append(t.stack, n)
	t.onStack[n] = true
	for _, m := range t.g.succ(n) {
		if _, seen := t.index[m]; !seen {
			t.visit(m)
			t.low[n] = min(t.low[n], t.low[m])
		} else if t.onStack[m] {
			t.low[n] = min(t.low[n], t.index[m])
		}
	}
	if t.low[n] == t.index[n] {
		t.pop(n)
	}
}

// pop removes n's component from the stack, keeping it if non-trivial.
func (t *tarjan) pop(n int) {
	var comp []int
	for {
		m := t.stack[len(t.stack)-1]
		t.stack = t.stack[:len(t.stack)-1]
		t.onStack[m] = false
		comp = append(comp, m)
		if m == n {
			break
		}
	}
	if len(comp) > 1 {
		slices.Sort(comp)
		t.comps = append(t.comps, comp)
	}
}

// findCycle returns a cycle inside scc that starts with an edge of kind
// first and continues along edges whose kinds allowed accepts, or nil. The
// cycle is its nodes in order; the last links back to the first.
//
// For each node b it runs one breadth-first search from b, then looks for a
// predecessor a of b, over an edge of kind first, that the search reached:
// O(V * E) within the component.
func (g *depGraph) findCycle(scc []int, first depKind, allowed func(depKind) bool) []int {
	member := map[int]bool{}
	for _, n := range scc {
		member[n] = true
	}
	preds := map[int][]int{}
	for _, a := range scc {
		for _, b := range g.succ(a) {
			if member[b] && g.out[a][b].kind == first {
				preds[b] = append(preds[b], a)
			}
		}
	}
	for _, b := range scc {
		if len(preds[b]) == 0 {
			continue
		}
		parent := g.bfs(b, member, allowed)
		for _, a := range preds[b] {
			if _, ok := parent[a]; ok {
				path := pathTo(parent, b, a) // b ... a
				return append([]int{a}, path[:len(path)-1]...)
			}
		}
	}
	return nil
}

// bfs searches from start along allowed edges inside member and returns each
// reached node's parent (start is its own parent).
func (g *depGraph) bfs(start int, member map[int]bool, allowed func(depKind) bool) map[int]int {
	parent := map[int]int{start: start}
	queue := []int{start}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, m := range g.succ(n) {
			if _, seen := parent[m]; seen || !member[m] || !allowed(g.out[n][m].kind) {
				continue
			}
			parent[m] = n
			queue = append(queue, m)
		}
	}
	return parent
}

// pathTo returns the path from start to end recorded in parent, both
// included.
func pathTo(parent map[int]int, start, end int) []int {
	path := []int{end}
	for n := end; n != start; {
		n = parent[n]
		path = append(path, n)
	}
	slices.Reverse(path)
	return path
}

// classify names the cycle by its edges: G0 when all are ww, G1c when some
// are wr and none rw, G-single with exactly one rw, G2 with more.
func (g *depGraph) classify(cycle []int) string {
	var wr, rw int
	for i, a := range cycle {
		switch g.out[a][cycle[(i+1)%len(cycle)]].kind {
		case depWR:
			wr++
		case depRW:
			rw++
		}
	}
	switch {
	case rw > 1:
		return KindG2
	case rw == 1:
		return KindGSingle
	case wr > 0:
		return KindG1c
	}
	return KindG0
}

// describe renders the cycle as "#3 -ww x-> #5 -rw y-> #3".
func (g *depGraph) describe(cycle []int) string {
	var b strings.Builder
	for i, a := range cycle {
		next := cycle[(i+1)%len(cycle)]
		d := g.out[a][next]
		fmt.Fprintf(&b, "#%d -%s %s-> ", a, d.kind, d.key)
	}
	fmt.Fprintf(&b, "#%d", cycle[0])
	return b.String()
}
