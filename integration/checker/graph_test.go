package checker

import (
	"slices"
	"testing"
)

func TestDepGraphSCCs(t *testing.T) {
	g := newDepGraph()
	// Component {1,2,3}; 4 hangs off it; component {5,6}; 7 has a self-edge.
	g.link(1, 2, depWW, "x")
	g.link(2, 3, depWR, "x")
	g.link(3, 1, depRW, "x")
	g.link(3, 4, depWW, "x")
	g.link(5, 6, depRW, "y")
	g.link(6, 5, depRW, "y")
	g.link(7, 7, depWW, "z")
	got := g.sccs()
	want := [][]int{{1, 2, 3}, {5, 6}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("sccs = %v, want %v", got, want)
	}
}

func TestDepGraphKeepsStrongestEdge(t *testing.T) {
	g := newDepGraph()
	g.link(1, 2, depRW, "x")
	g.link(1, 2, depWW, "y")
	g.link(1, 2, depWR, "z")
	if d := g.out[1][2]; d != (dep{kind: depWW, key: "y"}) {
		t.Fatalf("edge = %+v, want ww on y", d)
	}
}

func TestDepGraphFindCycle(t *testing.T) {
	g := newDepGraph()
	// 1 -ww-> 2 -rw-> 3 -wr-> 1, and 3 -rw-> 4 -rw-> 3.
	g.link(1, 2, depWW, "x")
	g.link(2, 3, depRW, "x")
	g.link(3, 1, depWR, "x")
	g.link(3, 4, depRW, "y")
	g.link(4, 3, depRW, "y")
	scc := []int{1, 2, 3, 4}
	if c := g.findCycle(scc, depWW, onlyWW); c != nil {
		t.Errorf("ww-only cycle %v, want none", c)
	}
	c := g.findCycle(scc, depRW, noRW)
	if !slices.Equal(c, []int{2, 3, 1}) || g.classify(c) != KindGSingle {
		t.Errorf("G-single search = %v (%s), want [2 3 1]", c, g.classify(c))
	}
	if k := g.classify([]int{3, 4}); k != KindG2 {
		t.Errorf("classify [3 4] = %s, want G2", k)
	}
	if d := g.describe(c); d != "#2 -rw x-> #3 -wr x-> #1 -ww x-> #2" {
		t.Errorf("describe = %q", d)
	}
}
