package checker

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"
)

// RegisterConfig bounds CheckRegister.
type RegisterConfig struct {
	// Timeout bounds the whole linearizability search, and each per-key
	// search that names an offending key; 0 means no bound.
	Timeout time.Duration
	// VisualizePath, when set, is where CheckRegister writes porcupine's HTML
	// visualization of a history that is not linearizable (best effort: a
	// failure to write it is ignored, the verdict stands).
	VisualizePath string
}

// DefaultRegisterConfig returns a RegisterConfig with a 30 s timeout.
func DefaultRegisterConfig() RegisterConfig {
	return RegisterConfig{Timeout: 30 * time.Second}
}

// regInput and regOutput are porcupine's operation input and output.
type regInput struct {
	key, f        string
	value, expect int
}

type regOutput struct {
	result  int
	casOK   bool
	unknown bool // info op: the output was never observed
}

// registerModel is a map of integer registers, partitioned by key: each
// partition's state is one register's value, Absent until written.
var registerModel = porcupine.Model{
	Partition: partitionByKey,
	Init:      func() any { return Absent },
	Step: func(state, input, output any) (bool, any) {
		return stepRegister(state.(int), input.(regInput), output.(regOutput))
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(regInput), output.(regOutput)
		op := RegOp{F: in.f, Key: in.key, Value: in.value, Expect: in.expect, Result: out.result, CASOK: out.casOK}
		if out.unknown {
			return op.String() + " (info)"
		}
		return op.String()
	},
}

// stepRegister applies one operation to register state s. An op with an
// unknown output takes effect as the register's semantics dictate, whatever
// it would have returned.
func stepRegister(s int, in regInput, out regOutput) (bool, int) {
	switch in.f {
	case RegRead:
		return out.unknown || out.result == s, s
	case RegWrite:
		return true, in.value
	}
	if out.unknown {
		if s == in.expect {
			return true, in.value
		}
		return true, s
	}
	if out.casOK {
		return s == in.expect, in.value
	}
	return s != in.expect, s
}

func partitionByKey(ops []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	for _, o := range ops {
		k := o.Input.(regInput).key
		byKey[k] = append(byKey[k], o)
	}
	out := make([][]porcupine.Operation, 0, len(byKey))
	for _, k := range slices.Sorted(maps.Keys(byKey)) {
		out = append(out, byKey[k])
	}
	return out
}

// CheckRegister checks that the register ops of h (other workloads are
// ignored) are linearizable, per key, with porcupine. It reports one
// KindNonlinearizable anomaly per key whose operations admit no
// linearization.
//
// Fail ops are dropped: they were definitely not applied. Info ops may have
// taken effect at any moment from their invocation on, even after the
// client stopped waiting, so each is given a return time of math.MaxInt64
// (whatever Complete says) and an unknown output that the model accepts
// whatever the state; linearizing it after every other op is the same as it
// never taking effect, so both outcomes are considered. Info reads are
// dropped, as they constrain nothing. Many info ops make the search slower,
// since each stays concurrent with everything invoked after it.
//
// It returns an error wrapping ErrMalformed for a malformed op, and one
// wrapping ErrTimeout when the search did not finish within cfg.Timeout.
func CheckRegister(h []Op, cfg RegisterConfig) (Result, error) {
	idx, err := opsOf(h, WorkloadRegister)
	if err != nil {
		return Result{}, err
	}
	ops, origin := registerOperations(h, idx)
	res := newResult()
	res.Counts["operations"] = len(ops)
	switch verdict := check(ops, cfg); verdict {
	case porcupine.Ok:
		return res, nil
	case porcupine.Unknown:
		return Result{}, fmt.Errorf("%w after %v", ErrTimeout, cfg.Timeout)
	}
	if err := reportKeys(&res, h, ops, origin, cfg.Timeout); err != nil {
		return Result{}, err
	}
	if res.Valid { // unreachable: some partition was illegal
		res.add(Anomaly{Kind: KindNonlinearizable, Detail: "no linearization"})
	}
	return res, nil
}

// check runs porcupine over every key at once, writing the visualization when
// cfg asks for it and the history is not linearizable.
func check(ops []porcupine.Operation, cfg RegisterConfig) porcupine.CheckResult {
	if cfg.VisualizePath == "" {
		return porcupine.CheckOperationsTimeout(registerModel, ops, cfg.Timeout)
	}
	verdict, info := porcupine.CheckOperationsVerbose(registerModel, ops, cfg.Timeout)
	if verdict == porcupine.Illegal {
		// A visualization is a debugging aid: failing to write it does
		// not change the verdict.
		_ = porcupine.VisualizePath(registerModel, info, cfg.VisualizePath)
	}
	return verdict
}

// registerOperations converts the register ops of h to porcupine's form;
// origin[i] is the history index of operation i.
func registerOperations(h []Op, idx []int) ([]porcupine.Operation, []int) {
	var ops []porcupine.Operation
	var origin []int
	for _, i := range idx {
		o := h[i]
		r := o.Reg
		if o.Type == TypeFail || (o.Type == TypeInfo && r.F == RegRead) {
			continue
		}
		out, ret := regOutput{result: r.Result, casOK: r.CASOK}, o.Complete
		if o.Type == TypeInfo {
			out, ret = regOutput{unknown: true}, math.MaxInt64
		}
		ops = append(ops, porcupine.Operation{
			ClientId: o.Process,
			Input:    regInput{key: r.Key, f: r.F, value: r.Value, expect: r.Expect},
			Call:     o.Invoke,
			Output:   out,
			Return:   ret,
			Metadata: i,
		})
		origin = append(origin, i)
	}
	return ops, origin
}

// reportKeys rechecks each key on its own to name the ones that are not
// linearizable.
func reportKeys(res *Result, h []Op, ops []porcupine.Operation, origin []int, timeout time.Duration) error {
	byKey := map[string][]int{}
	for i, o := range ops {
		k := o.Input.(regInput).key
		byKey[k] = append(byKey[k], i)
	}
	for _, k := range slices.Sorted(maps.Keys(byKey)) {
		sub := make([]porcupine.Operation, len(byKey[k]))
		hist := make([]int, len(byKey[k]))
		for j, i := range byKey[k] {
			sub[j], hist[j] = ops[i], origin[i]
		}
		switch porcupine.CheckOperationsTimeout(registerModel, sub, timeout) {
		case porcupine.Illegal:
			res.add(nonlinearizable(h, k, hist))
		case porcupine.Unknown:
			return fmt.Errorf("%w: key %q after %v", ErrTimeout, k, timeout)
		}
	}
	return nil
}

func nonlinearizable(h []Op, key string, hist []int) Anomaly {
	a := Anomaly{Kind: KindNonlinearizable,
		Detail: fmt.Sprintf("key %q: no linearization of its %d operations", key, len(hist))}
	if len(hist) <= maxListed {
		a.Ops = refs(h, hist...)
	}
	return a
}
