package checker

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// mixed is a history with every workload, outcome and optional field.
func mixed() []Op {
	return []Op{
		{Process: 0, Invoke: 1, Complete: 2, Type: TypeOK, Node: "n1",
			Bank: &BankOp{F: BankRead, Balances: map[string]int64{"a": 60, "b": 40}}},
		{Process: 1, Invoke: 3, Complete: 4, Type: TypeFail, Node: "n2", Error: "conflict",
			Bank: &BankOp{F: BankTransfer, From: "a", To: "b", Amount: 5}},
		{Process: 2, Invoke: 5, Type: TypeInfo, Node: "n3", Error: "indeterminate",
			Append: &TxnOp{Mops: []MicroOp{{F: MopAppend, Key: "x", Value: 1}, {F: MopRead, Key: "y"}}}},
		{Process: 3, Invoke: 6, Complete: 9, Type: TypeOK,
			Append: &TxnOp{Mops: []MicroOp{{F: MopRead, Key: "x", List: []int{1, 2}}}}},
		{Process: 4, Invoke: 7, Complete: 8, Type: TypeOK, Set: &SetOp{F: SetAdd, Value: 0}},
		{Process: 4, Invoke: 10, Complete: 11, Type: TypeOK, Set: &SetOp{F: SetRead, Values: []int{0, 3}}},
		{Process: 5, Invoke: 12, Complete: 13, Type: TypeOK, Reg: &RegOp{F: RegRead, Key: "r", Result: Absent}},
		{Process: 5, Invoke: 14, Complete: 15, Type: TypeOK, Reg: &RegOp{F: RegCAS, Key: "r", Expect: Absent, Value: 0, CASOK: true}},
	}
}

func TestHistoryRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteHistory(&buf, mixed()); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != len(mixed()) {
		t.Fatalf("%d lines, want %d", n, len(mixed()))
	}
	got, err := ReadHistory(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, mixed()) {
		t.Fatalf("round trip:\n got %v\nwant %v", got, mixed())
	}
}

func TestReadHistorySkipsBlankLines(t *testing.T) {
	in := "\n" + `{"process":1,"invoke":1,"complete":2,"type":"ok","set":{"f":"add","value":3}}` + "\n\n  \n" +
		`{"process":1,"invoke":3,"type":"info","set":{"f":"add","value":4}}` // no final newline
	h, err := ReadHistory(strings.NewReader(in))
	if err != nil || len(h) != 2 || h[1].Set.Value != 4 {
		t.Fatalf("h = %v, err = %v", h, err)
	}
}

func TestReadHistoryErrors(t *testing.T) {
	ok := `{"process":1,"invoke":1,"complete":2,"type":"ok","set":{"f":"add","value":3}}`
	for name, line := range map[string]string{
		"not json":       `{"process":`,
		"unknown type":   `{"process":1,"invoke":1,"complete":2,"type":"maybe","set":{"f":"add"}}`,
		"two payloads":   `{"process":1,"invoke":1,"complete":2,"type":"ok","set":{"f":"add"},"reg":{"f":"read"}}`,
		"no payload":     `{"process":1,"invoke":1,"complete":2,"type":"ok"}`,
		"ok incomplete":  `{"process":1,"invoke":1,"type":"ok","set":{"f":"add"}}`,
		"backwards time": `{"process":1,"invoke":5,"complete":2,"type":"ok","set":{"f":"add"}}`,
		"unknown bank f": `{"process":1,"invoke":1,"complete":2,"type":"ok","bank":{"f":"steal"}}`,
	} {
		_, err := ReadHistory(strings.NewReader(ok + "\n" + line + "\n"))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%s: err = %v, want ErrMalformed on line 2", name, err)
		}
	}
}

func TestSummarize(t *testing.T) {
	h := append(mixed(), Op{Type: TypeOK})
	s := Summarize(h)
	want := Stats{
		Bank:     Counts{OK: 1, Fail: 1},
		Append:   Counts{OK: 1, Info: 1},
		Set:      Counts{OK: 2},
		Register: Counts{OK: 2},
		Other:    Counts{OK: 1},
	}
	if s != want {
		t.Fatalf("Summarize = %+v, want %+v", s, want)
	}
	if got := s.String(); got != "bank ok/fail/info=1/1/0 append ok/fail/info=1/0/1 set ok/fail/info=2/0/0 register ok/fail/info=2/0/0 other ok/fail/info=1/0/0" {
		t.Fatalf("String = %q", got)
	}
}

func TestOpString(t *testing.T) {
	for _, tt := range []struct {
		i    int
		want string
	}{
		{0, "p0 ok n1 read {a:60 b:40}"},
		{1, "p1 fail n2 transfer a->b 5 (conflict)"},
		{2, "p2 info n3 [append x 1, r y []] (indeterminate)"},
		{5, "p4 ok read (2 values)"},
		{7, "p5 ok cas r -1->0 true"},
	} {
		if got := mixed()[tt.i].String(); got != tt.want {
			t.Errorf("op %d = %q, want %q", tt.i, got, tt.want)
		}
	}
}

func TestResultString(t *testing.T) {
	h := seq(add(0, TypeOK, 1), setRead("n2"))
	res, err := CheckSet(h)
	if err != nil {
		t.Fatal(err)
	}
	want := "invalid: 1 anomalies [lost] final-reads=1 ok-adds=1\n" +
		"lost: 1 acknowledged adds missing from read #1 on n2: [1]\n" +
		"    #1 p9 ok n2 read (0 values)\n" +
		"    #0 p0 ok n1 add 1"
	if got := res.String(); got != want {
		t.Fatalf("String =\n%s\nwant\n%s", got, want)
	}
}
