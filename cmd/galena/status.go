package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
)

// statusCallTimeout bounds one Status or Digest call to one member, once
// connected.
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
UNREACHABLE. A member's error, if any, follows the table.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			eps, err := g.endpointList()
			if err != nil {
				return err
			}
			d, err := g.memberDialer()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			rows, err := clusterStatus(ctx, d, eps)
			if err != nil {
				return err
			}
			if asJSON {
				return printStatusJSON(cmd.OutOrStdout(), rows)
			}
			return printStatusTable(cmd.OutOrStdout(), rows)
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per member")
	return cmd
}

// clusterStatus asks the endpoints for the member list, then every member
// for its status.
func clusterStatus(ctx context.Context, d memberDialer, eps []string) ([]memberStatus, error) {
	first, err := firstStatus(ctx, d, eps)
	if err != nil {
		return nil, err
	}
	members := first.GetMembers()
	if len(members) == 0 {
		return []memberStatus{rowOf(first)}, nil
	}
	rows := make([]memberStatus, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() { rows[i] = memberRow(ctx, d, m) })
	}
	wg.Wait()
	return rows, nil
}

// firstStatus asks every endpoint for its status at once and returns the
// first answer, so that an endpoint that does not answer delays nothing.
func firstStatus(ctx context.Context, d memberDialer, eps []string) (*galenapb.StatusResponse, error) {
	type answer struct {
		i    int
		resp *galenapb.StatusResponse
		err  error
	}
	answers := make(chan answer, len(eps)) // never blocks a sender
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // first: the others stop
	for i, ep := range eps {
		wg.Go(func() {
			resp, err := fetchStatus(ctx, d, ep)
			answers <- answer{i, resp, err}
		})
	}
	errs := make([]string, len(eps))
	for range eps {
		a := <-answers
		if a.err == nil {
			return a.resp, nil
		}
		errs[a.i] = fmt.Sprintf("%s: %s", eps[a.i], cause(a.err))
	}
	return nil, fmt.Errorf("no endpoint reachable (%s): %s", strings.Join(eps, ","), strings.Join(errs, "; "))
}

// memberRow is the status row of member m.
func memberRow(ctx context.Context, d memberDialer, m *galenapb.Member) memberStatus {
	resp, err := fetchStatus(ctx, d, m.GetAddress())
	if err != nil {
		return memberStatus{ID: m.GetId(), Address: m.GetAddress(), LastContactMs: -1, State: stateUnreachable, Error: cause(err)}
	}
	return rowOf(resp)
}

// fetchStatus calls Status on one address.
func fetchStatus(ctx context.Context, d memberDialer, addr string) (resp *galenapb.StatusResponse, err error) {
	err = d.call(ctx, addr, func(ctx context.Context, conn *grpc.ClientConn) (err error) {
		resp, err = galenapb.NewKVClient(conn).Status(ctx, &galenapb.StatusRequest{})
		return err
	})
	return resp, err
}

func rowOf(r *galenapb.StatusResponse) memberStatus {
	return memberStatus{
		ID: r.GetId(), Address: r.GetAddress(), ClusterID: r.GetClusterId(), Role: roleOf(r.GetArbitrator()),
		RaftState: r.GetRaftState(), LeaderID: r.GetLeaderId(),
		AppliedSeqno: r.GetAppliedSeqno(), ApplyLag: r.GetApplyLag(), LastContactMs: r.GetLastContactMs(),
		Commits: r.GetCommits(), CertFailures: r.GetCertFailures(), State: r.GetState(), Error: r.GetError(),
	}
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
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tROLE\tRAFT\tAPPLIED\tLAG\tCONTACT\tCOMMITS\tCERT_FAIL\tSTATE")
	for _, r := range rows {
		if r.State == stateUnreachable {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\t%s\n", r.ID, r.Address, r.State)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%d\t%d\t%s\n", r.ID, r.Address, r.Role, r.RaftState,
			r.AppliedSeqno, r.ApplyLag, r.contact(), r.Commits, r.CertFailures, r.State)
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
