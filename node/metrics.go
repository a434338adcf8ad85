package node

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	gometrics "github.com/hashicorp/go-metrics/compat"
	gmprom "github.com/hashicorp/go-metrics/compat/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

// stateCodes number the member states as Galera's wsrep_local_state does
// (1 joining, 2 donor, 3 joined, 4 synced), and Galena's own after them.
var stateCodes = map[string]float64{StateJoining: 1, StateDonor: 2, StateJoined: 3, StateSynced: 4, StateNonPrimary: 5, StateFailed: 6}

// collector exports a member's status at scrape time, one Status call per
// scrape.
type collector struct {
	n                                           *Node
	state, primary, size, applied, lag, contact *prometheus.Desc
	leader, build, certExpiry                   *prometheus.Desc
	commits, failures, recvQueue, minReadable   *prometheus.Desc
	batchedEntries, batchedCommands             *prometheus.Desc
	dataBytes, quotaBytes                       *prometheus.Desc
	fcPaused, fcActive, fcLagging               *prometheus.Desc
}

func newCollector(n *Node) *collector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &collector{
		n: n,
		state: d("galena_local_state", "Member state, numbered as Galera's wsrep_local_state: 1 JOINING, 2 DONOR, 3 JOINED, 4 SYNCED; "+
			"and 5 NON_PRIMARY, 6 FAILED."),
		leader: d("galena_leader", "1 while this member leads the Raft group, else 0."),
		certExpiry: d("galena_tls_certificate_expiry_timestamp_seconds", "When this member's TLS certificate expires, "+
			"in Unix seconds (absent without TLS): alert weeks ahead, e.g. on it minus time() below 30 days."),
		build: prometheus.NewDesc("galena_build_info", "The build this member runs: always 1, the build in the labels.",
			nil, buildLabels()),
		primary:  d("galena_cluster_status", "1 while the member is part of a majority with a live leader (primary), else 0."),
		size:     d("galena_cluster_size", "Members in the cluster configuration, voters and non-voters."),
		applied:  d("galena_last_committed", "Highest seqno applied on this member."),
		lag:      d("galena_apply_lag", "Committed entries not yet applied on this member."),
		contact:  d("galena_last_contact_seconds", "Seconds since the leader was last heard from; 0 on the leader, -1 if never."),
		commits:  d("galena_local_commits_total", "Write-sets this member certified as committed since it started."),
		failures: d("galena_local_cert_failures_total", "Write-sets this member certified as conflicts since it started."),
		recvQueue: d("galena_local_recv_queue", "Entries in this member's log not yet applied here, committed or not "+
			"(Galera's wsrep_local_recv_queue): galena_apply_lag plus the entries not yet known to be committed."),
		minReadable: d("galena_min_readable_seqno", "Oldest snapshot a read on this member can use: history below it was "+
			"discarded (retention: --retain-seqnos, --retain-age). galena_last_committed minus it is the history kept."),
		dataBytes: d("galena_data_bytes", "Disk space the files of this member's data directory take, measured every 250 ms."),
		quotaBytes: d("galena_quota_bytes", "This member's space quota (--quota-bytes): over it, commits that put values are refused "+
			"(NO_SPACE) until it is under again. 0 on an arbitrator."),
		batchedEntries: d("galena_group_commit_entries_total", "Raft entries this member appended while leading, "+
			"each carrying the write-sets (and checkpoint announcements) queued together."),
		batchedCommands: d("galena_group_commit_commands_total", "Write-sets and checkpoint announcements in those entries: "+
			"divided by galena_group_commit_entries_total, the mean batch."),
		fcPaused: d("galena_flow_control_paused_seconds_total", "Seconds this member, leading, held new commits back because a member "+
			"applied too far behind (flow control, --flow-control-limit); its rate is the fraction of time commits waited."),
		fcActive: d("galena_flow_control_active", "1 while this member, leading, holds commits back for a member too far behind, else 0."),
		fcLagging: d("galena_flow_control_lagging_members", "Members that held commits back longer than --flow-control-max-pause: "+
			"commits no longer wait for them, and they stay behind until they catch up. Alert on anything above 0."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.leader, c.build, c.certExpiry, c.primary, c.size, c.applied, c.lag, c.contact, c.commits, c.failures, c.recvQueue,
		c.minReadable, c.dataBytes, c.quotaBytes, c.batchedEntries, c.batchedCommands, c.fcPaused, c.fcActive, c.fcLagging} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.n.Status()
	primary, contact := 0.0, -1.0
	if s.Primary {
		primary = 1
	}
	if s.LastContact >= 0 {
		contact = s.LastContact.Seconds()
	}
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	gauge(c.state, stateCodes[s.State])
	leader := 0.0
	if s.RaftState == "Leader" {
		leader = 1
	}
	gauge(c.leader, leader)
	gauge(c.build, 1)
	if t := c.n.certNotAfter.Load(); t != 0 {
		gauge(c.certExpiry, float64(t))
	}
	gauge(c.primary, primary)
	gauge(c.size, float64(len(s.Members)))
	gauge(c.applied, float64(s.AppliedSeqno))
	gauge(c.lag, float64(s.ApplyLag))
	gauge(c.contact, contact)
	gauge(c.recvQueue, float64(s.RecvQueue))
	gauge(c.minReadable, float64(s.MinReadable))
	gauge(c.dataBytes, float64(c.n.dataBytes.Load()))
	gauge(c.quotaBytes, float64(c.n.quotaBytes.Load()))
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(c.commits, s.Commits)
	counter(c.failures, s.CertFailures)
	counter(c.batchedEntries, s.BatchedEntries)
	counter(c.batchedCommands, s.BatchedCommands)
	ch <- prometheus.MustNewConstMetric(c.fcPaused, prometheus.CounterValue, s.FlowControl.Paused.Seconds())
	active := 0.0
	if s.FlowControl.PausedBy != "" {
		active = 1
	}
	gauge(c.fcActive, active)
	gauge(c.fcLagging, float64(len(s.FlowControl.Lagging)))
}

// Build describes the build a binary runs: the module's version, the
// commit it was built from ("+changes" when the tree had some; "unknown"
// when not built from a repository) and the Go version.
type Build struct {
	Version, Revision, GoVersion string
}

// ThisBuild is the running binary's Build.
// It is read once: every status answer carries the version.
var ThisBuild = sync.OnceValue(func() Build {
	b := Build{Version: "unknown", Revision: "unknown", GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Version = info.Main.Version
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified {
		b.Revision += "+changes"
	}
	return b
})

// buildLabels are galena_build_info's labels.
func buildLabels() prometheus.Labels {
	b := ThisBuild()
	return prometheus.Labels{"version": b.Version, "revision": b.Revision, "go_version": b.GoVersion}
}

// newCertifyHistogram is galena_certification_duration_seconds, observed
// through apply.Config.TimeCertify.
func newCertifyHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "galena_certification_duration_seconds",
		Help:    "Time to certify one delivered batch of write-sets on this member (decode and certify, not the storage write).",
		Buckets: prometheus.ExponentialBuckets(0.00001, 2, 18), // 10µs to 1.3s
	})
}

// timeCertify is the member's apply.Config.TimeCertify.
func (n *Node) timeCertify() func(int) {
	start := time.Now()
	return func(writeSets int) {
		if writeSets > 0 {
			n.certifyTime.Observe(time.Since(start).Seconds())
		}
	}
}

// newGRPCMetrics are the gRPC server's metrics (grpc_server_*), with the
// handling-time histogram.
func newGRPCMetrics() *grpcprom.ServerMetrics {
	return grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
		grpcprom.WithHistogramBuckets(prometheus.ExponentialBuckets(0.0005, 2, 17))))
}

// registerMetrics registers every collector of the member on the
// configured registry; Close unregisters them.
func (n *Node) registerMetrics() error {
	for _, c := range []prometheus.Collector{newCollector(n), n.svc, n.grpcMetrics, n.certifyTime} {
		if err := n.cfg.Registerer.Register(c); err != nil {
			n.unregisterMetrics()
			return fmt.Errorf("node: register metrics: %w", err)
		}
		n.registered = append(n.registered, c)
	}
	return nil
}

func (n *Node) unregisterMetrics() {
	for _, c := range n.registered {
		n.cfg.Registerer.Unregister(c)
	}
	n.registered = nil
}

// raftMetricsExpiration is how long a Raft series is kept without an update
// (a removed peer's replication series, say).
const raftMetricsExpiration = 5 * time.Minute

// installRaftMetrics points go-metrics' process-wide sink, to which raft
// reports, at a Prometheus sink registered on reg. Raft's names get the
// galena_ prefix (raft.apply → galena_raft_apply); its timers are in
// milliseconds.
func installRaftMetrics(reg prometheus.Registerer) (*gmprom.PrometheusSink, error) {
	sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{
		Registerer: reg, Name: "galena_raft_sink", Expiration: raftMetricsExpiration,
	})
	if err != nil {
		return nil, fmt.Errorf("node: raft metrics: %w", err)
	}
	if _, err := gometrics.NewGlobal(raftMetricsConfig("galena"), sink); err != nil {
		reg.Unregister(sink)
		return nil, fmt.Errorf("node: raft metrics: %w", err)
	}
	return sink, nil
}

// uninstallRaftMetrics puts back a sink that drops everything.
func uninstallRaftMetrics(reg prometheus.Registerer, sink *gmprom.PrometheusSink) {
	gometrics.NewGlobal(raftMetricsConfig(""), &gometrics.BlackholeSink{})
	reg.Unregister(sink)
}

// raftMetricsBlocked are raft's timers taken once per RPC or per entry:
// transport internals and per-message latencies. Each costs a summary
// observation on every message, a few percent of a member's CPU under load,
// and what they would tell is in galena_commit_duration_seconds,
// galena_raft_commitTime and the gRPC histograms.
var raftMetricsBlocked = []string{
	"raft.net.",
	"raft.rpc.appendEntries",
	"raft.rpc.processHeartbeat",
	"raft.replication.appendEntries",
	"raft.replication.heartbeat",
	"raft.fsm.enqueue",
}

func raftMetricsConfig(service string) *gometrics.Config {
	c := gometrics.DefaultConfig(service)
	// No hostname in the names, and no runtime sampler: it would be a
	// goroutine nobody stops, and the Go collector covers the runtime.
	c.EnableHostname, c.EnableRuntimeMetrics = false, false
	for _, p := range raftMetricsBlocked {
		if service != "" {
			p = service + "." + p
		}
		c.BlockedPrefixes = append(c.BlockedPrefixes, p)
	}
	return c
}
