package checker

import (
	"errors"
	"maps"
	"slices"
	"testing"
)

func add(p int, typ Type, v int) Op {
	return Op{Process: p, Type: typ, Node: "n1", Set: &SetOp{F: SetAdd, Value: v}}
}

func setRead(node string, vs ...int) Op {
	return Op{Process: 9, Type: TypeOK, Node: node, Set: &SetOp{F: SetRead, Values: vs}}
}

func TestSet(t *testing.T) {
	tests := []struct {
		name   string
		h      []Op
		kinds  []string
		ops    []int // indexes of the first anomaly's ops
		counts map[string]int
	}{{
		name: "clean, with info adds recovered and not",
		h: seq(
			add(0, TypeOK, 1),
			add(1, TypeOK, 2),
			add(2, TypeFail, 3),
			add(3, TypeInfo, 4),
			add(4, TypeInfo, 5),
			add(5, TypeFail, 6), // retried: its best outcome is ok
			add(5, TypeOK, 6),
			setRead("n1", 1, 2, 4, 6),
			setRead("n2", 6, 4, 2, 1),
		),
		counts: map[string]int{"ok-adds": 3, "fail-adds": 1, "info-adds": 2, "recovered": 1, "not-recovered": 1, "final-reads": 2},
	}, {
		name: "lost on one member",
		h: seq(
			add(0, TypeOK, 1),
			add(1, TypeOK, 2),
			setRead("n1", 1, 2),
			setRead("n2", 1),
		),
		kinds: []string{KindLost}, ops: []int{1, 3},
	}, {
		name: "add still running at the read is not lost",
		h: []Op{
			at(10, 50, add(0, TypeOK, 1)),
			at(20, 30, setRead("n1")),
		},
	}, {
		name: "unexpected failed add",
		h: seq(
			add(0, TypeFail, 3),
			setRead("n1", 3),
		),
		kinds: []string{KindUnexpected}, ops: []int{0, 1},
	}, {
		name: "phantom",
		h: seq(
			add(0, TypeOK, 1),
			setRead("n1", 1, 9),
		),
		kinds: []string{KindPhantom}, ops: []int{1},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := CheckSet(tt.h)
			if err != nil {
				t.Fatal(err)
			}
			wantKinds(t, res, tt.kinds...)
			if len(tt.kinds) > 0 && !slices.Equal(indexes(res.Anomalies[0]), tt.ops) {
				t.Errorf("ops = %v, want %v", indexes(res.Anomalies[0]), tt.ops)
			}
			if tt.counts != nil && !maps.Equal(res.Counts, tt.counts) {
				t.Errorf("counts = %v, want %v", res.Counts, tt.counts)
			}
		})
	}
}

func TestSetNoFinalRead(t *testing.T) {
	h := seq(add(0, TypeOK, 1), Op{Process: 1, Type: TypeInfo, Set: &SetOp{F: SetRead}})
	if _, err := CheckSet(h); !errors.Is(err, ErrNoFinalRead) {
		t.Fatalf("err = %v, want ErrNoFinalRead", err)
	}
}
