package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/node"
	"github.com/spf13/cobra"
)

// progressEvery is how often galena backup reports how far it got.
const progressEvery = time.Second

func newBackupCmd(g *globalFlags) *cobra.Command {
	var out, member string
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Copy the state of a data member, at one seqno, into a file",
		Long: `Copy the state of a data member, at one seqno, into a file: every key's
latest value, and what certification needs, not the history. The member
goes on serving meanwhile. The copy arrives checked (its size and SHA-256
against what the member sent), is written to FILE.partial, synced, and
renamed to FILE once complete; an existing FILE is never overwritten.
Progress goes to stderr every second. --timeout does not bound a backup
(interrupt it instead).

galena restore seeds the members of a new cluster from the file.`,
		Example: `  galena --endpoints 127.0.0.1:7001 backup --out galena-backup
  galena --endpoints 127.0.0.1:7001 backup --member 127.0.0.1:7002 --out galena-backup`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("--out is required")
			}
			c, eps, err := g.newClient()
			if err != nil {
				return err
			}
			defer c.Close()
			if member == "" {
				member = eps[0]
			}
			return backup(cmd.Context(), c, member, out, cmd.OutOrStdout(), cmd.ErrOrStderr())
		}),
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write the backup to (required; must not exist)")
	cmd.Flags().StringVar(&member, "member", "", "host:port of the data member to copy (default: the first endpoint)")
	return cmd
}

// backup copies member's state into the file out.
func backup(ctx context.Context, c *client.Client, member, out string, stdout, stderr io.Writer) error {
	if _, err := os.Stat(out); err == nil {
		return usagef("--out %s exists: give a new file", out)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	partial := out + ".partial"
	f, err := os.OpenFile(partial, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer func() {
		f.Close()          // a second Close, after a successful one, is harmless
		os.Remove(partial) // linked to out on success
	}()
	start, last := time.Now(), time.Now()
	w := bufio.NewWriterSize(f, 1<<20)
	info, err := c.Backup(ctx, member, w, func(n int64) {
		if now := time.Now(); now.Sub(last) >= progressEvery {
			last = now
			fmt.Fprintf(stderr, "backup: %s received (%s/s)\n", humanize.IBytes(uint64(n)), rate(n, now.Sub(start)))
		}
	})
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = f.Close()
	}
	if err == nil {
		err = os.Link(partial, out) // unlike a rename, never replaces a file made meanwhile
	}
	if err != nil {
		return fmt.Errorf("backup of %s: %w", member, err)
	}
	took := time.Since(start)
	fmt.Fprintf(stdout, "backup of %s at seqno %d (log index %d): %s in %v (%s/s), sha256 %x, written to %s\n",
		member, info.Seqno, info.Index, humanize.IBytes(uint64(info.Bytes)), took.Round(time.Millisecond),
		rate(info.Bytes, took), info.SHA256, out)
	return nil
}

// rate is n bytes over d, per second.
func rate(n int64, d time.Duration) string {
	return humanize.IBytes(uint64(float64(n) / max(d.Seconds(), 1e-3)))
}

func newRestoreCmd() *cobra.Command {
	var from, id, data, initialCluster, clusterToken string
	var arbitrator bool
	cmd := &cobra.Command{
		Use:   "restore --from FILE --id ID --data DIR --initial-cluster ...",
		Short: "Seed the data directory of a new cluster's member from a backup",
		Long: `Seed the data directory of a member of a new cluster from a file written by
galena backup. Run it once for every member listed in --initial-cluster,
each with its own --id and --data and the same file, then start each
member with galena start and the same --id, --data, --initial-cluster and
--cluster-token. The new cluster starts from the backup's state and seqno.

The file is read whole and checked first (format, order, checksum): a bad
file changes nothing. --data must be absent or empty.`,
		Example: `  IC=n1=10.0.0.1:7001,n2=10.0.0.2:7001,n3=10.0.0.3:7001
  galena restore --from galena-backup --id n1 --data /var/lib/galena/n1 --initial-cluster $IC
  galena start --id n1 --addr 10.0.0.1:7001 --data /var/lib/galena/n1 --initial-cluster $IC`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			switch {
			case from == "":
				return usagef("--from is required")
			case id == "":
				return usagef("--id is required")
			case data == "":
				return usagef("--data is required")
			case initialCluster == "":
				return usagef("--initial-cluster is required: the members of the new cluster")
			case clusterToken == "":
				return usagef("--cluster-token must not be empty")
			}
			cfg := node.DefaultConfig()
			cfg.ID, cfg.DataDir, cfg.ClusterToken, cfg.Arbitrator = id, data, clusterToken, arbitrator
			var err error
			if cfg.InitialCluster, err = node.ParseInitialCluster(initialCluster); err != nil {
				return usagef("--initial-cluster: %w", err)
			}
			info, err := node.Restore(cfg, from)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s seeded with the state at seqno %d (%d entries) from %s; "+
				"start the member with the same --id, --data, --initial-cluster and --cluster-token\n",
				id, data, info.Seqno, info.Entries, from)
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&from, "from", "", "backup file, written by galena backup (required)")
	fl.StringVar(&id, "id", "", "the member's id in the new cluster (required)")
	fl.StringVar(&data, "data", "", "the member's data directory, absent or empty (required)")
	fl.StringVar(&initialCluster, "initial-cluster", "", "every voting member of the new cluster: id=host:port,... (required)")
	fl.StringVar(&clusterToken, "cluster-token", node.DefaultConfig().ClusterToken, "the new cluster's token, as galena start will be given")
	fl.BoolVar(&arbitrator, "arbitrator", false, "the member is an arbitrator (it keeps no data)")
	return cmd
}
