package workload

import (
	"slices"
	"testing"

	"github.com/galenadb/galena/integration/checker"
	"github.com/galenadb/galena/integration/workload/bank"
)

// Each workload's Check sees an anomaly planted in a history recorded the
// way Run records it (final reads included): the wiring from the
// workloads to the checkers loses nothing.
func TestWorkloadChecksCatchAnomalies(t *testing.T) {
	do := func(rec *recorder, p int, node string, op checker.Op) checker.Op {
		return rec.invoke(p, node, nil).completeOp(op)
	}
	check := func(name string, w workload, h []checker.Op, final finalState, want string) {
		t.Helper()
		res, err := w.Check(h, final)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.Valid || !slices.Contains(res.Kinds(), want) {
			t.Errorf("%s: want a %s anomaly, got %s", name, want, res)
		}
	}
	ok := func(payload any) checker.Op { return outcome(payload, nil, false) }

	bw, err := newBankWorkload(bank.Config{Prefix: "bank/", Accounts: 2, Initial: 10, MaxTransfer: 5})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	do(rec, 0, "n1", ok(&checker.BankOp{F: checker.BankTransfer, From: "0000", To: "0001", Amount: 3}))
	h := rec.history()
	final := []checker.Op{
		do(rec, 6, "n1", ok(&checker.BankOp{F: checker.BankRead, Balances: map[string]int64{"0000": 7, "0001": 13}})),
		do(rec, 7, "n2", ok(&checker.BankOp{F: checker.BankRead, Balances: map[string]int64{"0000": 10, "0001": 10}})),
	}
	check("bank", bw, h, finalState{Reads: final}, checker.KindFinalDivergence)

	rec = newRecorder()
	do(rec, 0, "n1", ok(&checker.SetOp{F: checker.SetAdd, Value: 1}))
	do(rec, 1, "n2", ok(&checker.SetOp{F: checker.SetAdd, Value: 2}))
	h = rec.history()
	final = []checker.Op{do(rec, 6, "n3", ok(&checker.SetOp{F: checker.SetRead, Values: []int{1}}))}
	check("set", &setWorkload{}, h, finalState{Reads: final}, checker.KindLost)

	rec = newRecorder()
	do(rec, 0, "n1", ok(&checker.RegOp{F: checker.RegWrite, Key: "0", Value: 1}))
	h = rec.history()
	final = []checker.Op{do(rec, 6, "n2", ok(&checker.RegOp{F: checker.RegRead, Key: "0", Result: checker.Absent}))}
	check("register", &registerWorkload{}, h, finalState{Reads: final}, checker.KindNonlinearizable)

	rec = newRecorder()
	do(rec, 0, "n1", ok(&checker.TxnOp{Mops: []checker.MicroOp{{F: checker.MopAppend, Key: "0", Value: 1}}}))
	do(rec, 1, "n2", ok(&checker.TxnOp{Mops: []checker.MicroOp{{F: checker.MopAppend, Key: "0", Value: 2}}}))
	h = rec.history()
	final = []checker.Op{do(rec, 6, "n3", ok(&checker.TxnOp{Mops: []checker.MicroOp{{F: checker.MopRead, Key: "0", List: []int{2}}}}))}
	check("append", &appendWorkload{}, h, finalState{Reads: final}, checker.KindLostAppend)
}

// Lists round-trip through their encoding.
func TestAppendListEncoding(t *testing.T) {
	for _, l := range [][]int{nil, {1}, {3, 1, 2}} {
		got, err := decodeList(encodeList(l))
		if err != nil || !slices.Equal(got, l) {
			t.Errorf("%v -> %q -> %v, %v", l, encodeList(l), got, err)
		}
	}
	if _, err := decodeList([]byte("1,x")); err == nil {
		t.Error("decodeList accepted garbage")
	}
}
