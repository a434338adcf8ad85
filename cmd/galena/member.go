package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"text/tabwriter"

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
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the members of the cluster",
		Long: `List the members of the cluster as the first reachable endpoint knows them:
id, address, whether the member votes (a non-voter is catching up before its
promotion) and which one leads (*). --json prints one object with the
cluster id, the leader's id and the members.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				m, err := c.Members(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return printMembersJSON(cmd.OutOrStdout(), m)
				}
				return printMembersTable(cmd.OutOrStdout(), m)
			})
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the membership as one JSON object")
	return cmd
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
				if err := explainChange(c.AddMember(ctx, id, addr)); err != nil {
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
				if err := explainChange(c.RemoveMember(ctx, args[0])); err != nil {
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

// explainChange rewords a membership change without an answer.
func explainChange(err error) error {
	if errors.Is(err, client.ErrIndeterminate) {
		return fmt.Errorf("no answer: the change may or may not have been made; check with 'galena member list': %w", err)
	}
	return err
}

// memberJSON is one member in `galena member list --json`.
type memberJSON struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
	Leader  bool   `json:"leader"`
}

// membershipJSON is the output of `galena member list --json`.
type membershipJSON struct {
	ClusterID string       `json:"cluster_id"`
	LeaderID  string       `json:"leader_id"`
	Members   []memberJSON `json:"members"`
}

func printMembersJSON(w io.Writer, m client.Membership) error {
	out := membershipJSON{ClusterID: m.ClusterID, LeaderID: m.LeaderID, Members: []memberJSON{}}
	for _, mb := range m.Members {
		out.Members = append(out.Members, memberJSON{ID: mb.ID, Address: mb.Addr, Voter: mb.Voter, Leader: mb.ID == m.LeaderID})
	}
	return json.NewEncoder(w).Encode(out)
}

func printMembersTable(w io.Writer, m client.Membership) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tVOTER\tLEADER")
	for _, mb := range m.Members {
		voter, leader := "no", ""
		if mb.Voter {
			voter = "yes"
		}
		if mb.ID == m.LeaderID {
			leader = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", mb.ID, mb.Addr, voter, leader)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for line := range strings.Lines(buf.String()) {
		if _, err := fmt.Fprintln(w, strings.TrimRight(line, " \n")); err != nil {
			return err
		}
	}
	return nil
}
