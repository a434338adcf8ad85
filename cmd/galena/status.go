package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/spf13/cobra"
)

// statusCallTimeout bounds one Status or Digest call to one member once
// connected: a probe takes at most --dial-timeout to connect, then this.
const statusCallTimeout = 3 * time.Second

// stateUnreachable is the state shown for a member that did not answer.
const stateUnreachable = "UNREACHABLE"

// Member roles shown by `galena status` and `galena check`.
const (
	roleData       = "data"
	roleArbitrator = "arbitrator"
)

// memberStatus is one row of `galena status`.
type memberStatus struct {
	ID            string `json:"id"`
	Address       string `json:"address"`
	ClusterID     string `json:"cluster_id,omitempty"`
	Role          string `json:"role,omitempty"` // data or arbitrator
	RaftState     string `json:"raft_state,omitempty"`
	LeaderID      string `json:"leader_id,omitempty"`
	AppliedSeqno  uint64 `json:"applied_seqno"`
	ApplyLag      uint64 `json:"apply_lag"`
	LastContactMs int64  `json:"last_contact_ms"` // since the leader was last heard from; -1 never
	Commits       uint64 `json:"commits"`
	CertFailures  uint64 `json:"cert_failures"`
	State         string `json:"state"`
	Error         string `json:"error,omitempty"` // why it stopped, or why it did not answer
	// CertExpires is when the member's TLS certificate expires (RFC 3339),
	// "" without TLS.
	CertExpires string `json:"cert_expires,omitempty"`
}

func newStatusCmd(g *globalFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the state of every member of the cluster",
		Long: `Show the state of every member of the cluster: the members are those listed
by the first endpoint to answer; each is asked for its own status. A member
not connected within --dial-timeout (down, or stopped and not answering) is
shown UNREACHABLE.

Columns: ROLE is data or arbitrator (votes, stores no data); APPLIED is the
highest seqno the member applied and LAG how many committed entries it has
yet to apply; CONTACT is how long ago a follower last heard from the leader
("-" on the leader and before any contact); STATE is SYNCED, JOINED (applying
a backlog), JOINING, NON_PRIMARY (cut off from the majority), FAILED or
UNREACHABLE; with TLS, CERT_EXPIRES is when the member's certificate
expires. A member's error, if any, follows the table.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			eps, err := g.endpointList()
			if err != nil {
				return err
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				rows, err := clusterStatus(ctx, prober{c: c, dialTimeout: g.dialTimeout}, eps)
				if err != nil {
					return err
				}
				if asJSON {
					return printStatusJSON(cmd.OutOrStdout(), rows)
				}
				return printStatusTable(cmd.OutOrStdout(), rows)
			})
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per member")
	return cmd
}

// clusterStatus asks the endpoints for the member list, then every member
// for its status.
func clusterStatus(ctx context.Context, p prober, eps []string) ([]memberStatus, error) {
	first, err := firstStatus(ctx, p, eps)
	if err != nil {
		return nil, err
	}
	if len(first.Members) == 0 {
		return []memberStatus{rowOf(first)}, nil
	}
	rows := make([]memberStatus, len(first.Members))
	var wg sync.WaitGroup
	for i, m := range first.Members {
		wg.Go(func() { rows[i] = memberRow(ctx, p, m) })
	}
	wg.Wait()
	return rows, nil
}

// firstStatus asks every endpoint for its status at once and returns the
// first answer, so that an endpoint that does not answer delays nothing.
func firstStatus(ctx context.Context, p prober, eps []string) (client.MemberStatus, error) {
	type answer struct {
		i   int
		st  client.MemberStatus
		err error
	}
	answers := make(chan answer, len(eps)) // never blocks a sender
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // first: the others stop
	for i, ep := range eps {
		wg.Go(func() {
			st, err := p.status(ctx, ep)
			answers <- answer{i, st, err}
		})
	}
	errs := make([]string, len(eps))
	for range eps {
		a := <-answers
		if a.err == nil {
			return a.st, nil
		}
		errs[a.i] = fmt.Sprintf("%s: %s", eps[a.i], cause(a.err))
	}
	return client.MemberStatus{}, fmt.Errorf("no endpoint reachable (%s): %s", strings.Join(eps, ","), strings.Join(errs, "; "))
}

// memberRow is the status row of member m.
func memberRow(ctx context.Context, p prober, m client.Member) memberStatus {
	st, err := p.status(ctx, m.Addr)
	if err != nil {
		return memberStatus{ID: m.ID, Address: m.Addr, LastContactMs: -1, State: stateUnreachable, Error: cause(err)}
	}
	return rowOf(st)
}

func rowOf(s client.MemberStatus) memberStatus {
	row := memberStatus{
		ID: s.ID, Address: s.Addr, ClusterID: s.ClusterID, Role: roleOf(s.Arbitrator),
		RaftState: s.RaftState, LeaderID: s.LeaderID,
		AppliedSeqno: s.AppliedSeqno, ApplyLag: s.ApplyLag, LastContactMs: -1,
		Commits: s.Commits, CertFailures: s.CertFailures, State: s.State, Error: s.Error,
	}
	if s.LastContact >= 0 {
		row.LastContactMs = s.LastContact.Milliseconds()
	}
	if !s.CertExpires.IsZero() {
		row.CertExpires = s.CertExpires.Format(time.RFC3339)
	}
	return row
}

func roleOf(arbitrator bool) string {
	if arbitrator {
		return roleArbitrator
	}
	return roleData
}

// contact formats how long ago a follower heard from the leader.
func (r memberStatus) contact() string {
	if r.LastContactMs < 0 || r.RaftState == "Leader" { // unreachable rows have -1
		return "-"
	}
	return (time.Duration(r.LastContactMs) * time.Millisecond).String()
}

func printStatusTable(w io.Writer, rows []memberStatus) error {
	tls := slices.ContainsFunc(rows, func(r memberStatus) bool { return r.CertExpires != "" })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "ID\tADDRESS\tROLE\tRAFT\tAPPLIED\tLAG\tCONTACT\tCOMMITS\tCERT_FAIL\tSTATE")
	if tls {
		fmt.Fprint(tw, "\tCERT_EXPIRES")
	}
	fmt.Fprintln(tw)
	for _, r := range rows {
		if r.State == stateUnreachable {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\t%s", r.ID, r.Address, r.State)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%d\t%d\t%s", r.ID, r.Address, r.Role, r.RaftState,
				r.AppliedSeqno, r.ApplyLag, r.contact(), r.Commits, r.CertFailures, r.State)
		}
		if tls {
			fmt.Fprintf(tw, "\t%s", cmp.Or(r.CertExpires, "-"))
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rows {
		if r.Error != "" {
			if _, err := fmt.Fprintf(w, "%s: %s\n", r.ID, r.Error); err != nil {
				return err
			}
		}
	}
	return nil
}

func printStatusJSON(w io.Writer, rows []memberStatus) error {
	enc := json.NewEncoder(w)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}
