package main

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/galenadb/galena/client"
	"github.com/spf13/cobra"
)

// watchRetry is how long `galena watch` waits before it tries the members
// again when none answered.
const watchRetry = time.Second

func newWatchCmd(g *globalFlags) *cobra.Command {
	var (
		f    rangeFlags
		from uint64
	)
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Follow the committed changes to a key range, one JSON line per transaction, until interrupted",
		Long: `Follow the committed changes to a key range: one JSON line per committed
transaction that wrote a key in it, in commit (seqno) order, with the
transaction's writes to the range in key order:

  {"seqno":42,"changes":[{"key":"user/1","value":"ada"},{"key":"user/2","deleted":true}]}

A key or value that is not UTF-8 is printed as key_base64 or value_base64.
--from N prints the transactions after seqno N (a line's seqno resumes
exactly after it); without it, those committed from now on. When the member
watched fails, the watch goes on on another one, without a gap or a repeat.
--timeout bounds the start of the watch only.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			start, end, err := f.bounds(cmd)
			if err != nil {
				return err
			}
			c, eps, err := g.newClient()
			if err != nil {
				return err
			}
			defer c.Close()
			err = watch(cmd.Context(), c, cmd, start, end, from, g.timeout)
			if errors.Is(err, context.Canceled) && cmd.Context().Err() != nil {
				return nil // interrupted
			}
			return explain(err, eps, g.timeout)
		}),
	}
	addRangeFlags(cmd, &f, "watch")
	cmd.Flags().Uint64Var(&from, "from", 0, "print the transactions after this seqno; 0: from now on")
	return cmd
}

// watch prints the events of a watch until ctx ends or it fails for good.
func watch(ctx context.Context, c *client.Client, cmd *cobra.Command, start, end []byte, from uint64, timeout time.Duration) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	startBound := time.AfterFunc(timeout, cancel)
	w, err := c.Watch(sctx, start, end, from)
	if w != nil {
		defer w.Close()
	}
	if !startBound.Stop() { // it fired: the watch, if it started, is cancelled
		return fmt.Errorf("watch not started within %v (--timeout): %w", timeout, cmp.Or(err, context.DeadlineExceeded))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "watching after seqno %d\n", w.Progress())
	out := json.NewEncoder(cmd.OutOrStdout())
	for {
		e, err := w.Next()
		switch {
		case errors.Is(err, client.ErrUnavailable):
			fmt.Fprintf(cmd.ErrOrStderr(), "no member answered; trying again after seqno %d: %s\n", w.Progress(), cause(err))
			pause(ctx, watchRetry)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		case err != nil:
			return fmt.Errorf("watch after seqno %d: %w", w.Progress(), err)
		}
		if err := out.Encode(jsonEvent(e)); err != nil {
			return err
		}
	}
}

// watchLine is one line of `galena watch`.
type watchLine struct {
	Seqno   uint64   `json:"seqno"`
	Changes []jsonKV `json:"changes"`
}

func jsonEvent(e client.Event) watchLine {
	l := watchLine{Seqno: e.Seqno, Changes: make([]jsonKV, len(e.Changes))}
	for i, c := range e.Changes {
		l.Changes[i] = newJSONKV(c.Key, c.Value, c.Deleted)
	}
	return l
}

// textOrBase64 returns b as text when it is UTF-8, else as base64.
func textOrBase64(b []byte) (text, b64 string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return "", base64.StdEncoding.EncodeToString(b)
}
