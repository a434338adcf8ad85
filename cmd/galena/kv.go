package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/security"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// globalFlags are the flags every client command shares.
type globalFlags struct {
	endpoints              string
	timeout, dialTimeout   time.Duration
	tlsCert, tlsKey, tlsCA string
}

func addGlobalFlags(root *cobra.Command) *globalFlags {
	g := &globalFlags{}
	def := os.Getenv("GALENA_ENDPOINTS")
	if def == "" {
		def = "127.0.0.1:7001"
	}
	root.PersistentFlags().StringVar(&g.endpoints, "endpoints", def,
		"comma-separated host:port of cluster members (env GALENA_ENDPOINTS)")
	root.PersistentFlags().DurationVar(&g.timeout, "timeout", 5*time.Second, "bound on a whole client command")
	root.PersistentFlags().DurationVar(&g.dialTimeout, "dial-timeout", client.DefaultDialTimeout,
		"bound on connecting to one member: one that does not answer within it is skipped, or shown UNREACHABLE")
	root.PersistentFlags().StringVar(&g.tlsCA, "tls-ca", os.Getenv("GALENA_TLS_CA"),
		"connect over TLS, trusting members whose certificates this CA certificate signed (env GALENA_TLS_CA)")
	root.PersistentFlags().StringVar(&g.tlsCert, "tls-cert", os.Getenv("GALENA_TLS_CERT"),
		"client certificate to present, with --tls-key: its role says what the client may do (env GALENA_TLS_CERT)")
	root.PersistentFlags().StringVar(&g.tlsKey, "tls-key", os.Getenv("GALENA_TLS_KEY"),
		"private key of --tls-cert (env GALENA_TLS_KEY)")
	return g
}

// clientTLS is the TLS configuration of --tls-ca, --tls-cert and
// --tls-key; nil, for plaintext, when none is given.
func (g *globalFlags) clientTLS() (*tls.Config, error) {
	switch {
	case g.tlsCA == "" && g.tlsCert == "" && g.tlsKey == "":
		return nil, nil
	case g.tlsCA == "":
		return nil, usagef("--tls-cert and --tls-key need --tls-ca, the CA certificate that verifies the members")
	case (g.tlsCert == "") != (g.tlsKey == ""):
		return nil, usagef("--tls-cert and --tls-key go together: give both or neither")
	}
	cfg, err := security.Files{Cert: g.tlsCert, Key: g.tlsKey, CA: g.tlsCA}.Client()
	if err != nil {
		return nil, usagef("--tls-*: %w", err)
	}
	return cfg, nil
}

// prober asks single members about themselves, for the commands that
// report on every member (status, check), through a client of
// --endpoints.
type prober struct {
	c           *client.Client
	dialTimeout time.Duration // the client's: --dial-timeout
}

// status asks the member at addr for its status, bounded by --dial-timeout
// to connect and statusCallTimeout more.
func (p prober) status(ctx context.Context, addr string) (client.MemberStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, p.dialTimeout+statusCallTimeout)
	defer cancel()
	st, err := p.c.Status(ctx, addr)
	return st, p.failure(err)
}

// digest asks the member at addr for its digest, as status does.
func (p prober) digest(ctx context.Context, addr string) (client.MemberDigest, error) {
	ctx, cancel := context.WithTimeout(ctx, p.dialTimeout+statusCallTimeout)
	defer cancel()
	d, err := p.c.Digest(ctx, addr)
	return d, p.failure(err)
}

func (p prober) failure(err error) error {
	if err == nil {
		return nil
	}
	return probeError{err: err, dialTimeout: p.dialTimeout}
}

// probeError is why a member did not answer a probe, in the words of the
// flags: that it did not connect within --dial-timeout, or the member's or
// the transport's own message.
type probeError struct {
	err         error
	dialTimeout time.Duration
}

func (e probeError) Error() string {
	if errors.Is(e.err, client.ErrUnavailable) && errors.Is(e.err, context.DeadlineExceeded) {
		return fmt.Sprintf("not connected within %v (--dial-timeout)", e.dialTimeout)
	}
	return cause(e.err)
}

func (e probeError) Unwrap() error { return e.err }

// endpointList validates and splits --endpoints.
func (g *globalFlags) endpointList() ([]string, error) {
	eps := splitList(g.endpoints)
	if len(eps) == 0 {
		return nil, usagef("--endpoints lists no endpoint")
	}
	for _, ep := range eps {
		if err := checkEndpoint(ep); err != nil {
			return nil, err
		}
	}
	if g.timeout <= 0 {
		return nil, usagef("--timeout must be positive, got %v", g.timeout)
	}
	if g.dialTimeout <= 0 {
		return nil, usagef("--dial-timeout must be positive, got %v", g.dialTimeout)
	}
	return eps, nil
}

// checkEndpoint refuses an endpoint that is not host:port: a scheme, or
// no port, which gRPC would take for a name to resolve or port 443.
func checkEndpoint(ep string) error {
	if scheme, _, ok := strings.Cut(ep, "://"); ok {
		return usagef("--endpoints: %q: give host:port, without %s:// (for TLS, pass --tls-ca)", ep, scheme)
	}
	host, port, err := net.SplitHostPort(ep)
	if err != nil || host == "" || port == "" {
		return usagef("--endpoints: %q is not host:port (a member listens on --addr, 7001 by default)", ep)
	}
	return nil
}

// withClient runs fn with a client of --endpoints that connects within
// --dial-timeout and a context bounded by --timeout, and explains the errors
// a user can act on.
func (g *globalFlags) withClient(cmd *cobra.Command, fn func(ctx context.Context, c *client.Client) error) error {
	c, eps, err := g.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
	defer cancel()
	return explain(fn(ctx, c), eps, g.timeout)
}

// newClient is a client of the endpoints, as the flags configure it.
func (g *globalFlags) newClient() (*client.Client, []string, error) {
	eps, err := g.endpointList()
	if err != nil {
		return nil, nil, err
	}
	tlsCfg, err := g.clientTLS()
	if err != nil {
		return nil, nil, err
	}
	c, err := client.New(client.Config{Endpoints: eps, DialTimeout: g.dialTimeout, TLS: tlsCfg})
	return c, eps, err
}

// explain rewords the errors of an unreachable cluster.
func explain(err error, eps []string, timeout time.Duration) error {
	list := strings.Join(eps, ",")
	switch {
	case err == nil:
		return nil
	case errors.Is(err, client.ErrNotPrimary):
		// A member answered, and refused: the cause is its refusal.
		return fmt.Errorf("not primary: the members that answered (of %s) are cut off from the majority, or no leader is elected yet: %s", list, cause(err))
	case errors.Is(err, client.ErrUnavailable) && strings.Contains(cause(err), "server preface"):
		// A TLS member closes a connection that does not start a handshake.
		return fmt.Errorf("no endpoint reachable (%s): %s (if the members use TLS, pass --tls-ca)", list, cause(err))
	case errors.Is(err, client.ErrUnavailable):
		return fmt.Errorf("no endpoint reachable (%s): %s", list, cause(err))
	case errors.Is(err, client.ErrIndeterminate) && grpcCause(err).Code() == codes.Unavailable:
		return fmt.Errorf("no endpoint reachable (%s); the write may or may not have been applied: %s", list, cause(err))
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer within %v (%s): %w", timeout, list, err)
	case errors.Is(err, client.ErrUnauthenticated):
		return fmt.Errorf("%w (give a client certificate: --tls-cert and --tls-key)", err)
	}
	return err
}

// cause is the message of the gRPC status inside err, or err's own message.
func cause(err error) string {
	if st := grpcCause(err); st != nil {
		return st.Message()
	}
	return err.Error()
}

// grpcCause returns the gRPC status err wraps, or nil.
func grpcCause(err error) *status.Status {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus()
	}
	return nil
}

func newPutCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "put KEY [VALUE|-]",
		Short: "Write a key; without VALUE, or with -, the value is read from standard input",
		Args:  keyArgs(cobra.RangeArgs(1, 2)),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			value, err := putValue(cmd, args)
			if err != nil {
				return err
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				if err := c.Put(ctx, []byte(args[0]), value); err != nil {
					return err
				}
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "OK")
				return err
			})
		}),
	}
}

// maxStdinValue bounds a value read from standard input: a member's
// largest value, and one byte to tell a larger one.
const maxStdinValue = benchMaxValue

// putValue is put's VALUE, or standard input's bytes, exactly, when it is
// absent or "-".
func putValue(cmd *cobra.Command, args []string) ([]byte, error) {
	if len(args) == 2 && args[1] != "-" {
		return []byte(args[1]), nil
	}
	v, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), maxStdinValue+1))
	if err != nil {
		return nil, fmt.Errorf("read the value from standard input: %w", err)
	}
	if len(v) > maxStdinValue {
		return nil, usagef("the value on standard input is over %d bytes, a member's largest value", maxStdinValue)
	}
	return v, nil
}

// readFlags are the flags of how get and scan read.
type readFlags struct {
	stale, linearizable bool
}

func addReadFlags(cmd *cobra.Command, f *readFlags) {
	cmd.Flags().BoolVar(&f.stale, "stale", false,
		"let a member cut off from the majority (NON_PRIMARY) answer from its own, possibly outdated, state")
	cmd.Flags().BoolVar(&f.linearizable, "linearizable", false,
		"see every commit acknowledged before the command began, whichever member took it (one round trip to the leader more); "+
			"without it, a read sees at least what the member it asks has applied")
}

// options are the transaction options of f, or a usage error.
func (f readFlags) options() ([]client.TxnOption, error) {
	switch {
	case f.stale && f.linearizable:
		return nil, usagef("--stale (a cut-off member's own state) and --linearizable (every acknowledged commit) exclude each other")
	case f.stale:
		return []client.TxnOption{client.AllowStale()}, nil
	case f.linearizable:
		return []client.TxnOption{client.Linearizable()}, nil
	}
	return nil, nil
}

// staleHint points at --stale when a read failed because the members tried
// are cut off from the majority.
func staleHint(err error, stale bool) error {
	if err != nil && !stale && errors.Is(err, client.ErrNotPrimary) {
		return fmt.Errorf("%w (--stale reads a cut-off member's own, possibly outdated, state)", err)
	}
	return err
}

// keyArgs checks args with n, and that the first, a KEY, is not empty.
func keyArgs(n cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := n(cmd, args); err != nil {
			return err
		}
		if args[0] == "" {
			return usagef("KEY must not be empty")
		}
		return nil
	}
}

func newGetCmd(g *globalFlags) *cobra.Command {
	var rf readFlags
	var raw bool
	var out outputFlags
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Print the value of a key",
		Long: `Print the value of a key. -w simple (the default) prints the value and a
newline (--raw: the value's bytes alone); -w json prints {"key":...,"value":...}
(key_base64 or value_base64 for bytes that are not UTF-8); -w table prints
KEY and VALUE columns.`,
		Args: keyArgs(cobra.ExactArgs(1)),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			format, err := out.get(cmd)
			if err != nil {
				return err
			}
			if raw && format != formatSimple {
				return usagef("--raw prints the value alone: it goes with -w simple only")
			}
			opts, err := rf.options()
			if err != nil {
				return err
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				v, err := c.Get(ctx, []byte(args[0]), opts...)
				if errors.Is(err, client.ErrNotFound) {
					return fmt.Errorf("key not found: %s", args[0])
				}
				if err != nil {
					return staleHint(err, rf.stale)
				}
				if format != formatSimple {
					kw := newKVWriter(cmd.OutOrStdout(), format)
					if err := kw.write([]byte(args[0]), v); err != nil {
						return err
					}
					return kw.flush()
				}
				if !raw {
					v = append(v, '\n')
				}
				_, err = cmd.OutOrStdout().Write(v)
				return err
			})
		}),
	}
	addReadFlags(cmd, &rf)
	cmd.Flags().BoolVar(&raw, "raw", false, "print the value's bytes exactly, without a newline after them (to pipe into a file)")
	addOutputFlags(cmd, &out, formatSimple)
	return cmd
}

func newDelCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "del KEY",
		Short: "Delete a key (deleting an absent key is not an error)",
		Args:  keyArgs(cobra.ExactArgs(1)),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				if err := c.Delete(ctx, []byte(args[0])); err != nil {
					return err
				}
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "OK")
				return err
			})
		}),
	}
}

// rangeFlags are the flags that name a key range: --prefix, or --start
// and --end.
type rangeFlags struct{ prefix, start, end string }

func addRangeFlags(cmd *cobra.Command, f *rangeFlags, verb string) {
	cmd.Flags().StringVar(&f.prefix, "prefix", "", verb+" the keys with this prefix")
	cmd.Flags().StringVar(&f.start, "start", "", "first key (inclusive)")
	cmd.Flags().StringVar(&f.end, "end", "", "last key (exclusive); empty: no upper bound")
}

// bounds returns the key range the flags name.
func (f rangeFlags) bounds(cmd *cobra.Command) (start, end []byte, err error) {
	fl := cmd.Flags()
	switch {
	case fl.Changed("prefix") && (fl.Changed("start") || fl.Changed("end")):
		return nil, nil, usagef("--prefix cannot be combined with --start or --end")
	case fl.Changed("prefix"):
		return []byte(f.prefix), client.PrefixEnd([]byte(f.prefix)), nil
	case f.end != "" && f.start >= f.end:
		return nil, nil, usagef("--start %q is not before --end %q", f.start, f.end)
	}
	return []byte(f.start), []byte(f.end), nil
}

// scanFlags are the flags of `galena scan`.
type scanFlags struct {
	rangeFlags
	limit int
	read  readFlags
	out   outputFlags
}

func newScanCmd(g *globalFlags) *cobra.Command {
	var f scanFlags
	cmd := &cobra.Command{
		Use:   "scan",
		Short: "Print the keys of a range and their values, in key order",
		Long: `Print the keys of a range and their values, in key order, read at one
snapshot. -w simple (the default) prints key<TAB>value lines: a key or value
that is not UTF-8 or holds a tab, a line break or another control character,
or starts with a double quote, is printed Go-quoted ("a\tb"), so every line
splits at its tab whatever the bytes. -w json prints one {"key":...,"value":...}
object per line (key_base64 or value_base64 for bytes that are not UTF-8);
-w table prints KEY and VALUE columns.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if f.limit < 0 {
				return usagef("--limit must not be negative, got %d", f.limit)
			}
			format, err := f.out.get(cmd)
			if err != nil {
				return err
			}
			start, end, err := f.bounds(cmd)
			if err != nil {
				return err
			}
			opts, err := f.read.options()
			if err != nil {
				return err
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				return staleHint(scan(ctx, c, newKVWriter(cmd.OutOrStdout(), format), start, end, f.limit, opts), f.read.stale)
			})
		}),
	}
	addRangeFlags(cmd, &f.rangeFlags, "scan")
	cmd.Flags().IntVar(&f.limit, "limit", 0, "at most this many keys; 0: no limit")
	addReadFlags(cmd, &f.read)
	addOutputFlags(cmd, &f.out, formatSimple)
	return cmd
}

// scan writes the keys of [start, end), at most limit of them (0: all),
// read in pages at one snapshot.
func scan(ctx context.Context, c *client.Client, kw *kvWriter, start, end []byte, limit int, opts []client.TxnOption) error {
	err := c.View(ctx, func(tx *client.Txn) error {
		if limit > 0 {
			kvs, err := tx.Scan(ctx, start, end, limit)
			for _, kv := range kvs {
				if err := kw.write(kv.Key, kv.Value); err != nil {
					return err
				}
			}
			return err
		}
		for kv, err := range tx.All(ctx, start, end) {
			if err != nil {
				return err
			}
			if err := kw.write(kv.Key, kv.Value); err != nil {
				return err
			}
		}
		return nil
	}, opts...)
	if err != nil {
		return err
	}
	return kw.flush()
}
