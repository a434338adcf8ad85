package checker

import (
	"slices"
	"testing"
)

// Hand-made histories use these helpers. seq gives op i the interval
// [10i+10, 10i+15], so ops in a seq history run one after another; conc
// gives every op [1, 1000], so they all overlap. Info ops get no completion
// time either way.

func seq(h ...Op) []Op {
	for i := range h {
		h[i].Invoke = int64(10*i + 10)
		h[i].Complete = completion(h[i], int64(10*i+15))
	}
	return h
}

func conc(h ...Op) []Op {
	for i := range h {
		h[i].Invoke = 1
		h[i].Complete = completion(h[i], 1000)
	}
	return h
}

func completion(o Op, t int64) int64 {
	if o.Type == TypeInfo {
		return 0
	}
	return t
}

// at sets o's interval.
func at(invoke, complete int64, o Op) Op {
	o.Invoke, o.Complete = invoke, complete
	return o
}

// wantKinds fails t unless res reports exactly the anomaly kinds want.
func wantKinds(t *testing.T, res Result, want ...string) {
	t.Helper()
	slices.Sort(want)
	want = slices.Compact(want)
	if got := res.Kinds(); !slices.Equal(got, want) {
		t.Fatalf("kinds = %v, want %v\n%s", got, want, res)
	}
	if res.Valid != (len(want) == 0) {
		t.Fatalf("Valid = %v with kinds %v", res.Valid, want)
	}
}

// indexes returns the sorted history indexes of a's ops.
func indexes(a Anomaly) []int {
	var idx []int
	for _, r := range a.Ops {
		idx = append(idx, r.Index)
	}
	slices.Sort(idx)
	return idx
}

// find returns the first anomaly of kind in as, failing t if there is none.
func find(t *testing.T, as []Anomaly, kind string) Anomaly {
	t.Helper()
	for _, a := range as {
		if a.Kind == kind {
			return a
		}
	}
	t.Fatalf("no %s anomaly in %v", kind, as)
	return Anomaly{}
}
