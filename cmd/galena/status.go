package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/node"
	"github.com/spf13/cobra"
)

// statusCallTimeout bounds one Status or Digest call to one member once
// connected: a probe takes at most --dial-timeout to connect, then this.
const statusCallTimeout = 3 * time.Second

// stateUnreachable is the state shown for a member that did not answer.
const stateUnreachable = "UNREACHABLE"

func newStatusCmd(g *globalFlags) *cobra.Command {
	var out outputFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the state of every member of the cluster",
		Long: `Show the state of every member of the cluster: the members are those listed
by the first endpoint to answer; each is asked for its own status. A member
not connected within --dial-timeout (down, or stopped and not answering) is
shown UNREACHABLE. The exit status is 1 unless every member is SYNCED.

Columns: ROLE is data or arbitrator (votes, stores no data); TERM is the
member's Raft term and INDEX its Raft commit index; APPLIED is the highest
seqno it applied (a seqno numbers each write-set in the commit order; Raft's
own entries, such as a new leader's, take one too, so APPLIED runs ahead of
COMMITS) and LAG how many committed entries it has yet to apply; CONTACT is
how long ago a follower last heard from the leader ("-" on the leader and
before any contact); COMMITS and CERT_FAIL count the write-sets it certified
as committed and as conflicts since it started; DATA is the size of its data
directory; STATE is SYNCED, JOINED (applying a backlog), JOINING, DONOR,
NON_PRIMARY (cut off from the majority), FAILED or UNREACHABLE; with TLS,
CERT_EXPIRES is when the member's certificate expires. A member's error, if
any, follows the table.

-w json prints one object per member, with the names and units of a
member's /status page (and its Raft indexes, cluster size and version);
-w simple prints the table's rows without the header, tab-separated.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			format, err := out.get(cmd)
			if err != nil {
				return err
			}
			eps, err := g.endpointList()
			if err != nil {
				return err
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				rows, err := clusterStatus(ctx, prober{c: c, dialTimeout: g.dialTimeout}, eps)
				if err != nil {
					return err
				}
				if format == formatJSON {
					err = printStatusJSON(cmd.OutOrStdout(), rows)
				} else {
					err = printStatusTable(cmd.OutOrStdout(), format, rows)
				}
				if err != nil {
					return err
				}
				return notSynced(rows)
			})
		}),
	}
	addOutputFlags(cmd, &out, formatTable)
	return cmd
}

// notSynced fails, naming them, when some members are not SYNCED.
func notSynced(rows []client.MemberStatus) error {
	var not []string
	for _, r := range rows {
		if r.State != node.StateSynced {
			not = append(not, r.ID+" "+r.State)
		}
	}
	if len(not) == 0 {
		return nil
	}
	return fmt.Errorf("not every member is SYNCED: %s", strings.Join(not, ", "))
}

// clusterStatus asks the endpoints for the member list, then every member
// for its status.
func clusterStatus(ctx context.Context, p prober, eps []string) ([]client.MemberStatus, error) {
	first, err := firstStatus(ctx, p, eps)
	if err != nil {
		return nil, err
	}
	if len(first.Members) == 0 {
		return []client.MemberStatus{first}, nil
	}
	rows := make([]client.MemberStatus, len(first.Members))
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
func memberRow(ctx context.Context, p prober, m client.Member) client.MemberStatus {
	st, err := p.status(ctx, m.Addr)
	if err != nil {
		return client.MemberStatus{ID: m.ID, Addr: m.Addr, LastContact: -1, State: stateUnreachable, Error: cause(err)}
	}
	return st
}

// contact formats how long ago a follower heard from the leader.
func contact(r client.MemberStatus) string {
	if r.LastContact < 0 || r.RaftState == "Leader" {
		return "-"
	}
	return r.LastContact.Round(time.Millisecond).String()
}

func printStatusTable(w io.Writer, format string, rows []client.MemberStatus) error {
	tls := slices.ContainsFunc(rows, func(r client.MemberStatus) bool { return !r.CertExpires.IsZero() })
	transfers := slices.ContainsFunc(rows, func(r client.MemberStatus) bool { return r.Transfer.Phase != "" })
	header := []string{"ID", "ADDRESS", "ROLE", "RAFT", "TERM", "INDEX", "APPLIED", "LAG", "CONTACT", "COMMITS", "CERT_FAIL", "DATA", "STATE"}
	if tls {
		header = append(header, "CERT_EXPIRES")
	}
	if transfers {
		header = append(header, "TRANSFER")
	}
	var lines [][]string
	for _, r := range rows {
		var line []string
		if r.State == stateUnreachable {
			line = []string{r.ID, r.Addr, "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", r.State}
		} else {
			line = []string{r.ID, r.Addr, r.Role(), r.RaftState, fmt.Sprint(r.Term), fmt.Sprint(r.CommitIndex),
				fmt.Sprint(r.AppliedSeqno), fmt.Sprint(r.ApplyLag), contact(r), fmt.Sprint(r.Commits), fmt.Sprint(r.CertFailures),
				size(r.DataBytes), r.State}
		}
		if tls {
			line = append(line, "-")
			if !r.CertExpires.IsZero() {
				line[len(line)-1] = r.CertExpires.Format(time.RFC3339)
			}
		}
		if transfers {
			line = append(line, transferOf(r.Transfer, rows))
		}
		lines = append(lines, line)
	}
	if err := writeTable(w, format, header, lines); err != nil {
		return err
	}
	for _, r := range rows {
		if r.Error != "" && format == formatTable {
			if _, err := fmt.Fprintf(w, "%s: %s\n", r.ID, r.Error); err != nil {
				return err
			}
		}
	}
	if format != formatTable {
		return nil
	}
	for _, r := range rows {
		if line := flowControlOf(r); line != "" {
			if _, err := fmt.Fprintln(w, line); err != nil {
				return err
			}
		}
	}
	return nil
}

// flowControlOf says, for the leader's row, whether and how long its flow
// control held commits back; "" if it never did.
func flowControlOf(r client.MemberStatus) string {
	fc := r.FlowControl
	if fc.Paused == 0 && fc.PausedBy == "" && len(fc.Lagging) == 0 {
		return ""
	}
	line := fmt.Sprintf("flow control: %s held commits back %v in all", r.ID, fc.Paused.Round(time.Millisecond))
	if fc.PausedBy != "" {
		line += fmt.Sprintf("; holding them now for %s, %d entries behind", fc.PausedBy, fc.Backlog)
	}
	if len(fc.Lagging) > 0 {
		line += fmt.Sprintf("; LAGGING (too far behind too long, not waited for): %s", strings.Join(fc.Lagging, ", "))
	}
	return line
}

// size is n bytes in binary units, without a space (a table field).
func size(n int64) string { return strings.ReplaceAll(humanize.IBytes(uint64(max(n, 0))), " ", "") }

// transferOf formats a member's state transfer: its phase, the bytes done
// and, when known, of what total. A joiner receiving does not know the
// total; when exactly one member sends, it is that member's.
func transferOf(t client.Transfer, rows []client.MemberStatus) string {
	if t.Phase == "" {
		return "-"
	}
	if t.Total == 0 && t.Phase == "receiving" {
		var senders []client.Transfer
		for _, r := range rows {
			if r.Transfer.Phase == "sending" {
				senders = append(senders, r.Transfer)
			}
		}
		if len(senders) == 1 {
			t.Total = senders[0].Total
		}
	}
	if t.Total <= 0 {
		return fmt.Sprintf("%s:%s", t.Phase, size(t.Bytes))
	}
	return fmt.Sprintf("%s:%s/%s(%d%%)", t.Phase, size(t.Bytes), size(t.Total), min(100, 100*t.Bytes/t.Total))
}

func printStatusJSON(w io.Writer, rows []client.MemberStatus) error {
	enc := json.NewEncoder(w)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}
