package checker

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

var (
	// ErrMalformed: the history breaks the model of this package (an unknown
	// type or function, no payload or two, an ok op that never completed, an
	// append of a value already appended to the key). Errors wrap it with the
	// op's index.
	ErrMalformed = errors.New("checker: malformed history")
	// ErrNoFinalRead: CheckSet found no ok read of the set to check adds against.
	ErrNoFinalRead = errors.New("checker: no final read")
	// ErrTimeout: the linearizability search did not finish within
	// RegisterConfig.Timeout; the history is neither proven linearizable nor
	// shown not to be.
	ErrTimeout = errors.New("checker: linearizability check timed out")
)

// Type is the outcome of an operation.
type Type string

const (
	// TypeOK: the operation completed and was applied.
	TypeOK Type = "ok"
	// TypeFail: the operation was definitely not applied.
	TypeFail Type = "fail"
	// TypeInfo: the outcome is unknown; the operation may or may not have been
	// applied, possibly after the client stopped waiting.
	TypeInfo Type = "info"
)

// Op is one client operation. Exactly one payload field is set.
type Op struct {
	Process int `json:"process"` // client id; one client runs one operation at a time
	// Invoke and Complete are monotonic nanoseconds. Complete is 0 for an info
	// op that never returned.
	Invoke   int64  `json:"invoke"`
	Complete int64  `json:"complete,omitempty"`
	Type     Type   `json:"type"`
	Node     string `json:"node,omitempty"`  // member the client used
	Error    string `json:"error,omitempty"` // optional: why it failed or is unknown

	Bank   *BankOp  `json:"bank,omitempty"`
	Append *TxnOp   `json:"append,omitempty"`
	Set    *SetOp   `json:"set,omitempty"`
	Reg    *RegOp   `json:"reg,omitempty"`
	Watch  *WatchOp `json:"watch,omitempty"`
}

// Workload names, as Op.Workload returns them.
const (
	WorkloadBank     = "bank"
	WorkloadAppend   = "append"
	WorkloadSet      = "set"
	WorkloadRegister = "register"
	WorkloadWatch    = "watch"
)

// Workload names the op's payload, or returns "" when it has none.
func (o Op) Workload() string {
	switch {
	case o.Bank != nil:
		return WorkloadBank
	case o.Append != nil:
		return WorkloadAppend
	case o.Set != nil:
		return WorkloadSet
	case o.Reg != nil:
		return WorkloadRegister
	case o.Watch != nil:
		return WorkloadWatch
	}
	return ""
}

// Validate reports, wrapping ErrMalformed, why o breaks the model: an unknown
// type, not exactly one payload, an ok or fail op without a completion time,
// a completion before the invocation, or an invalid payload.
func (o Op) Validate() error {
	switch o.Type {
	case TypeOK, TypeFail, TypeInfo:
	default:
		return fmt.Errorf("%w: unknown type %q", ErrMalformed, o.Type)
	}
	if o.Complete == 0 && o.Type != TypeInfo {
		return fmt.Errorf("%w: %s op without completion time", ErrMalformed, o.Type)
	}
	if o.Complete != 0 && o.Complete < o.Invoke {
		return fmt.Errorf("%w: completed at %d before invoked at %d", ErrMalformed, o.Complete, o.Invoke)
	}
	if n := o.payloads(); n != 1 {
		return fmt.Errorf("%w: %d payloads, want 1", ErrMalformed, n)
	}
	switch {
	case o.Bank != nil:
		return o.Bank.validate()
	case o.Append != nil:
		return o.Append.validate()
	case o.Set != nil:
		return o.Set.validate()
	case o.Watch != nil:
		return o.Watch.validate(o.Type)
	}
	return o.Reg.validate()
}

func (o Op) payloads() int {
	n := 0
	for _, set := range []bool{o.Bank != nil, o.Append != nil, o.Set != nil, o.Reg != nil, o.Watch != nil} {
		if set {
			n++
		}
	}
	return n
}

// String renders o on one line, such as "p3 ok n1 [r x [1 2] append x 3]".
func (o Op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "p%d %s", o.Process, o.Type)
	if o.Node != "" {
		b.WriteString(" " + o.Node)
	}
	switch {
	case o.Bank != nil:
		b.WriteString(" " + o.Bank.String())
	case o.Append != nil:
		b.WriteString(" " + o.Append.String())
	case o.Set != nil:
		b.WriteString(" " + o.Set.String())
	case o.Reg != nil:
		b.WriteString(" " + o.Reg.String())
	case o.Watch != nil:
		b.WriteString(" " + o.Watch.String())
	}
	if o.Error != "" {
		b.WriteString(" (" + o.Error + ")")
	}
	return b.String()
}

// precedes reports whether o completed before p was invoked, so that every
// possible execution of o ends before p starts. An op without a completion
// time precedes nothing.
func (o Op) precedes(p Op) bool {
	return o.Complete != 0 && o.Complete < p.Invoke
}

// Bank functions.
const (
	BankTransfer = "transfer"
	BankRead     = "read"
)

// BankOp is a transfer of Amount from account From to account To, or a
// snapshot read of every account's balance.
type BankOp struct {
	F        string           `json:"f"` // BankTransfer or BankRead
	From     string           `json:"from,omitempty"`
	To       string           `json:"to,omitempty"`
	Amount   int64            `json:"amount,omitempty"`
	Balances map[string]int64 `json:"balances,omitempty"` // read result; nil unless ok
}

func (b *BankOp) validate() error {
	if b.F != BankTransfer && b.F != BankRead {
		return fmt.Errorf("%w: unknown bank function %q", ErrMalformed, b.F)
	}
	return nil
}

// String renders b, such as "transfer a->b 5" or "read {a:5 b:0}".
func (b *BankOp) String() string {
	if b.F == BankTransfer {
		return fmt.Sprintf("transfer %s->%s %d", b.From, b.To, b.Amount)
	}
	return "read " + formatBalances(b.Balances)
}

func formatBalances(m map[string]int64) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// Set functions.
const (
	SetAdd  = "add"
	SetRead = "read"
)

// SetOp adds Value to the set, or reads the whole set into Values.
type SetOp struct {
	F      string `json:"f"` // SetAdd or SetRead
	Value  int    `json:"value,omitempty"`
	Values []int  `json:"values,omitempty"` // read result
}

func (s *SetOp) validate() error {
	if s.F != SetAdd && s.F != SetRead {
		return fmt.Errorf("%w: unknown set function %q", ErrMalformed, s.F)
	}
	return nil
}

// String renders s, such as "add 3" or "read (4 values)".
func (s *SetOp) String() string {
	if s.F == SetAdd {
		return fmt.Sprintf("add %d", s.Value)
	}
	return fmt.Sprintf("read (%d values)", len(s.Values))
}

// Micro-op functions of a list-append transaction.
const (
	MopAppend = "append"
	MopRead   = "r"
)

// TxnOp is a list-append transaction: micro-ops run in order in one
// transaction. The workload must append each value at most once per key, and
// implement an append as a read-modify-write of the key inside the
// transaction.
type TxnOp struct {
	Mops []MicroOp `json:"mops"`
}

// MicroOp appends Value to the list at Key, or reads that list into List. A
// read in an ok transaction with a nil List read an empty (absent) list; the
// reads of info and fail transactions are ignored.
type MicroOp struct {
	F     string `json:"f"` // MopAppend or MopRead
	Key   string `json:"key"`
	Value int    `json:"value,omitempty"`
	List  []int  `json:"list,omitempty"`
}

func (t *TxnOp) validate() error {
	for _, m := range t.Mops {
		if m.F != MopAppend && m.F != MopRead {
			return fmt.Errorf("%w: unknown micro-op %q", ErrMalformed, m.F)
		}
	}
	return nil
}

// String renders t, such as "[r x [1 2] append x 3]".
func (t *TxnOp) String() string {
	parts := make([]string, len(t.Mops))
	for i, m := range t.Mops {
		parts[i] = m.String()
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// String renders m, such as "append x 3" or "r x [1 2]".
func (m MicroOp) String() string {
	if m.F == MopAppend {
		return fmt.Sprintf("append %s %d", m.Key, m.Value)
	}
	return fmt.Sprintf("r %s %v", m.Key, listOrEmpty(m.List))
}

func listOrEmpty(l []int) []int {
	if l == nil {
		return []int{}
	}
	return l
}

// Register functions.
const (
	RegRead  = "read"
	RegWrite = "write"
	RegCAS   = "cas"
)

// Absent is the value a register read returns for a key that has never been
// written, and the Expect of a compare-and-set that requires the key absent.
const Absent = -1

// RegOp is an operation on the register at Key: a read (into Result), a write
// of Value, or a compare-and-set from Expect to Value. A compare-and-set whose
// comparison failed may be recorded as ok with CASOK false (which tells the
// checker the register did not hold Expect) or as fail (which tells it
// nothing); one that succeeded is ok with CASOK true.
type RegOp struct {
	F      string `json:"f"` // RegRead, RegWrite or RegCAS
	Key    string `json:"key"`
	Value  int    `json:"value,omitempty"`
	Expect int    `json:"expect,omitempty"`
	Result int    `json:"result,omitempty"` // read result, Absent when absent
	CASOK  bool   `json:"cas_ok,omitempty"`
}

func (r *RegOp) validate() error {
	switch r.F {
	case RegRead, RegWrite, RegCAS:
		return nil
	}
	return fmt.Errorf("%w: unknown register function %q", ErrMalformed, r.F)
}

// String renders r, such as "read x -> 3", "write x 4" or "cas x 3->4 ok".
func (r *RegOp) String() string {
	switch r.F {
	case RegRead:
		return fmt.Sprintf("read %s -> %d", r.Key, r.Result)
	case RegWrite:
		return fmt.Sprintf("write %s %d", r.Key, r.Value)
	}
	return fmt.Sprintf("cas %s %d->%d %v", r.Key, r.Expect, r.Value, r.CASOK)
}

// opsOf returns the indexes of the ops in h carrying workload w, after
// validating each of them.
func opsOf(h []Op, w string) ([]int, error) {
	var idx []int
	for i, o := range h {
		if o.Workload() != w && o.payloads() == 1 {
			continue
		}
		if err := o.Validate(); err != nil {
			return nil, fmt.Errorf("op %d: %w", i, err)
		}
		idx = append(idx, i)
	}
	return idx, nil
}
