package checker

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func txn(p int, typ Type, mops ...MicroOp) Op {
	return Op{Process: p, Type: typ, Node: "n1", Append: &TxnOp{Mops: mops}}
}

func app(key string, v int) MicroOp { return MicroOp{F: MopAppend, Key: key, Value: v} }

func rd(key string, list ...int) MicroOp { return MicroOp{F: MopRead, Key: key, List: list} }

func TestListAppend(t *testing.T) {
	tests := []struct {
		name    string
		cfg     AppendConfig
		h       []Op
		kinds   []string // exactly these kinds
		culprit string   // the kind whose ops are checked against ops
		ops     []int
		allowed []string // kinds in Result.Allowed
	}{{
		name: "clean serial history with unobserved info and fail",
		h: seq(
			txn(0, TypeOK, app("x", 1)),
			txn(1, TypeOK, rd("x", 1), app("x", 2), rd("x", 1, 2)),
			txn(2, TypeOK, rd("x", 1, 2), app("y", 1)),
			txn(3, TypeFail, app("x", 3)),
			txn(4, TypeInfo, app("y", 2)),
			txn(5, TypeOK, rd("x", 1, 2), rd("y", 1)),
		),
	}, {
		name: "G2 write skew is allowed",
		h: conc(
			txn(0, TypeOK, rd("x"), rd("y"), app("x", 1)),
			txn(1, TypeOK, rd("x"), rd("y"), app("y", 1)),
			txn(2, TypeOK, rd("x", 1), rd("y", 1)),
		),
		allowed: []string{KindG2},
	}, {
		name: "G2 write skew is an anomaly under serializable",
		cfg:  AppendConfig{Serializable: true},
		h: conc(
			txn(0, TypeOK, rd("x"), rd("y"), app("x", 1)),
			txn(1, TypeOK, rd("x"), rd("y"), app("y", 1)),
			txn(2, TypeOK, rd("x", 1), rd("y", 1)),
		),
		kinds: []string{KindG2}, culprit: KindG2, ops: []int{0, 1},
	}, {
		name: "G0 write cycle",
		h: conc(
			txn(0, TypeOK, app("x", 1), app("y", 2)),
			txn(1, TypeOK, app("x", 2), app("y", 1)),
			txn(2, TypeOK, rd("x", 1, 2), rd("y", 1, 2)),
		),
		kinds: []string{KindG0}, culprit: KindG0, ops: []int{0, 1},
	}, {
		name: "G1a aborted read",
		h: conc(
			txn(0, TypeFail, app("x", 1)),
			txn(1, TypeOK, rd("x", 1)),
		),
		kinds: []string{KindG1a}, culprit: KindG1a, ops: []int{0, 1},
	}, {
		// Reading an intermediate state also forms #0 -wr-> #1 -rw-> #0.
		name: "G1b intermediate read",
		h: conc(
			txn(0, TypeOK, app("x", 1), app("x", 2)),
			txn(1, TypeOK, rd("x", 1)),
			txn(2, TypeOK, rd("x", 1, 2)),
		),
		kinds: []string{KindG1b, KindGSingle}, culprit: KindG1b, ops: []int{0, 1},
	}, {
		name: "G1c circular information flow",
		h: conc(
			txn(0, TypeOK, app("x", 1), rd("y", 1)),
			txn(1, TypeOK, app("y", 1), rd("x", 1)),
		),
		kinds: []string{KindG1c}, culprit: KindG1c, ops: []int{0, 1},
	}, {
		name: "G-single read skew",
		h: conc(
			txn(0, TypeOK, app("x", 1), app("y", 1)),
			txn(1, TypeOK, rd("x"), rd("y", 1)),
			txn(2, TypeOK, rd("x", 1), rd("y", 1)),
		),
		kinds: []string{KindGSingle}, culprit: KindGSingle, ops: []int{0, 1},
	}, {
		name: "G-single lost update",
		h: conc(
			txn(0, TypeOK, rd("x"), app("x", 1)),
			txn(1, TypeOK, rd("x"), app("x", 2)),
			txn(2, TypeOK, rd("x", 1, 2)),
		),
		kinds: []string{KindGSingle}, culprit: KindGSingle, ops: []int{0, 1},
	}, {
		name: "G-single through an observed info transaction",
		h: conc(
			txn(0, TypeInfo, app("x", 1), app("y", 1)),
			txn(1, TypeOK, rd("x"), rd("y", 1)),
			txn(2, TypeOK, rd("x", 1)),
		),
		kinds: []string{KindGSingle}, culprit: KindGSingle, ops: []int{0, 1},
	}, {
		name: "lost append: later read in the same process",
		h: seq(
			txn(1, TypeOK, app("x", 1)),
			txn(1, TypeOK, rd("x")),
		),
		kinds: []string{KindLostAppend}, culprit: KindLostAppend, ops: []int{0, 1},
	}, {
		name: "lost append: read observes a later-begun append",
		h: seq(
			txn(1, TypeOK, app("x", 1)),
			txn(2, TypeOK, app("x", 2)),
			txn(3, TypeOK, rd("x", 2)),
		),
		kinds: []string{KindLostAppend}, culprit: KindLostAppend, ops: []int{0, 2},
	}, {
		name: "stale read in another process is not lost without RealTime",
		h: seq(
			txn(1, TypeOK, app("x", 1)),
			txn(2, TypeOK, rd("x")),
		),
	}, {
		name: "lost append: later read with RealTime",
		cfg:  AppendConfig{RealTime: true},
		h: seq(
			txn(1, TypeOK, app("x", 1)),
			txn(2, TypeOK, rd("x")),
		),
		kinds: []string{KindLostAppend}, culprit: KindLostAppend, ops: []int{0, 1},
	}, {
		name: "internal: read misses own append after a read",
		h: conc(
			txn(0, TypeOK, rd("x"), app("x", 1), rd("x")),
		),
		kinds: []string{KindInternal}, culprit: KindInternal, ops: []int{0},
	}, {
		name: "internal: read does not end with own appends",
		h: conc(
			txn(0, TypeOK, app("x", 1)),
			txn(1, TypeOK, app("x", 2), rd("x", 1)),
			txn(2, TypeOK, rd("x", 1, 2)),
		),
		kinds: []string{KindInternal}, culprit: KindInternal, ops: []int{1},
	}, {
		name: "duplicate element",
		h: conc(
			txn(0, TypeOK, app("x", 1)),
			txn(1, TypeOK, rd("x", 1, 1)),
		),
		kinds: []string{KindDuplicateElement}, culprit: KindDuplicateElement, ops: []int{1},
	}, {
		name: "incompatible order",
		h: conc(
			txn(0, TypeOK, app("x", 1)),
			txn(1, TypeOK, app("x", 2)),
			txn(2, TypeOK, rd("x", 1, 2)),
			txn(3, TypeOK, rd("x", 2, 1)),
		),
		kinds: []string{KindIncompatibleOrder}, culprit: KindIncompatibleOrder, ops: []int{2, 3},
	}, {
		name: "phantom value",
		h: conc(
			txn(0, TypeOK, rd("x", 7)),
		),
		kinds: []string{KindPhantom}, culprit: KindPhantom, ops: []int{0},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := CheckListAppend(tt.h, tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			wantKinds(t, res, tt.kinds...)
			if tt.culprit != "" {
				if got := indexes(find(t, res.Anomalies, tt.culprit)); !slices.Equal(got, tt.ops) {
					t.Errorf("%s ops = %v, want %v\n%s", tt.culprit, got, tt.ops, res)
				}
			}
			var allowed []string
			for _, a := range res.Allowed {
				allowed = append(allowed, a.Kind)
			}
			if !slices.Equal(allowed, tt.allowed) {
				t.Errorf("allowed = %v, want %v\n%s", allowed, tt.allowed, res)
			}
		})
	}
}

func TestListAppendDetail(t *testing.T) {
	h := conc(
		txn(0, TypeOK, app("x", 1), app("y", 1)),
		txn(1, TypeOK, rd("x"), rd("y", 1)),
		txn(2, TypeOK, rd("x", 1)),
	)
	res, err := CheckListAppend(h, AppendConfig{})
	if err != nil {
		t.Fatal(err)
	}
	got := find(t, res.Anomalies, KindGSingle).String()
	for _, want := range []string{"G-single: cycle #1 -rw x-> #0 -wr y-> #1", "#1 p1 ok n1 [r x [], r y [1]]"} {
		if !strings.Contains(got, want) {
			t.Errorf("anomaly %q lacks %q", got, want)
		}
	}
	if res.Counts["wr-edges"] != 2 || res.Counts["rw-edges"] != 1 || res.Counts["ok-txns"] != 3 {
		t.Errorf("counts = %v", res.Counts)
	}
}

func TestListAppendMalformed(t *testing.T) {
	for name, h := range map[string][]Op{
		"value appended twice": conc(txn(0, TypeOK, app("x", 1)), txn(1, TypeFail, app("x", 1))),
		"unknown micro-op":     conc(txn(0, TypeOK, MicroOp{F: "delete", Key: "x"})),
		"ok without complete":  {txn(0, TypeOK, app("x", 1))},
	} {
		if _, err := CheckListAppend(h, AppendConfig{}); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}
