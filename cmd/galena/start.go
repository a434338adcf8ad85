package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/galenadb/galena/node"
	"github.com/galenadb/galena/security"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// startFlags are the flags of `galena start`.
type startFlags struct {
	id, addr, data, initialCluster string
	join, clusterToken             string
	arbitrator                     bool
	logLevel, logFormat            string
	heartbeatTimeout               time.Duration
	electionTimeout                time.Duration
	notPrimaryTimeout              time.Duration
	network                        string // lan or wan: the preset of the timeouts above
	leaderPreference               string
	leaderFollowsWrites            bool
	flowControlLimit               uint64
	flowControlMaxPause            time.Duration
	snapshotThreshold              uint64
	trailingLogs                   uint64
	checkpointInterval             uint64
	retainSeqnos                   uint64
	retainAge                      time.Duration
	maxInflightCommits             int
	maxInflightBytes               byteSize
	quotaBytes                     byteSize
	peerRoute                      string // fault builds only
	divergeAt                      uint64 // fault builds only
	tls                            tlsFlags
}

func newStartCmd() *cobra.Command {
	cmd, _ := startCmd()
	return cmd
}

// startCmd is `galena start`, and the flags it parses into.
func startCmd() (*cobra.Command, *startFlags) {
	f := new(startFlags)
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Run a cluster member until SIGINT or SIGTERM",
		Long: `Run a cluster member until SIGINT or SIGTERM, or until it is removed from
the cluster (then it exits with status 0).

A new cluster: every member listed in --initial-cluster bootstraps the same
configuration on its first start. A running cluster: a new member started
with --join and an empty --data asks the member at that address to add it,
catches up as a non-voter (a state transfer, then the log) and is promoted to
voter once caught up. --initial-cluster and --join are needed only on a
member's first start: restarting with the same --data resumes from its
stored state.

An arbitrator (--arbitrator) votes but stores no data, like Galera's garbd:
two data members and an arbitrator survive the loss of any one of them.

--cluster-token tells apart clusters bootstrapped with the same
--initial-cluster; a member refuses to join another cluster.

--tls-cert, --tls-key and --tls-ca (made with galena cert) put everything on
the port under TLS: Raft and forwarding between members, membership calls,
clients and HTTP. Members present their certificates to each other and
refuse connections between members without a member certificate from the
CA. --client-cert-auth also makes every client present a certificate from
the CA, whose role (read, write or admin) says what it may do, on gRPC and on
HTTP's /status and /metrics (read role; /healthz and /readyz stay open).
Without TLS, a member on a non-loopback address logs a warning.

The profiler (/debug/pprof/) is off unless --enable-pprof turns it on; with
--client-cert-auth it is then served to the admin role only.
--listen-metrics host:port adds a plaintext listener serving only /metrics,
/healthz and /readyz, to anyone: for scrapers and probes inside a trusted
network.`,
		Example: `  # a new three-member cluster, one command per member
  galena start --id n1 --addr 127.0.0.1:7001 --data /var/lib/galena/n1 \
    --initial-cluster n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003

  # a fourth member joins the running cluster through any member
  galena start --id n4 --addr 127.0.0.1:7004 --data /var/lib/galena/n4 --join 127.0.0.1:7001

  # two data members and an arbitrator
  galena start --id n1 --addr 10.0.0.1:7001 --data /var/lib/galena/n1 \
    --initial-cluster n1=10.0.0.1:7001,n2=10.0.0.2:7001,arb=10.0.0.3:7001
  galena start --id arb --addr 10.0.0.3:7001 --data /var/lib/galena/arb --arbitrator \
    --initial-cluster n1=10.0.0.1:7001,n2=10.0.0.2:7001,arb=10.0.0.3:7001

  # TLS, clients verified by their certificates (see galena cert)
  galena start --id n1 --addr 10.0.0.1:7001 --data /var/lib/galena/n1 \
    --initial-cluster n1=10.0.0.1:7001,n2=10.0.0.2:7001,n3=10.0.0.3:7001 \
    --tls-cert certs/n1.crt --tls-key certs/n1.key --tls-ca certs/ca.crt --client-cert-auth`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.build(cmd.Flags(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			setGCPercent()
			return serve(cmd.Context(), cfg, f.tls.files(), cmd.ErrOrStderr())
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.id, "id", "", "unique member id, e.g. n1 (required)")
	fl.StringVar(&f.addr, "addr", "127.0.0.1:7001", "host:port to listen on and advertise to peers and clients")
	fl.StringVar(&f.data, "data", "", "data directory, created if absent (required)")
	fl.StringVar(&f.initialCluster, "initial-cluster", "", "every voting member of a new cluster: id=host:port,... (first start of a new cluster)")
	fl.StringVar(&f.join, "join", "", "host:port of a member of the running cluster to join (first start of a new member)")
	fl.BoolVar(&f.arbitrator, "arbitrator", false, "vote without storing data (an arbitrator)")
	d := node.DefaultConfig()
	fl.StringVar(&f.clusterToken, "cluster-token", d.ClusterToken, "tells apart clusters bootstrapped with the same --initial-cluster")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.logFormat, "log-format", "console", "console or json")
	fl.DurationVar(&f.heartbeatTimeout, "heartbeat-timeout", d.Group.HeartbeatTimeout, "Raft heartbeat timeout")
	fl.DurationVar(&f.electionTimeout, "election-timeout", d.Group.ElectionTimeout, "Raft election timeout")
	fl.DurationVar(&f.notPrimaryTimeout, "not-primary-timeout", d.Group.NotPrimaryTimeout, "how long without a majority before the member is NON_PRIMARY")
	w := node.WANConfig().Group
	fl.StringVar(&f.network, "network", "lan", fmt.Sprintf("lan, or wan for members in different regions (round trips of 100-300 ms): "+
		"the timeouts not given default to heartbeat and election %v, not-primary %v, and the leader keeps up to %d appends in flight to each member",
		w.HeartbeatTimeout, w.NotPrimaryTimeout, w.MaxAppendsInFlight))
	fl.StringVar(&f.leaderPreference, "leader-preference", "", "member ids in the order they should lead, e.g. eu,asia: "+
		"the leader hands over to the first one listed that is up and caught up (give every member the same list)")
	fl.BoolVar(&f.leaderFollowsWrites, "leader-follows-writes", false, fmt.Sprintf("the leader hands over to the member "+
		"whose clients made at least two thirds of the commits of the last %v (instead of --leader-preference)", d.Group.LeaderFollowWindow))
	fl.Uint64Var(&f.flowControlLimit, "flow-control-limit", d.Group.FlowControlLimit, "log entries a member may be behind in applying "+
		"before the leader holds new commits back until it is down to half (0: off)")
	fl.DurationVar(&f.flowControlMaxPause, "flow-control-max-pause", d.Group.FlowControlMaxPause, "how long one member may hold commits back; "+
		"then it is reported lagging and commits no longer wait for it until it catches up")
	fl.Uint64Var(&f.snapshotThreshold, "snapshot-threshold", d.Group.SnapshotThreshold, "Raft log entries between snapshots")
	fl.Uint64Var(&f.trailingLogs, "trailing-logs", d.Group.TrailingLogs, "Raft log entries kept after a snapshot, for lagging members")
	fl.Uint64Var(&f.checkpointInterval, "checkpoint-interval", d.Apply.CheckpointInterval, "seqnos between digest checkpoints (see galena check)")
	fl.Uint64Var(&f.retainSeqnos, "retain-seqnos", d.Storage.Retain, "seqnos of history kept readable below the applied one; older versions are discarded")
	fl.DurationVar(&f.retainAge, "retain-age", d.Storage.RetainAge, "history kept readable for at least this long too, whatever --retain-seqnos (0: no age bound)")
	fl.IntVar(&f.maxInflightCommits, "max-inflight-commits", d.Txn.MaxInflightCommits, "commits the member serves at once; more are refused at once (client.ErrOverloaded, retried with backoff)")
	f.maxInflightBytes = byteSize(d.Txn.MaxInflightBytes)
	fl.Var(&f.maxInflightBytes, "max-inflight-bytes", "bytes of write-sets the member's commits in flight may hold, at least the largest write-set ("+
		byteSize(d.Txn.Limits.MaxWriteSetSize).String()+"); more are refused at once, like --max-inflight-commits")
	fl.Var(&f.quotaBytes, "quota-bytes", "how much the data directory may hold before the member refuses commits that put values "+
		"(client.ErrNoSpace; deletes and reads go on, and it takes commits again once under); 0: "+fmt.Sprint(node.DefaultQuotaFraction*100)+"% of the filesystem's size")
	addFaultFlags(fl, f)
	addTLSFlags(fl, &f.tls)
	return cmd, f
}

// build is the member's configuration from the flags parsed into f from
// fl: with --network wan, the timeouts fl was not given are the preset's.
func (f *startFlags) build(fl *pflag.FlagSet, logOut io.Writer) (node.Config, error) {
	f.presetNetwork(fl)
	return f.config(logOut)
}

// memberGCPercent is the member's garbage-collection target, unless the
// GOGC environment variable sets one. A member's live heap is mostly
// long-lived (memtables, the certification index), so Go's default of 100
// lets the heap peak at twice it, and at twice its transient peak while a
// memtable is flushed. At 50 a member under the rmw benchmark peaked at
// about 105 MB of RSS instead of 130–150 MB; collection's share of the CPU
// stays at a few percent.
const memberGCPercent = 50

func setGCPercent() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(memberGCPercent)
	}
}

// config validates the flags and builds the member's configuration. It
// touches nothing on disk; every error is a usage error. Whether a member
// needs --initial-cluster or --join depends on its stored state, which
// node.New checks.
func (f startFlags) config(logOut io.Writer) (node.Config, error) {
	cfg := node.DefaultConfig()
	switch f.network {
	case "wan":
		cfg = node.WANConfig()
	case "lan", "":
	default:
		return cfg, usagef("--network must be lan or wan, got %q", f.network)
	}
	cfg.ID, cfg.Addr, cfg.DataDir = f.id, f.addr, f.data
	cfg.Join, cfg.Arbitrator = f.join, f.arbitrator
	switch {
	case f.id == "":
		return cfg, usagef("--id is required")
	case f.data == "":
		return cfg, usagef("--data is required")
	case f.initialCluster != "" && f.join != "":
		return cfg, usagef("--initial-cluster (bootstrap a new cluster) and --join (join a running one) exclude each other")
	case f.clusterToken == "":
		return cfg, usagef("--cluster-token must not be empty")
	}
	cfg.ClusterToken = f.clusterToken
	cfg.Registerer, cfg.RaftMetrics = processRegistry(), true // one member per process
	if f.initialCluster != "" {
		var err error
		if cfg.InitialCluster, err = node.ParseInitialCluster(f.initialCluster); err != nil {
			return cfg, usagef("--initial-cluster: %w", err)
		}
	}
	if err := f.tuning(&cfg); err != nil {
		return cfg, err
	}
	cas, err := f.tls.apply(&cfg)
	if err != nil {
		return cfg, err
	}
	if err := applyFaults(f, &cfg); err != nil {
		return cfg, usageError{err}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usageError{err}
	}
	lvl, err := zapcore.ParseLevel(f.logLevel)
	if err != nil {
		return cfg, usagef("--log-level: %w", err)
	}
	if cfg.Logger, err = newLogger(lvl, f.logFormat, logOut); err != nil {
		return cfg, err
	}
	logCAs(cfg.Logger, f.tls.ca, cas)
	return cfg, nil
}

// tuning sets the Raft timeouts, log retention, checkpoint interval,
// admission limits and history retention from the flags.
func (f startFlags) tuning(cfg *node.Config) error {
	if err := f.timeouts(cfg); err != nil {
		return err
	}
	switch {
	case f.notPrimaryTimeout <= 0:
		return usagef("--not-primary-timeout must be positive, got %v", f.notPrimaryTimeout)
	case f.leaderFollowsWrites && f.leaderPreference != "":
		return usagef("--leader-follows-writes and --leader-preference exclude each other")
	case f.flowControlLimit > 0 && f.flowControlMaxPause <= 0:
		return usagef("--flow-control-max-pause must be positive, got %v", f.flowControlMaxPause)
	case f.snapshotThreshold == 0:
		return usagef("--snapshot-threshold must be positive")
	case f.trailingLogs == 0:
		return usagef("--trailing-logs must be positive")
	case f.checkpointInterval == 0:
		return usagef("--checkpoint-interval must be positive")
	case f.retainSeqnos == 0:
		return usagef("--retain-seqnos must be positive")
	case f.retainAge < 0:
		return usagef("--retain-age must not be negative, got %v", f.retainAge)
	case f.maxInflightCommits <= 0:
		return usagef("--max-inflight-commits must be positive, got %d", f.maxInflightCommits)
	case int(f.maxInflightBytes) < cfg.Txn.Limits.MaxWriteSetSize:
		return usagef("--max-inflight-bytes must be at least the largest write-set, %v, got %v",
			byteSize(cfg.Txn.Limits.MaxWriteSetSize), f.maxInflightBytes)
	}
	cfg.Txn.MaxInflightCommits, cfg.Txn.MaxInflightBytes = f.maxInflightCommits, int(f.maxInflightBytes)
	cfg.Group.NotPrimaryTimeout = f.notPrimaryTimeout
	cfg.Group.FlowControlLimit, cfg.Group.FlowControlMaxPause = f.flowControlLimit, f.flowControlMaxPause
	cfg.Group.LeaderFollowsWrites = f.leaderFollowsWrites
	if f.leaderPreference != "" {
		cfg.Group.LeaderPreference = strings.Split(f.leaderPreference, ",")
		for i, id := range cfg.Group.LeaderPreference {
			cfg.Group.LeaderPreference[i] = strings.TrimSpace(id)
		}
	}
	cfg.Group.SnapshotThreshold, cfg.Group.TrailingLogs = f.snapshotThreshold, f.trailingLogs
	cfg.Apply.CheckpointInterval = f.checkpointInterval
	cfg.Storage.Retain, cfg.Storage.RetainAge = f.retainSeqnos, f.retainAge
	cfg.QuotaBytes = int64(f.quotaBytes)
	return nil
}

// timeouts sets the Raft timeouts from the flags. The leader lease is
// shortened to half the heartbeat timeout when it would exceed it.
func (f startFlags) timeouts(cfg *node.Config) error {
	switch {
	case f.heartbeatTimeout <= 0:
		return usagef("--heartbeat-timeout must be positive, got %v", f.heartbeatTimeout)
	case f.electionTimeout <= 0:
		return usagef("--election-timeout must be positive, got %v", f.electionTimeout)
	}
	g := &cfg.Group
	g.HeartbeatTimeout, g.ElectionTimeout = f.heartbeatTimeout, f.electionTimeout
	if g.LeaderLeaseTimeout > g.HeartbeatTimeout {
		g.LeaderLeaseTimeout = g.HeartbeatTimeout / 2
	}
	return nil
}

// presetNetwork gives the timeouts not set on the command line fl the
// values of --network wan, when it is given.
func (f *startFlags) presetNetwork(fl *pflag.FlagSet) {
	if f.network != "wan" {
		return
	}
	w := node.WANConfig().Group
	for name, v := range map[string]struct {
		dst *time.Duration
		wan time.Duration
	}{
		"heartbeat-timeout":   {&f.heartbeatTimeout, w.HeartbeatTimeout},
		"election-timeout":    {&f.electionTimeout, w.ElectionTimeout},
		"not-primary-timeout": {&f.notPrimaryTimeout, w.NotPrimaryTimeout},
	} {
		if !fl.Changed(name) {
			*v.dst = v.wan
		}
	}
}

// byteSize is a flag value in bytes: a number with an optional KiB, MiB or
// GiB suffix, e.g. 64MiB.
type byteSize int

// sizeUnits are byteSize's suffixes, largest first.
var sizeUnits = []struct {
	suffix string
	shift  uint
}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

func (s *byteSize) Set(v string) error {
	num, shift := strings.TrimSpace(v), uint(0)
	for _, u := range sizeUnits {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, shift = strings.TrimSpace(n), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt>>shift {
		return fmt.Errorf("%q is not a size: give bytes, with an optional KiB, MiB or GiB suffix, e.g. 64MiB", v)
	}
	*s = byteSize(n << shift)
	return nil
}

// String writes the size in the largest unit that divides it.
func (s byteSize) String() string {
	for _, u := range sizeUnits {
		if s != 0 && s%(1<<u.shift) == 0 {
			return strconv.Itoa(int(s)>>u.shift) + u.suffix
		}
	}
	return "0B"
}

func (s *byteSize) Type() string { return "size" }

// processRegistry is the registry /metrics serves: the member's metrics,
// the Go runtime's and the process's.
func processRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// newLogger builds the zap logger of a member, writing to w in format
// console or json.
func newLogger(lvl zapcore.LevelEnabler, format string, w io.Writer) (*zap.Logger, error) {
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch format {
	case "console":
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	case "json":
		enc = zapcore.NewJSONEncoder(ec)
	default:
		return nil, usagef("--log-format must be console or json, got %q", format)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)), nil
}

// member is what serve needs of a running node.Node.
type member interface {
	Fatal() <-chan error
	SetTLS(server, peer *tls.Config) error
	Close() error
}

// serve runs a member until ctx is done (exit 0), it is removed from the
// cluster (exit 0) or fails (exit 1): its apply loop failed, or its disk
// filled. On SIGHUP it reloads its TLS files, certs (nil: it has none).
// A member joining with a terminal on errOut shows the state transfer's
// progress there.
func serve(ctx context.Context, cfg node.Config, certs *security.Files, errOut io.Writer) error {
	lg := cfg.Logger
	defer lg.Sync()
	n, err := node.New(cfg)
	if err != nil {
		return err
	}
	if cfg.Join != "" && isTerminal(errOut) {
		pctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); joinProgress(pctx, n, errOut) }()
		defer func() { stop(); <-done }()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return serveUntil(ctx, lg, n, hup, certs)
}

// joinProgress prints, every joinProgressEvery until the member is
// SYNCED or ctx ends, how far its state transfer has come.
func joinProgress(ctx context.Context, n *node.Node, w io.Writer) {
	t := time.NewTicker(joinProgressEvery)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := n.Status()
		if st.State == node.StateSynced {
			fmt.Fprintf(w, "galena: joined: %s is SYNCED at seqno %d\n", st.ID, st.AppliedSeqno)
			return
		}
		if tr := st.Transfer; tr.Phase != "" {
			rate := humanize.IBytes(uint64(max(tr.Bytes-last, 0)) * uint64(time.Second) / uint64(joinProgressEvery))
			line := fmt.Sprintf("galena: joining: %s %s (%s/s)", tr.Phase, humanize.IBytes(uint64(tr.Bytes)), rate)
			if tr.Total > 0 {
				line += fmt.Sprintf(", %d%% of %s", min(100, 100*tr.Bytes/tr.Total), humanize.IBytes(uint64(tr.Total)))
			}
			fmt.Fprintln(w, line)
			last = tr.Bytes
		} else {
			fmt.Fprintf(w, "galena: joining: %s, applied seqno %d, %d entries to apply\n", st.State, st.AppliedSeqno, st.ApplyLag)
			last = 0
		}
	}
}

// joinProgressEvery is how often a joining member shows its progress.
const joinProgressEvery = 2 * time.Second

// serveUntil waits for ctx or the member's fatal error, then closes it;
// meanwhile it reloads the member's TLS files, certs, at each value from
// hup.
func serveUntil(ctx context.Context, lg *zap.Logger, n member, hup <-chan os.Signal, certs *security.Files) error {
	for {
		select {
		case <-hup:
			reloadTLS(lg, n, certs)
		case <-ctx.Done():
			lg.Info("signal received, stopping")
			if err := n.Close(); err != nil {
				return fmt.Errorf("stop: %w", err)
			}
			return nil
		case ferr := <-n.Fatal():
			if errors.Is(ferr, node.ErrRemoved) {
				lg.Info("removed from the cluster")
				if err := n.Close(); err != nil {
					return fmt.Errorf("stop: %w", err)
				}
				return nil
			}
			lg.Error("the member failed; stopping", zap.Error(ferr))
			return errors.Join(fmt.Errorf("member failed: %w", ferr), n.Close())
		}
	}
}

// reloadTLS reads the member's TLS files again and gives them to the member
// (node.Node.SetTLS logs the certificate). Files that cannot be used leave
// the member with what it had, and say why.
func reloadTLS(lg *zap.Logger, n member, certs *security.Files) {
	if certs == nil {
		lg.Info("SIGHUP: this member serves without TLS; nothing to reload")
		return
	}
	server, peer, cas, err := certs.Member()
	if err == nil {
		err = n.SetTLS(server, peer)
	}
	if err != nil {
		lg.Error("SIGHUP: TLS files not reloaded; the member keeps its current certificate and CAs",
			zap.String("cert", certs.Cert), zap.String("ca", certs.CA), zap.Error(err))
		return
	}
	logCAs(lg, certs.CA, cas) // those loaded, whatever the file holds by now
}

// logCAs logs the CA certificates the member trusts, read from path: a
// warning for one that expires within node.CertWarnAhead.
func logCAs(lg *zap.Logger, path string, cas []*x509.Certificate) {
	for _, ca := range cas {
		log := lg.Info
		if time.Until(ca.NotAfter) < node.CertWarnAhead {
			log = lg.Warn
		}
		log("trusted CA", zap.String("ca", path), zap.String("subject", ca.Subject.CommonName),
			zap.String("serial", ca.SerialNumber.Text(16)), zap.Time("expires", ca.NotAfter))
	}
}
