package checker

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Anomaly kinds. Each checker documents the kinds it reports.
const (
	KindWrongTotal      = "wrong-total"
	KindNegativeBalance = "negative-balance"
	KindFinalDivergence = "final-divergence"

	KindLost       = "lost"
	KindUnexpected = "unexpected"
	KindPhantom    = "phantom"

	KindG0                = "G0"
	KindG1a               = "G1a"
	KindG1b               = "G1b"
	KindG1c               = "G1c"
	KindGSingle           = "G-single"
	KindG2                = "G2"
	KindLostAppend        = "lost-append"
	KindInternal          = "internal"
	KindIncompatibleOrder = "incompatible-order"
	KindDuplicateElement  = "duplicate-element"

	KindNonlinearizable = "nonlinearizable"
)

// Result is a checker's verdict.
type Result struct {
	// Valid is true when Anomalies is empty.
	Valid bool
	// Anomalies are the violations found, in a deterministic order.
	Anomalies []Anomaly
	// Allowed are patterns the consistency model permits but a reader may
	// want to see, such as G2 cycles under snapshot isolation. They do not
	// affect Valid.
	Allowed []Anomaly
	// Counts are checker-specific statistics, such as "recovered" info adds.
	Counts map[string]int
}

// Anomaly is one violation, with the operations that show it.
type Anomaly struct {
	Kind   string
	Ops    []OpRef
	Detail string
}

// OpRef is an operation with its index in the checked history, or -1 when it
// came from elsewhere (BankConfig.Final).
type OpRef struct {
	Index int
	Op    Op
}

func newResult() Result {
	return Result{Valid: true, Counts: map[string]int{}}
}

func (r *Result) add(a Anomaly) {
	r.Anomalies = append(r.Anomalies, a)
	r.Valid = false
}

func (r *Result) allow(a Anomaly) {
	r.Allowed = append(r.Allowed, a)
}

// Kinds returns the distinct kinds of r.Anomalies, sorted.
func (r Result) Kinds() []string {
	set := map[string]bool{}
	for _, a := range r.Anomalies {
		set[a.Kind] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// String renders r: "valid" or "invalid", the counts, then one anomaly per
// paragraph.
func (r Result) String() string {
	var b strings.Builder
	b.WriteString(r.Summary())
	for _, a := range r.Anomalies {
		b.WriteString("\n" + a.String())
	}
	for _, a := range r.Allowed {
		b.WriteString("\nallowed " + a.String())
	}
	return b.String()
}

// Summary is the first line of String: the verdict and the counts.
func (r Result) Summary() string {
	var b strings.Builder
	if r.Valid {
		b.WriteString("valid")
	} else {
		fmt.Fprintf(&b, "invalid: %d anomalies %v", len(r.Anomalies), r.Kinds())
	}
	for _, k := range slices.Sorted(maps.Keys(r.Counts)) {
		fmt.Fprintf(&b, " %s=%d", k, r.Counts[k])
	}
	return b.String()
}

// String renders a as its kind and detail, then one line per operation.
func (a Anomaly) String() string {
	var b strings.Builder
	b.WriteString(a.Kind + ": " + a.Detail)
	for _, r := range a.Ops {
		fmt.Fprintf(&b, "\n    %s %s", refName(r.Index), r.Op)
	}
	return b.String()
}

// refName names an op in details: "#12", or "final" for an op outside the
// history.
func refName(i int) string {
	if i < 0 {
		return "final"
	}
	return fmt.Sprintf("#%d", i)
}

// refs pairs indexes into h with their ops.
func refs(h []Op, idx ...int) []OpRef {
	out := make([]OpRef, len(idx))
	for i, j := range idx {
		out[i] = OpRef{Index: j, Op: h[j]}
	}
	return out
}

// formatInts renders at most limit values of vs, then how many were left out.
func formatInts(vs []int, limit int) string {
	if len(vs) <= limit {
		return fmt.Sprint(vs)
	}
	return fmt.Sprintf("%v ... (%d more)", vs[:limit], len(vs)-limit)
}
