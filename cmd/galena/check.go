package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/spf13/cobra"
)

// checkRetryInterval is how often `galena check` asks again while the
// members cannot be compared yet.
const checkRetryInterval = 250 * time.Millisecond

// Verdicts of `galena check`.
const (
	verdictConsistent = "consistent"      // every compared member has the same digest
	verdictDiverged   = "diverged"        // some members differ from a majority
	verdictDisagree   = "disagree"        // the members differ and no digest has a majority
	verdictNoCommon   = "no_common_seqno" // no seqno at which all answering members can be compared
	verdictTooFew     = "too_few"         // some data members did not answer and fewer than two did
)

// Per-member outcomes of `galena check`.
const (
	memberAgrees      = "agrees"
	memberDiverged    = "diverged"
	memberDisagrees   = "disagrees"
	memberNotCompared = "not_compared" // answered, but there was no common seqno
	memberArbitrator  = "arbitrator"   // stores no data: skipped
	memberUnreachable = "unreachable"
)

// digestAnswer is what one member reported.
type digestAnswer struct {
	id, addr   string
	arbitrator bool
	applied    uint64
	state      string
	points     map[uint64][]byte // seqno → digest: the checkpoints and the applied seqno's
	err        error             // the member did not answer
}

// checkMember is one member in the report of `galena check`.
type checkMember struct {
	ID           string `json:"id"`
	Address      string `json:"address"`
	Outcome      string `json:"outcome"`
	State        string `json:"state,omitempty"`
	AppliedSeqno uint64 `json:"applied_seqno,omitempty"`
	Digest       string `json:"digest,omitempty"` // at the report's seqno, hex
	Error        string `json:"error,omitempty"`
}

// checkReport is the result of `galena check`, printed as is by --json.
type checkReport struct {
	Verdict string        `json:"verdict"`
	Seqno   uint64        `json:"seqno,omitempty"`  // where the members were compared
	Digest  string        `json:"digest,omitempty"` // the agreed or the majority's digest, hex
	Members []checkMember `json:"members"`
}

func newCheckCmd(g *globalFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check that the members applied the same history",
		Long: `Check that the members applied the same history: every member keeps a running
digest of what it applied, and members at the same seqno must have the same
digest. The members are those listed by the first reachable endpoint; each
is asked for its digest and its recent checkpoints (one every
--checkpoint-interval seqnos). They are compared at the highest seqno all of
them can report: their applied seqno when it is the same, else the highest
checkpoint they all hold. While there is none (the cluster is busy) the
check asks again, until --timeout.

Arbitrators store no data and are skipped, as are members that do not
answer (not connected within --dial-timeout, say). A member whose digest
differs from the majority's is named as diverged; two members that differ
are said to disagree.

Exit status 0 when the members agree, 1 when they do not or when no common
seqno was found within --timeout.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				rep, err := checkCluster(ctx, prober{c: c, dialTimeout: g.dialTimeout}, checkRetryInterval)
				if err != nil {
					return err
				}
				if asJSON {
					err = json.NewEncoder(cmd.OutOrStdout()).Encode(rep)
				} else {
					err = printCheck(cmd.OutOrStdout(), rep)
				}
				if err != nil {
					return err
				}
				return rep.failure(g.timeout)
			})
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as one JSON object")
	return cmd
}

// checkCluster asks every member for its digest, again every interval while
// they cannot be compared, until ctx is done. A round that the deadline may
// have cut short never replaces the report of an earlier one.
func checkCluster(ctx context.Context, p prober, interval time.Duration) (checkReport, error) {
	m, err := p.c.Members(ctx)
	if err != nil {
		return checkReport{}, err
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var rep checkReport
	for {
		answers := fetchDigests(ctx, p, m.Members)
		if rep.Verdict != "" && cutShort(ctx, answers) {
			return rep, nil // report the last whole round
		}
		rep = compareDigests(answers)
		if rep.final() {
			return rep, nil
		}
		select {
		case <-ctx.Done():
			return rep, nil
		case <-tick.C:
		}
	}
}

// cutShort reports whether the deadline may have cut a round short: a
// member did not answer, and ctx's deadline has passed. ctx.Err() alone does
// not tell: a call fails at the deadline on gRPC's own timer, which may fire
// before ctx's.
func cutShort(ctx context.Context, answers []digestAnswer) bool {
	deadline, ok := ctx.Deadline()
	if ctx.Err() == nil && (!ok || time.Now().Before(deadline)) {
		return false
	}
	return slices.ContainsFunc(answers, func(a digestAnswer) bool { return a.err != nil })
}

// fetchDigests asks every member for its digest, concurrently.
func fetchDigests(ctx context.Context, p prober, members []client.Member) []digestAnswer {
	answers := make([]digestAnswer, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() { answers[i] = fetchDigest(ctx, p, m) })
	}
	wg.Wait()
	return answers
}

// fetchDigest asks one member for its digest and fills the answer's digest
// points from it; an empty digest means the member keeps none (an
// arbitrator).
func fetchDigest(ctx context.Context, p prober, m client.Member) digestAnswer {
	a := digestAnswer{id: m.ID, addr: m.Addr}
	var d client.MemberDigest
	if d, a.err = p.digest(ctx, m.Addr); a.err != nil {
		return a
	}
	a.state, a.applied = d.State, d.AppliedSeqno
	if len(d.Digest) == 0 {
		a.arbitrator = true
		return a
	}
	a.points = map[uint64][]byte{}
	for _, cp := range d.Checkpoints {
		a.points[cp.Seqno] = cp.Digest
	}
	a.points[a.applied] = d.Digest
	return a
}

// compareDigests compares the data members that answered at the highest
// seqno they all can report.
func compareDigests(answers []digestAnswer) checkReport {
	rep := checkReport{Members: make([]checkMember, len(answers))}
	var data []int // indexes of the comparable answers
	unreachable := 0
	for i, a := range answers {
		rep.Members[i] = checkMember{ID: a.id, Address: a.addr, State: a.state, AppliedSeqno: a.applied}
		switch {
		case a.err != nil:
			rep.Members[i].Outcome, rep.Members[i].Error, rep.Members[i].State = memberUnreachable, cause(a.err), ""
			unreachable++
		case a.arbitrator:
			rep.Members[i].Outcome = memberArbitrator
		default:
			rep.Members[i].Outcome = memberNotCompared
			data = append(data, i)
		}
	}
	if len(data) == 0 || (len(data) == 1 && unreachable > 0) {
		rep.Verdict = verdictTooFew
		return rep
	}
	seqno, ok := commonSeqno(answers, data)
	if !ok {
		rep.Verdict = verdictNoCommon
		return rep
	}
	rep.Seqno = seqno
	judge(&rep, answers, data)
	return rep
}

// commonSeqno is the highest seqno at which every answer in data has a digest.
func commonSeqno(answers []digestAnswer, data []int) (uint64, bool) {
	for _, s := range slices.Backward(slices.Sorted(maps.Keys(answers[data[0]].points))) {
		if everyHas(answers, data[1:], s) {
			return s, true
		}
	}
	return 0, false
}

func everyHas(answers []digestAnswer, idx []int, seqno uint64) bool {
	for _, i := range idx {
		if _, ok := answers[i].points[seqno]; !ok {
			return false
		}
	}
	return true
}

// judge sets the verdict and each compared member's outcome at rep.Seqno.
func judge(rep *checkReport, answers []digestAnswer, data []int) {
	count := map[string]int{}
	for _, i := range data {
		d := hex.EncodeToString(answers[i].points[rep.Seqno])
		rep.Members[i].Digest = d
		count[d]++
	}
	top := slices.MaxFunc(slices.Sorted(maps.Keys(count)), func(a, b string) int { return count[a] - count[b] })
	switch {
	case len(count) == 1:
		rep.Verdict, rep.Digest = verdictConsistent, top
	case 2*count[top] > len(data):
		rep.Verdict, rep.Digest = verdictDiverged, top
	default:
		rep.Verdict = verdictDisagree
	}
	for _, i := range data {
		m := &rep.Members[i]
		switch {
		case rep.Verdict == verdictDisagree:
			m.Outcome = memberDisagrees
		case m.Digest == top:
			m.Outcome = memberAgrees
		default:
			m.Outcome = memberDiverged
		}
	}
}

// final reports whether asking again cannot change the verdict.
func (r checkReport) final() bool {
	return r.Verdict != verdictNoCommon && r.Verdict != verdictTooFew
}

// failure is the command's error for the report, nil when consistent.
func (r checkReport) failure(timeout time.Duration) error {
	switch r.Verdict {
	case verdictConsistent:
		return nil
	case verdictDiverged:
		return fmt.Errorf("inconsistent: %s diverged at seqno %d", strings.Join(r.idsWith(memberDiverged), ", "), r.Seqno)
	case verdictDisagree:
		return fmt.Errorf("inconsistent: %s disagree at seqno %d, and no digest has a majority",
			strings.Join(r.idsWith(memberDisagrees), ", "), r.Seqno)
	case verdictTooFew:
		return fmt.Errorf("not checked: fewer than two members with data answered within %v", timeout)
	}
	return fmt.Errorf("not checked: no seqno at which %s can all be compared within %v (applied: %s)",
		strings.Join(r.idsWith(memberNotCompared), ", "), timeout, r.applied())
}

func (r checkReport) idsWith(outcome string) []string {
	var ids []string
	for _, m := range r.Members {
		if m.Outcome == outcome {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

func (r checkReport) applied() string {
	var parts []string
	for _, m := range r.Members {
		if m.Outcome == memberNotCompared {
			parts = append(parts, fmt.Sprintf("%s %d", m.ID, m.AppliedSeqno))
		}
	}
	return strings.Join(parts, ", ")
}

// printCheck prints the skipped members, then the verdict: one line when the
// members agree, else one line per member that differs.
func printCheck(w io.Writer, r checkReport) error {
	var b strings.Builder
	for _, m := range r.Members {
		switch m.Outcome {
		case memberUnreachable:
			fmt.Fprintf(&b, "%s: not checked: unreachable: %s\n", m.ID, m.Error)
		case memberArbitrator:
			fmt.Fprintf(&b, "%s: not checked: arbitrator, stores no data\n", m.ID)
		}
	}
	switch r.Verdict {
	case verdictConsistent:
		if n := len(r.idsWith(memberAgrees)); n > 1 {
			fmt.Fprintf(&b, "consistent: %d members agree at seqno %d (digest %s)\n", n, r.Seqno, short(r.Digest))
		} else {
			fmt.Fprintf(&b, "consistent: the only member with data is at seqno %d (digest %s)\n", r.Seqno, short(r.Digest))
		}
	case verdictDiverged:
		for _, m := range r.Members {
			if m.Outcome == memberDiverged {
				fmt.Fprintf(&b, "%s diverged at seqno %d: digest %s differs from the majority's %s\n",
					m.ID, r.Seqno, short(m.Digest), short(r.Digest))
			}
		}
	case verdictDisagree:
		var parts []string
		for _, m := range r.Members {
			if m.Outcome == memberDisagrees {
				parts = append(parts, fmt.Sprintf("%s has %s", m.ID, short(m.Digest)))
			}
		}
		fmt.Fprintf(&b, "members disagree at seqno %d: %s\n", r.Seqno, strings.Join(parts, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// short abbreviates a hex digest.
func short(d string) string {
	if len(d) <= 8 {
		return d
	}
	return d[:8] + "…"
}
