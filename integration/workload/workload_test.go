package workload

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/galenadb/galena/client"
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

	// Write skew: G2, allowed by append, an anomaly of append-ser.
	rec = newRecorder()
	first, second := rec.invoke(0, "n1", nil), rec.invoke(1, "n2", nil) // at once
	first.completeOp(ok(&checker.TxnOp{Mops: []checker.MicroOp{{F: checker.MopRead, Key: "x"}, {F: checker.MopRead, Key: "y"}, {F: checker.MopAppend, Key: "x", Value: 1}}}))
	second.completeOp(ok(&checker.TxnOp{Mops: []checker.MicroOp{{F: checker.MopRead, Key: "x"}, {F: checker.MopRead, Key: "y"}, {F: checker.MopAppend, Key: "y", Value: 2}}}))
	h = rec.history()
	final = []checker.Op{do(rec, 6, "n3", ok(&checker.TxnOp{Mops: []checker.MicroOp{{F: checker.MopRead, Key: "x", List: []int{1}}, {F: checker.MopRead, Key: "y", List: []int{2}}}}))}
	check("append-ser", &appendWorkload{Serializable: true}, h, finalState{Reads: final}, checker.KindG2)
	if res, err := (&appendWorkload{}).Check(h, finalState{Reads: final}); err != nil || !res.Valid || len(res.Allowed) == 0 {
		t.Errorf("append: the write skew is %v (%v); want valid, with an allowed G2", res, err)
	}

	rec = newRecorder()
	do(rec, 0, "n1", ok(&checker.WatchOp{F: checker.WatchCommit, Seqno: 11,
		Writes: []checker.WatchChange{{Key: "watch/a/1", Value: "v1"}}}))
	h = rec.history()
	final = []checker.Op{do(rec, 6, "n1", ok(&checker.WatchOp{F: checker.WatchFollow,
		Log: &checker.WatchLog{Name: "n1/all", Start: "watch/", End: "watch0", After: 10, Progress: 11}}))}
	contents := [][]client.KV{{{Key: []byte("watch/a/1"), Value: []byte("v1")}}}
	check("watch", &watchWorkload{ids: []string{"n1"}}, h, finalState{Reads: final, Contents: contents}, checker.KindWatchGap)
	check("watch replay", &watchWorkload{ids: []string{"n1"}}, h, finalState{Reads: final, Contents: contents}, checker.KindWatchFinal)
}

// The watch workload's Check refuses to decide without the op of every
// watcher it started.
func TestWatchCheckNeedsEveryWatcher(t *testing.T) {
	w := &watchWorkload{ids: []string{"n1"}, watchers: []*watcher{{watchSpec: watchSpec{name: "n1/a"}}, {watchSpec: watchSpec{name: "n1/all"}}}}
	read := outcome(&checker.WatchOp{F: checker.WatchFollow, Log: &checker.WatchLog{Name: "n1/all", Start: "watch/"}}, nil, true)
	if _, err := w.Check(nil, finalState{Reads: []checker.Op{read}}); err == nil || !strings.Contains(err.Error(), "n1/a") {
		t.Fatalf("Check without the op of n1/a: err = %v", err)
	}
}

// A commit writes 1 to watchMaxWrites distinct keys, each a delete or a
// put of a value never written before.
func TestWatchWrites(t *testing.T) {
	w := &watchWorkload{}
	rng := rand.New(rand.NewPCG(1, 2))
	values := map[string]bool{}
	for range 1000 {
		writes := w.pickWrites(rng)
		if len(writes) < 1 || len(writes) > watchMaxWrites {
			t.Fatalf("%d writes", len(writes))
		}
		keys := map[string]bool{}
		for _, wr := range writes {
			if keys[wr.Key] || (!wr.Delete && values[wr.Value]) || (wr.Delete && wr.Value != "") {
				t.Fatalf("writes %v: a key or value twice, or a delete with a value", writes)
			}
			keys[wr.Key], values[wr.Value] = true, !wr.Delete
		}
	}
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

// An invalid result's report says how many anomalies there are once, then
// the counts and each anomaly.
func TestDescribeResult(t *testing.T) {
	res := checker.Result{Counts: map[string]int{"events": 3}, Anomalies: []checker.Anomaly{
		{Kind: "watch-gap", Detail: "seqno 7 missing"}, {Kind: "watch-gap", Detail: "seqno 9 missing"}}}
	got := describeResult(res)
	head, _, _ := strings.Cut(got, "\n")
	if head != "invalid: 2 anomalies [watch-gap] events=3" || !strings.Contains(got, "seqno 9 missing") {
		t.Fatalf("describeResult = %q", got)
	}
	res = checker.Result{Valid: true, Counts: map[string]int{"events": 3}}
	if got := describeResult(res); got != "valid events=3" {
		t.Fatalf("describeResult of a valid result = %q", got)
	}
}
