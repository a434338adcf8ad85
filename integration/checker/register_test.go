package checker

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func reg(p int, typ Type, inv, comp int64, r RegOp) Op {
	return Op{Process: p, Type: typ, Invoke: inv, Complete: comp, Node: "n1", Reg: &r}
}

func read(key string, result int) RegOp { return RegOp{F: RegRead, Key: key, Result: result} }

func write(key string, v int) RegOp { return RegOp{F: RegWrite, Key: key, Value: v} }

func cas(key string, expect, v int, ok bool) RegOp {
	return RegOp{F: RegCAS, Key: key, Expect: expect, Value: v, CASOK: ok}
}

func TestRegister(t *testing.T) {
	tests := []struct {
		name string
		h    []Op
		keys []string // keys reported nonlinearizable, in order
	}{{
		name: "linearizable concurrent history",
		h: []Op{
			reg(0, TypeOK, 0, 100, write("x", 1)),
			reg(1, TypeOK, 10, 20, read("x", Absent)), // before the write takes effect
			reg(1, TypeOK, 30, 40, read("x", 1)),
			reg(0, TypeOK, 110, 150, cas("x", 1, 2, true)),
			reg(1, TypeOK, 120, 130, read("x", 1)), // before the cas takes effect
			reg(2, TypeOK, 125, 140, read("x", 2)), // after it
			reg(1, TypeOK, 160, 170, cas("x", 7, 8, false)),
			reg(1, TypeOK, 180, 190, read("x", 2)),
			reg(3, TypeInfo, 200, 0, write("y", 5)),     // applied, late
			reg(4, TypeOK, 210, 220, read("y", Absent)), // not yet
			reg(4, TypeOK, 230, 240, read("y", 5)),
			reg(5, TypeInfo, 250, 0, write("y", 6)), // never applied
			reg(4, TypeOK, 260, 270, read("y", 5)),
			reg(6, TypeFail, 0, 10, write("z", 9)), // not applied
			reg(6, TypeOK, 20, 30, read("z", Absent)),
			reg(6, TypeInfo, 40, 0, read("z", 3)), // says nothing
		},
	}, {
		name: "stale read",
		h: []Op{
			reg(0, TypeOK, 0, 10, write("x", 1)),
			reg(0, TypeOK, 20, 30, write("x", 2)),
			reg(1, TypeOK, 40, 50, read("x", 1)),
			reg(2, TypeOK, 0, 10, write("y", 1)),
			reg(2, TypeOK, 20, 30, read("y", 1)),
		},
		keys: []string{"x"},
	}, {
		name: "info write observed before it was invoked",
		h: []Op{
			reg(1, TypeOK, 10, 20, read("x", 5)),
			reg(0, TypeInfo, 100, 0, write("x", 5)),
		},
		keys: []string{"x"},
	}, {
		name: "failed write observed",
		h: []Op{
			reg(0, TypeFail, 0, 10, write("x", 5)),
			reg(1, TypeOK, 20, 30, read("x", 5)),
		},
		keys: []string{"x"},
	}, {
		name: "cas refused although the register held expect",
		h: []Op{
			reg(0, TypeOK, 0, 10, write("x", 1)),
			reg(1, TypeOK, 20, 30, cas("x", 1, 2, false)),
			reg(2, TypeOK, 0, 10, cas("y", Absent, 1, true)),
			reg(2, TypeOK, 20, 30, cas("y", 1, 3, false)),
		},
		keys: []string{"x", "y"},
	}, {
		name: "cas succeeded against a wrong value",
		h: []Op{
			reg(0, TypeOK, 0, 10, write("x", 1)),
			reg(1, TypeOK, 20, 30, cas("x", 2, 3, true)), // x held 1, not 2
			reg(2, TypeOK, 0, 10, cas("y", 4, 5, true)),  // y was never written
			reg(3, TypeOK, 0, 10, write("z", 1)),
			reg(3, TypeOK, 20, 30, write("z", 2)),
			reg(4, TypeOK, 40, 50, cas("z", 1, 3, true)), // z held 2 by then
		},
		keys: []string{"x", "y", "z"},
	}, {
		name: "cas succeeded on a value a concurrent write left",
		h: []Op{
			reg(0, TypeOK, 0, 10, write("x", 1)),
			reg(1, TypeOK, 20, 60, write("x", 2)),
			reg(2, TypeOK, 30, 70, cas("x", 2, 3, true)), // after the write, within both
			reg(3, TypeOK, 80, 90, read("x", 3)),
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := CheckRegister(tt.h, RegisterConfig{Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			wantKinds(t, res, slices.Repeat([]string{KindNonlinearizable}, len(tt.keys))...)
			if len(res.Anomalies) != len(tt.keys) {
				t.Fatalf("%d anomalies, want %d\n%s", len(res.Anomalies), len(tt.keys), res)
			}
			for i, k := range tt.keys {
				if !strings.Contains(res.Anomalies[i].Detail, `"`+k+`"`) {
					t.Errorf("anomaly %d %q does not name key %q", i, res.Anomalies[i].Detail, k)
				}
			}
		})
	}
}

func TestRegisterVisualize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.html")
	h := []Op{
		reg(0, TypeOK, 0, 10, write("x", 1)),
		reg(1, TypeOK, 20, 30, read("x", Absent)),
		reg(2, TypeInfo, 25, 0, write("x", 3)), // drawn to the end of the history
	}
	res, err := CheckRegister(h, RegisterConfig{VisualizePath: path})
	if err != nil || res.Valid {
		t.Fatalf("res = %v, err = %v; want nonlinearizable", res, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("visualization: %v, %v", fi, err)
	}
}

func TestRegisterMalformed(t *testing.T) {
	h := []Op{reg(0, TypeOK, 0, 10, RegOp{F: "incr", Key: "x"})}
	if _, err := CheckRegister(h, DefaultRegisterConfig()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
}

// hardHistory is a history of key whose linearizability search takes far
// longer than any timeout of these tests: n concurrent writes, then a read
// of a value none of them wrote, so porcupine must try every subset of the
// writes in every order before it gives up.
func hardHistory(key string, n int) []Op {
	var h []Op
	for i := range n {
		h = append(h, reg(i, TypeOK, 0, 100, write(key, i+1)))
	}
	return append(h, reg(n, TypeOK, 200, 300, read(key, -2)))
}

// A search cut short by RegisterConfig.Timeout is ErrTimeout, never a
// verdict: porcupine's Unknown is reported as such.
func TestRegisterTimeout(t *testing.T) {
	res, err := CheckRegister(hardHistory("x", 24), RegisterConfig{Timeout: time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("res = %v, err = %v; want ErrTimeout", res, err)
	}
	if res.Valid || len(res.Anomalies) != 0 {
		t.Errorf("a timed-out check returned a verdict: %v", res)
	}
}

// When the whole history is not linearizable but the search of one key,
// rechecked alone to name it, runs out of time, the result is ErrTimeout
// naming that key, not a partial list of keys.
func TestRegisterTimeoutNamingKeys(t *testing.T) {
	h := []Op{ // key "a": a stale read, found at once
		reg(30, TypeOK, 0, 10, write("a", 1)),
		reg(30, TypeOK, 20, 30, write("a", 2)),
		reg(31, TypeOK, 40, 50, read("a", 1)),
	}
	h = append(h, hardHistory("b", 24)...)
	res, err := CheckRegister(h, RegisterConfig{Timeout: time.Second})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), `key "b"`) {
		t.Fatalf("res = %v, err = %v; want ErrTimeout on key \"b\"", res, err)
	}
	if res.Valid || len(res.Anomalies) != 0 {
		t.Errorf("a timed-out check returned a verdict: %v", res)
	}
}
