package main

import (
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/galenadb/galena/node"
	"github.com/galenadb/galena/security"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// tlsFlags are the TLS flags of `galena start`. They have the names of the
// client commands' global --tls-* flags, which they shadow: a member's
// certificate is not a client's, and GALENA_TLS_* do not apply to it.
type tlsFlags struct {
	cert, key, ca  string
	clientCertAuth bool
	enablePprof    bool
	listenMetrics  string
}

func addTLSFlags(fl *pflag.FlagSet, f *tlsFlags) {
	fl.StringVar(&f.cert, "tls-cert", "", "this member's certificate (galena cert node); with --tls-key and --tls-ca, everything on the port uses TLS; "+
		"on SIGHUP the member reads the three files again")
	fl.StringVar(&f.key, "tls-key", "", "private key of --tls-cert")
	fl.StringVar(&f.ca, "tls-ca", "", "CA certificate that signed the members' (and clients') certificates")
	fl.BoolVar(&f.clientCertAuth, "client-cert-auth", false, "clients must present a certificate from --tls-ca, whose role (read, write, admin) says what they may do; "+
		"HTTP's /status and /metrics too (read role)")
	fl.BoolVar(&f.enablePprof, "enable-pprof", false, "serve Go's profiler at /debug/pprof/ (with --client-cert-auth, to the admin role only)")
	fl.StringVar(&f.listenMetrics, "listen-metrics", "", "host:port of an extra plaintext listener serving /metrics, /healthz and /readyz only, to anyone (for scrapers and probes in a trusted network)")
}

// apply sets the member's TLS configuration, and what its HTTP side
// serves, from the flags. It returns the CAs the member trusts, as loaded
// (none without TLS).
func (f tlsFlags) apply(cfg *node.Config) ([]*x509.Certificate, error) {
	if f.listenMetrics != "" {
		if _, _, err := net.SplitHostPort(f.listenMetrics); err != nil {
			return nil, usagef("--listen-metrics %q: want host:port: %v", f.listenMetrics, err)
		}
	}
	cfg.EnablePprof, cfg.MetricsAddr = f.enablePprof, f.listenMetrics
	switch {
	case f.cert == "" && f.key == "" && f.ca == "":
		if f.clientCertAuth {
			return nil, usagef("--client-cert-auth needs TLS: --tls-cert, --tls-key and --tls-ca")
		}
		return nil, nil
	case f.cert == "" || f.key == "" || f.ca == "":
		return nil, usagef("--tls-cert, --tls-key and --tls-ca go together: give all three or none")
	}
	var cas []*x509.Certificate
	var err error
	if cfg.TLS, cfg.PeerTLS, cas, err = f.files().Member(); err != nil {
		return nil, usagef("--tls-*: %w", err)
	}
	cfg.ClientCertAuth = f.clientCertAuth
	return cas, nil
}

// files are the member's TLS files; nil when it serves without TLS.
func (f tlsFlags) files() *security.Files {
	if f.cert == "" {
		return nil
	}
	return &security.Files{Cert: f.cert, Key: f.key, CA: f.ca}
}

// certFlags are the flags of `galena cert` subcommands.
type certFlags struct {
	out, ca, id, name, hosts, role string
	force                          bool
	validFor                       time.Duration
}

func newCertCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "Make a development CA, and member and client certificates signed by it",
		Long: `Make a development CA, and member and client certificates signed by it, for
galena start --tls-cert/--tls-key/--tls-ca and the clients' --tls-* flags.
Keys are ECDSA P-256, written with mode 0600; existing files are kept unless
--force is given.

A certificate's role is carried in a URI SAN (galena:role:<role>): members
have role member, clients read (Get, Scan, Status, member list, check),
write (read, and commits) or admin (write, and member add/remove). Members
check roles only when started with --client-cert-auth.

For production, a CA of your own works as well: members need the member
role and their addresses as SANs, clients their role.`,
		Example: `  galena cert ca --out certs
  galena cert node --ca certs --id n1 --hosts 127.0.0.1,localhost
  galena cert client --ca certs --name alice --role admin`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCertCACmd(), newCertNodeCmd(), newCertClientCmd())
	return cmd
}

func newCertCACmd() *cobra.Command {
	var f certFlags
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Make a CA: ca.crt and ca.key in --out",
		Args:  cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			switch {
			case f.out == "":
				return usagef("--out is required")
			case f.validFor <= 0:
				return usagef("--valid-for must be positive, got %v", f.validFor)
			}
			ca, err := security.NewCA(f.validFor)
			if err != nil {
				return err
			}
			return writePair(cmd, f, security.CAName, ca.Pair())
		}),
	}
	cmd.Flags().StringVar(&f.out, "out", "", "directory to write ca.crt and ca.key to, created if absent (required)")
	commonCertFlags(cmd, &f, security.DefaultCAValidity)
	return cmd
}

func newCertNodeCmd() *cobra.Command {
	var f certFlags
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Make a member's certificate: <id>.crt and <id>.key",
		Long: `Make a member's certificate, <id>.crt and <id>.key, signed by the CA in --ca.
--hosts lists every IP address and DNS name the member is reached at (its
--addr host, and any other name peers or clients use): they check it.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := checkMemberArgs(f.id, ""); err != nil {
				return err
			}
			if err := checkFileName("--id", f.id); err != nil {
				return err
			}
			hosts := splitList(f.hosts)
			if len(hosts) == 0 {
				return usagef("--hosts is required: the IP addresses and DNS names the member is reached at")
			}
			return issue(cmd, f, f.id, security.Leaf{Name: f.id, Role: security.RoleMember, Hosts: hosts, ValidFor: f.validFor})
		}),
	}
	cmd.Flags().StringVar(&f.id, "id", "", "the member's id, as given to galena start --id (required)")
	cmd.Flags().StringVar(&f.hosts, "hosts", "", "comma-separated IP addresses and DNS names the member is reached at (required)")
	issueFlags(cmd, &f)
	return cmd
}

func newCertClientCmd() *cobra.Command {
	var f certFlags
	cmd := &cobra.Command{
		Use:   "client",
		Short: "Make a client's certificate: <name>.crt and <name>.key",
		Long: `Make a client's certificate, <name>.crt and <name>.key, signed by the CA in
--ca, with a role: read (Get, Scan, Status, member list, check), write (read,
and commits) or admin (write, and member add/remove).`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := checkFileName("--name", f.name); err != nil {
				return err
			}
			role, err := security.ParseRole(f.role)
			switch {
			case f.role == "":
				return usagef("--role is required: read, write or admin")
			case role == security.RoleMember:
				return usagef("--role member is for members: use galena cert node")
			case err != nil:
				return usagef("--role: unknown role %q: want read, write or admin", f.role)
			}
			return issue(cmd, f, f.name, security.Leaf{Name: f.name, Role: role, ValidFor: f.validFor})
		}),
	}
	cmd.Flags().StringVar(&f.name, "name", "", "the client's name, its certificate's common name (required)")
	cmd.Flags().StringVar(&f.role, "role", "", "read, write or admin (required)")
	issueFlags(cmd, &f)
	return cmd
}

func issueFlags(cmd *cobra.Command, f *certFlags) {
	cmd.Flags().StringVar(&f.ca, "ca", "", "directory holding the CA's ca.crt and ca.key (required)")
	cmd.Flags().StringVar(&f.out, "out", "", "directory to write to, created if absent; default: --ca")
	commonCertFlags(cmd, f, security.DefaultCertValidity)
}

func commonCertFlags(cmd *cobra.Command, f *certFlags, validFor time.Duration) {
	cmd.Flags().BoolVar(&f.force, "force", false, "overwrite existing files")
	cmd.Flags().DurationVar(&f.validFor, "valid-for", validFor, "how long the certificate is valid")
}

// issue makes the certificate l with the CA in --ca and writes it as name.
func issue(cmd *cobra.Command, f certFlags, name string, l security.Leaf) error {
	switch {
	case f.ca == "":
		return usagef("--ca is required: the directory of galena cert ca --out")
	case f.validFor <= 0:
		return usagef("--valid-for must be positive, got %v", f.validFor)
	case name == security.CAName:
		return usagef("%q would overwrite the CA's files: choose another name", name)
	}
	ca, err := security.LoadCA(f.ca)
	if err != nil {
		return err
	}
	pair, err := ca.Issue(l)
	if err != nil {
		return err
	}
	if f.out == "" {
		f.out = f.ca
	}
	return writePair(cmd, f, name, pair)
}

func writePair(cmd *cobra.Command, f certFlags, name string, p security.KeyPair) error {
	certPath, keyPath, err := security.WritePair(f.out, name, p, f.force)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "wrote %s and %s\n", certPath, keyPath)
	return err
}

// checkFileName checks a name that becomes a file name.
func checkFileName(flag, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return usagef("%s %q must be non-empty and usable as a file name", flag, name)
	}
	return nil
}

// splitList splits a comma-separated flag, dropping blanks around and
// between the items.
func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
