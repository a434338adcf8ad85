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
