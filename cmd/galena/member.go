package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/galenadb/galena/client"
	"github.com/spf13/cobra"
)

func newMemberCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member",
		Short: "List, add and remove the members of the cluster",
		Long: `List, add and remove the members of the cluster. Any member takes a change
and passes it to the leader.`,
		Args: cobra.NoArgs, // an unknown subcommand is a usage error
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newMemberListCmd(g), newMemberAddCmd(g), newMemberRemoveCmd(g))
	return cmd
}

func newMemberListCmd(g *globalFlags) *cobra.Command {
	var out outputFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the members of the cluster",
		Long: `List the members of the cluster as the first reachable endpoint knows them:
id, address, whether the member votes (a non-voter is catching up before its
promotion), which one leads (*) and whether it answers now (each is asked
for its status, waiting at most --dial-timeout to connect). -w json prints
one object with the cluster id, the leader's id and the members; -w simple
prints the rows without the header, tab-separated.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			format, err := out.get(cmd)
			if err != nil {
				return err
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				m, err := c.Members(ctx)
				if err != nil {
					return err
				}
				reachable := reachability(ctx, prober{c: c, dialTimeout: g.dialTimeout}, m.Members)
				if format == formatJSON {
					return printMembersJSON(cmd.OutOrStdout(), m, reachable)
				}
				return printMembersTable(cmd.OutOrStdout(), format, m, reachable)
			})
		}),
	}
	addOutputFlags(cmd, &out, formatTable)
	return cmd
}

// reachability asks every member for its status at once and reports which
// answered.
func reachability(ctx context.Context, p prober, members []client.Member) []bool {
	ok := make([]bool, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() {
			_, err := p.status(ctx, m.Addr)
			ok[i] = err == nil
		})
	}
	wg.Wait()
	return ok
}

func newMemberAddCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "add ID HOST:PORT",
		Short: "Add a member to the cluster, as a non-voter",
		Long: `Add a member to the cluster as a non-voter. Then start it with an empty --data
and --join naming any member: it catches up and is promoted to voter. (A
member started with --join adds itself; this command reserves its place
first.)`,
		Example: `  galena member add n4 127.0.0.1:7004
  galena start --id n4 --addr 127.0.0.1:7004 --data /var/lib/galena/n4 --join 127.0.0.1:7001`,
		Args: cobra.ExactArgs(2),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			id, addr := args[0], args[1]
			if err := checkMemberArgs(id, addr); err != nil {
				return err
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				if err := explainChange(c.AddMember(ctx, id, addr), id); err != nil {
					return err
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "added %s at %s as a non-voter\n", id, addr)
				return err
			})
		}),
	}
}

func newMemberRemoveCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a member, running or not, from the cluster",
		Long: `Remove a member, running or not, from the cluster. A running member that is
removed stops serving and its galena start exits with status 0. The last
voter cannot be removed.`,
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if err := checkMemberArgs(args[0], ""); err != nil {
				return err
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				if err := explainChange(c.RemoveMember(ctx, args[0]), args[0]); err != nil {
					return err
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", args[0])
				return err
			})
		}),
	}
}

// checkMemberArgs checks an id and, unless empty, an address, as
// `galena start` would.
func checkMemberArgs(id, addr string) error {
	if id == "" || strings.ContainsAny(id, "=, \t\n") {
		return usagef("member id %q must be non-empty, without '=', ',' or spaces", id)
	}
	if addr == "" {
		return nil
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return usagef("member address %q is not host:port", addr)
	}
	return nil
}

// explainChange rewords a change of member id without an answer, or one
// refused for naming a member that is not there or one that is: the cause
// first, in the command's terms.
func explainChange(err error, id string) error {
	switch {
	case errors.Is(err, client.ErrIndeterminate):
		return fmt.Errorf("no answer: the change may or may not have been made; check with 'galena member list': %w", err)
	case errors.Is(err, client.ErrMemberNotFound):
		return fmt.Errorf("no member %s in the cluster (galena member list shows the members)", id)
	case errors.Is(err, client.ErrMemberExists):
		return fmt.Errorf("%s (galena member list shows the members)", lastPart(err))
	}
	return err
}

// lastPart is the innermost part of err's message, after the prefixes of
// the layers it went through ("client: member already exists: groupcomm:
// already a member: id n1 is in use by ..." → "id n1 is in use by ...").
func lastPart(err error) string {
	msg := err.Error()
	return msg[strings.LastIndex(msg, ": ")+2:]
}

// memberJSON is one member in `galena member list --json`.
type memberJSON struct {
	ID        string `json:"id"`
	Address   string `json:"address"`
	Voter     bool   `json:"voter"`
	Leader    bool   `json:"leader"`
	Reachable bool   `json:"reachable"`
}

// membershipJSON is the output of `galena member list --json`.
type membershipJSON struct {
	ClusterID string       `json:"cluster_id"`
	LeaderID  string       `json:"leader_id"`
	Members   []memberJSON `json:"members"`
}

func printMembersJSON(w io.Writer, m client.Membership, reachable []bool) error {
	out := membershipJSON{ClusterID: m.ClusterID, LeaderID: m.LeaderID, Members: []memberJSON{}}
	for i, mb := range m.Members {
		out.Members = append(out.Members, memberJSON{ID: mb.ID, Address: mb.Addr, Voter: mb.Voter, Leader: mb.ID == m.LeaderID, Reachable: reachable[i]})
	}
	return json.NewEncoder(w).Encode(out)
}

func printMembersTable(w io.Writer, format string, m client.Membership, reachable []bool) error {
	yes := map[bool]string{true: "yes", false: "no"}
	var rows [][]string
	for i, mb := range m.Members {
		leader := ""
		if mb.ID == m.LeaderID {
			leader = "*"
		}
		rows = append(rows, []string{mb.ID, mb.Addr, yes[mb.Voter], leader, yes[reachable[i]]})
	}
	return writeTable(w, format, []string{"ID", "ADDRESS", "VOTER", "LEADER", "REACHABLE"}, rows)
}
