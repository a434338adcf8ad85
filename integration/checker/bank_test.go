package checker

import (
	"errors"
	"slices"
	"testing"
)

func transfer(p int, typ Type, from, to string, amount int64) Op {
	return Op{Process: p, Type: typ, Node: "n1", Bank: &BankOp{F: BankTransfer, From: from, To: to, Amount: amount}}
}

func balances(p int, typ Type, node string, b map[string]int64) Op {
	return Op{Process: p, Type: typ, Node: node, Bank: &BankOp{F: BankRead, Balances: b}}
}

func finalRead(node string, b map[string]int64) Op {
	return at(1000, 1001, balances(9, TypeOK, node, b))
}

func TestBank(t *testing.T) {
	even := map[string]int64{"a": 50, "b": 50}
	tests := []struct {
		name  string
		h     []Op
		final []Op
		kinds []string
		ops   []int // indexes of the first anomaly's ops
	}{{
		name: "clean",
		h: seq(
			balances(0, TypeOK, "n1", map[string]int64{"a": 100, "b": 0}),
			transfer(1, TypeOK, "a", "b", 50),
			transfer(2, TypeFail, "a", "b", 70),
			transfer(3, TypeInfo, "b", "a", 10),
			balances(0, TypeOK, "n2", even),
			// Reads that did not complete say nothing.
			balances(4, TypeFail, "n3", map[string]int64{"a": 1}),
			balances(5, TypeInfo, "n3", nil),
		),
		final: []Op{finalRead("n1", even), finalRead("n2", even)},
	}, {
		name: "wrong total",
		h: seq(
			transfer(1, TypeOK, "a", "b", 10),
			balances(0, TypeOK, "n2", map[string]int64{"a": 40, "b": 50}),
		),
		kinds: []string{KindWrongTotal}, ops: []int{1},
	}, {
		name: "negative balance",
		h: seq(
			balances(0, TypeOK, "n1", map[string]int64{"a": -10, "b": 110}),
		),
		kinds: []string{KindNegativeBalance}, ops: []int{0},
	}, {
		name:  "final divergence",
		h:     seq(transfer(1, TypeInfo, "a", "b", 10)),
		final: []Op{finalRead("n1", even), finalRead("n2", even), finalRead("n3", map[string]int64{"a": 40, "b": 60})},
		kinds: []string{KindFinalDivergence}, ops: []int{-1, -1, -1},
	}, {
		name:  "final read with wrong total",
		final: []Op{finalRead("n1", map[string]int64{"a": 50, "b": 40})},
		kinds: []string{KindWrongTotal}, ops: []int{-1},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := CheckBank(tt.h, BankConfig{Total: 100, Final: tt.final})
			if err != nil {
				t.Fatal(err)
			}
			wantKinds(t, res, tt.kinds...)
			if len(tt.kinds) > 0 && !slices.Equal(indexes(res.Anomalies[0]), tt.ops) {
				t.Errorf("ops = %v, want %v", indexes(res.Anomalies[0]), tt.ops)
			}
		})
	}
}

func TestBankMalformedFinal(t *testing.T) {
	cfg := BankConfig{Total: 100, Final: []Op{at(1, 2, transfer(0, TypeOK, "a", "b", 1))}}
	if _, err := CheckBank(nil, cfg); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
}
