package workload

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/galenadb/galena/integration/checker"
)

// Report is the outcome of one Run.
type Report struct {
	Workload string
	Seed     uint64
	// Ops counts the clients' operations by outcome (final reads excluded).
	Ops checker.Counts
	// Faults are the faults injected.
	Faults []FaultEvent
	// Result is the checker's verdict; CheckErr is set when it could not
	// decide (and Result is then empty).
	Result   checker.Result
	CheckErr error
	// Seqno is the seqno the members converged at; Convergence is how long
	// that took once the faults were healed and the cluster was ready.
	Seqno       uint64
	Convergence time.Duration
	// Members is the number of members whose contents were compared;
	// ContentsDiff describes how they differ ("" when identical), Keys is
	// how many keys they hold.
	Members      int
	Keys         int
	ContentsDiff string
	// History is the clients' ops; the final reads are not among them.
	History []checker.Op
	// HistoryDir holds history.jsonl (the clients' ops, then the final
	// reads) and report.txt; empty when they were not written.
	HistoryDir string
	// Elapsed is the wall time of the whole Run.
	Elapsed time.Duration
	// Errors are failures of the run itself: setup, healing, readiness,
	// convergence, final reads, contents, writing the history.
	Errors []error
}

// Valid reports whether the run worked, the checker found no anomaly and
// every member holds the same contents.
func (r Report) Valid() bool {
	return len(r.Errors) == 0 && r.CheckErr == nil && r.Result.Valid && r.ContentsDiff == ""
}

// Anomalies is the number of anomalies the checker found.
func (r Report) Anomalies() int { return len(r.Result.Anomalies) }

// Summary is the report on one line.
func (r Report) Summary() string {
	verdict := "valid"
	switch {
	case r.CheckErr != nil:
		verdict = "UNDECIDED: " + r.CheckErr.Error()
	case !r.Result.Valid:
		verdict = fmt.Sprintf("INVALID: %d anomalies %v", r.Anomalies(), r.Result.Kinds())
	}
	contents := fmt.Sprintf("contents identical on %d members (%d keys)", r.Members, r.Keys)
	if r.ContentsDiff != "" {
		contents = "CONTENTS DIFFER: " + r.ContentsDiff
	}
	s := fmt.Sprintf("%s: ops ok/fail/info=%s, %s, %s, %d anomalies, converged in %v at seqno %d, %s, %v, seed %d",
		r.Workload, r.Ops, r.faultSummary(), verdict, r.Anomalies(), r.Convergence.Round(time.Millisecond), r.Seqno,
		contents, r.Elapsed.Round(time.Millisecond), r.Seed)
	if len(r.Errors) > 0 {
		s += fmt.Sprintf("; %d RUN ERRORS: %v", len(r.Errors), errors.Join(r.Errors...))
	}
	return s
}

// FaultKinds are the kinds of the faults that were injected, took effect
// and were healed, each once, in the order they first ran.
func (r Report) FaultKinds() []string {
	var kinds []string
	for _, e := range r.Faults {
		if e.Err == nil && !slices.Contains(kinds, e.Kind) {
			kinds = append(kinds, e.Kind)
		}
	}
	return kinds
}

// faultSummary is "3 faults (kill, split)", naming the kinds that ran.
func (r Report) faultSummary() string {
	s := fmt.Sprintf("%d faults", len(r.Faults))
	if kinds := r.FaultKinds(); len(kinds) > 0 {
		s += " (" + strings.Join(kinds, ", ") + ")"
	}
	return s
}

// String is the summary, then the faults, the checker's counts and
// anomalies, and where the history is.
func (r Report) String() string {
	var b strings.Builder
	b.WriteString(r.Summary())
	for _, e := range r.Faults {
		fmt.Fprintf(&b, "\n  fault %6.1fs %-14s %s", e.Time.Seconds(), e.Kind, e.Detail)
		if e.Effect != "" {
			b.WriteString(": " + e.Effect)
		}
		if e.Err != nil {
			fmt.Fprintf(&b, " ERROR: %v", e.Err)
		}
	}
	if r.CheckErr == nil {
		b.WriteString("\n  check: " + describeResult(r.Result))
	}
	if r.HistoryDir != "" {
		fmt.Fprintf(&b, "\n  history: %s", filepath.Join(r.HistoryDir, "history.jsonl"))
	}
	return b.String()
}

func countOps(h []checker.Op) checker.Counts {
	var n checker.Counts
	for _, o := range h {
		switch o.Type {
		case checker.TypeOK:
			n.OK++
		case checker.TypeFail:
			n.Fail++
		case checker.TypeInfo:
			n.Info++
		}
	}
	return n
}

const (
	// reportAnomalies is how many anomalies Report.String shows in full.
	reportAnomalies = 10
	// reportLine caps one anomaly's text in Report.String.
	reportLine = 4000
)

// describeResult renders res for a report: the verdict and counts, the
// first anomalies (each capped), and how many allowed patterns of each kind
// (such as G2 cycles under snapshot isolation) were seen.
func describeResult(res checker.Result) string {
	var b strings.Builder
	b.WriteString(res.Summary())
	for i, a := range res.Anomalies {
		if i == reportAnomalies {
			fmt.Fprintf(&b, "\n  ... %d more anomalies (see the history)", len(res.Anomalies)-i)
			break
		}
		text := a.String()
		if len(text) > reportLine {
			text = text[:reportLine] + " ..."
		}
		b.WriteString("\n  " + strings.ReplaceAll(text, "\n", "\n  "))
	}
	allowed := map[string]int{}
	for _, a := range res.Allowed {
		allowed[a.Kind]++
	}
	for _, k := range slices.Sorted(maps.Keys(allowed)) {
		fmt.Fprintf(&b, "\n  allowed: %d %s", allowed[k], k)
	}
	return b.String()
}
