package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/galenadb/galena/api"
	"github.com/galenadb/galena/node"
)

// runCLI runs a command line in-process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestStartFlagsRejected(t *testing.T) {
	const cluster = "n1=127.0.0.1:7001,n2=127.0.0.1:7002"
	tests := []struct {
		name string
		args []string // after start --data DIR
		want string
	}{
		{"missing id", []string{"--initial-cluster", cluster}, "--id is required"},
		{"initial cluster and join", []string{"--id", "n1", "--initial-cluster", cluster, "--join", "127.0.0.1:7002"}, "--initial-cluster (bootstrap a new cluster) and --join (join a running one) exclude each other"},
		{"bad join address", []string{"--id", "n4", "--join", "nowhere"}, "join address \"nowhere\""},
		{"bad metrics address", []string{"--id", "n1", "--initial-cluster", cluster, "--listen-metrics", "nowhere"}, "--listen-metrics \"nowhere\": want host:port"},
		{"empty cluster token", []string{"--id", "n1", "--initial-cluster", cluster, "--cluster-token", ""}, "--cluster-token must not be empty"},
		{"zero not primary timeout", []string{"--id", "n1", "--initial-cluster", cluster, "--not-primary-timeout", "0s"}, "--not-primary-timeout must be positive"},
		{"zero snapshot threshold", []string{"--id", "n1", "--initial-cluster", cluster, "--snapshot-threshold", "0"}, "--snapshot-threshold must be positive"},
		{"negative snapshot threshold", []string{"--id", "n1", "--initial-cluster", cluster, "--snapshot-threshold", "-5"}, "invalid argument \"-5\""},
		{"zero trailing logs", []string{"--id", "n1", "--initial-cluster", cluster, "--trailing-logs", "0"}, "--trailing-logs must be positive"},
		{"zero checkpoint interval", []string{"--id", "n1", "--initial-cluster", cluster, "--checkpoint-interval", "0"}, "--checkpoint-interval must be positive"},
		{"zero retain seqnos", []string{"--id", "n1", "--initial-cluster", cluster, "--retain-seqnos", "0"}, "--retain-seqnos must be positive"},
		{"negative retain age", []string{"--id", "n1", "--initial-cluster", cluster, "--retain-age", "-1m"}, "--retain-age must not be negative, got -1m0s"},
		{"zero max inflight commits", []string{"--id", "n1", "--initial-cluster", cluster, "--max-inflight-commits", "0"}, "--max-inflight-commits must be positive"},
		{"max inflight bytes below a write-set", []string{"--id", "n1", "--initial-cluster", cluster, "--max-inflight-bytes", "1MiB"},
			"--max-inflight-bytes must be at least the largest write-set, 16MiB, got 1MiB"},
		{"max inflight bytes in MB", []string{"--id", "n1", "--initial-cluster", cluster, "--max-inflight-bytes", "64MB"}, `"64MB" is not a size`},
		{"negative max inflight bytes", []string{"--id", "n1", "--initial-cluster", cluster, "--max-inflight-bytes", "-5"}, `"-5" is not a size`},
		{"initial cluster without address", []string{"--id", "n1", "--initial-cluster", "n1"}, "not id=host:port"},
		{"initial cluster bad address", []string{"--id", "n1", "--initial-cluster", "n1=localhost"}, "missing port"},
		{"initial cluster empty", []string{"--id", "n1", "--initial-cluster", ","}, "initial cluster is empty"},
		{"initial cluster without this node", []string{"--id", "n3", "--addr", "127.0.0.1:7003", "--initial-cluster", cluster}, "does not list this member"},
		{"initial cluster other address", []string{"--id", "n1", "--addr", "127.0.0.1:9999", "--initial-cluster", cluster}, "this member's address is 127.0.0.1:9999"},
		{"initial cluster duplicate", []string{"--id", "n1", "--initial-cluster", cluster + ",n1=127.0.0.1:7003"}, "listed twice"},
		{"bad id", []string{"--id", "n 1", "--initial-cluster", cluster}, "without '=', ',' or spaces"},
		{"bad addr", []string{"--id", "n1", "--addr", "nowhere", "--initial-cluster", cluster}, "address \"nowhere\""},
		{"bad log level", []string{"--id", "n1", "--initial-cluster", cluster, "--log-level", "loud"}, "--log-level"},
		{"bad log format", []string{"--id", "n1", "--initial-cluster", cluster, "--log-format", "xml"}, "--log-format must be console or json"},
		{"zero heartbeat", []string{"--id", "n1", "--initial-cluster", cluster, "--heartbeat-timeout", "0s"}, "--heartbeat-timeout must be positive"},
		{"unparsable election", []string{"--id", "n1", "--initial-cluster", cluster, "--election-timeout", "soon"}, "invalid argument \"soon\""},
		{"unknown flag", []string{"--id", "n1", "--initial-cluster", cluster, "--bogus"}, "unknown flag: --bogus"},
		{"positional argument", []string{"--id", "n1", "--initial-cluster", cluster, "extra"}, "unknown command \"extra\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			code, _, stderr := runCLI(t, append([]string{"start", "--data", data}, tt.args...)...)
			if code != 2 {
				t.Errorf("exit code %d, want 2; stderr:\n%s", code, stderr)
			}
			if !strings.HasPrefix(stderr, "galena: ") || !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.want)
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Errorf("data directory was created (stat: %v)", err)
			}
		})
	}
}

func TestStartMissingData(t *testing.T) {
	code, _, stderr := runCLI(t, "start", "--id", "n1", "--initial-cluster", "n1=127.0.0.1:7001")
	if code != 2 || !strings.Contains(stderr, "--data is required") {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
}

func TestStartConfig(t *testing.T) {
	f := startFlags{
		id: "n2", addr: "127.0.0.1:7002", data: "/tmp/x",
		initialCluster: "n1=127.0.0.1:7001, n2=127.0.0.1:7002,n3=127.0.0.1:7003",
		clusterToken:   "prod", arbitrator: true,
		logLevel: "debug", logFormat: "json",
		heartbeatTimeout: 200 * time.Millisecond, electionTimeout: 400 * time.Millisecond,
		notPrimaryTimeout: 3 * time.Second, snapshotThreshold: 100, trailingLogs: 50, checkpointInterval: 64,
		maxInflightCommits: 16, maxInflightBytes: 32 << 20, retainSeqnos: 5000, retainAge: time.Hour,
	}
	cfg, err := f.config(&bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ID != "n2" || cfg.Addr != "127.0.0.1:7002" || cfg.DataDir != "/tmp/x" || len(cfg.InitialCluster) != 3 ||
		cfg.Join != "" || cfg.ClusterToken != "prod" || !cfg.Arbitrator {
		t.Errorf("config %+v", cfg)
	}
	g := cfg.Group
	if g.HeartbeatTimeout != 200*time.Millisecond || g.ElectionTimeout != 400*time.Millisecond ||
		g.LeaderLeaseTimeout > g.HeartbeatTimeout {
		t.Errorf("timeouts: heartbeat %v election %v lease %v", g.HeartbeatTimeout, g.ElectionTimeout, g.LeaderLeaseTimeout)
	}
	if cfg.Txn.MaxInflightCommits != 16 || cfg.Txn.MaxInflightBytes != 32<<20 {
		t.Errorf("max inflight commits %d, bytes %d; want 16 and 32 MiB", cfg.Txn.MaxInflightCommits, cfg.Txn.MaxInflightBytes)
	}
	if g.NotPrimaryTimeout != 3*time.Second || g.SnapshotThreshold != 100 || g.TrailingLogs != 50 || cfg.Apply.CheckpointInterval != 64 {
		t.Errorf("not primary %v, snapshot threshold %d, trailing logs %d, checkpoint interval %d",
			g.NotPrimaryTimeout, g.SnapshotThreshold, g.TrailingLogs, cfg.Apply.CheckpointInterval)
	}
	if cfg.Storage.Retain != 5000 || cfg.Storage.RetainAge != time.Hour {
		t.Errorf("retain %d seqnos and %v; want 5000 and 1h", cfg.Storage.Retain, cfg.Storage.RetainAge)
	}
	if cfg.Logger == nil {
		t.Error("no logger")
	}
}

// The flags' defaults are node.DefaultConfig's, and --join alone is a
// valid configuration.
func TestStartFlagDefaults(t *testing.T) {
	cmd, f := startCmd()
	if err := cmd.ParseFlags([]string{"--id", "n4", "--data", "/tmp/x", "--join", "127.0.0.1:7001"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.build(cmd.Flags(), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	d := node.DefaultConfig()
	if cfg.Join != "127.0.0.1:7001" || cfg.InitialCluster != nil || cfg.Arbitrator || cfg.ClusterToken != d.ClusterToken ||
		cfg.Group.NotPrimaryTimeout != d.Group.NotPrimaryTimeout || cfg.Group.SnapshotThreshold != d.Group.SnapshotThreshold ||
		cfg.Group.TrailingLogs != d.Group.TrailingLogs || cfg.Apply.CheckpointInterval != d.Apply.CheckpointInterval ||
		cfg.Txn.MaxInflightCommits != d.Txn.MaxInflightCommits || cfg.Txn.MaxInflightBytes != d.Txn.MaxInflightBytes || !cfg.RaftMetrics ||
		cfg.Storage.Retain != d.Storage.Retain || cfg.Storage.RetainAge != d.Storage.RetainAge ||
		cfg.Group.FlowControlLimit != d.Group.FlowControlLimit || cfg.Group.FlowControlMaxPause != d.Group.FlowControlMaxPause ||
		cfg.Group.MaxAppendsInFlight != d.Group.MaxAppendsInFlight || cfg.Group.LeaderPreference != nil {
		t.Errorf("config %+v; want node.DefaultConfig's defaults joining 127.0.0.1:7001", cfg)
	}
}

// --network wan presets the timeouts not given and the appends in flight;
// a timeout given explicitly wins.
func TestStartNetworkWAN(t *testing.T) {
	cmd, f := startCmd()
	args := []string{"--id", "eu", "--data", "/tmp/x", "--join", "127.0.0.1:7001", "--network", "wan", "--election-timeout", "5s",
		"--leader-preference", "eu, asia", "--flow-control-limit", "64", "--flow-control-max-pause", "1m"}
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, append([]string{"start"}, append(args[:len(args):len(args)], "--network", "moon")...)...)
	if code != 2 || !strings.Contains(stderr, `--network must be lan or wan, got "moon"`) {
		t.Errorf("--network moon: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCLI(t, append([]string{"start"}, append(args[:len(args):len(args)], "--leader-follows-writes")...)...)
	if code != 2 || !strings.Contains(stderr, "--leader-follows-writes and --leader-preference exclude each other") {
		t.Errorf("--leader-follows-writes with --leader-preference: exit %d, %q", code, stderr)
	}
	cfg, err := f.build(cmd.Flags(), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.Group
	if g.HeartbeatTimeout != 2*time.Second || g.ElectionTimeout != 5*time.Second || g.NotPrimaryTimeout != 4*time.Second ||
		g.LeaderLeaseTimeout != time.Second || g.MaxAppendsInFlight != 64 {
		t.Errorf("heartbeat %v election %v not-primary %v lease %v in flight %d; want 2s 5s 4s 1s 64",
			g.HeartbeatTimeout, g.ElectionTimeout, g.NotPrimaryTimeout, g.LeaderLeaseTimeout, g.MaxAppendsInFlight)
	}
	if !slices.Equal(g.LeaderPreference, []string{"eu", "asia"}) || g.FlowControlLimit != 64 || g.FlowControlMaxPause != time.Minute {
		t.Errorf("preference %q, flow control %d %v", g.LeaderPreference, g.FlowControlLimit, g.FlowControlMaxPause)
	}
}

func TestByteSizeFlag(t *testing.T) {
	tests := []struct {
		in, out string
		want    byteSize
	}{
		{"64MiB", "64MiB", 64 << 20},
		{"1 GiB", "1GiB", 1 << 30},
		{"512KiB", "512KiB", 512 << 10},
		{"1536", "1536B", 1536},
		{"100B", "100B", 100},
		{"0", "0B", 0},
	}
	for _, tt := range tests {
		var s byteSize
		if err := s.Set(tt.in); err != nil || s != tt.want || s.String() != tt.out {
			t.Errorf("Set(%q): %v, %d (%s); want %d (%s)", tt.in, err, s, s, tt.want, tt.out)
		}
	}
	for _, bad := range []string{"", "MiB", "1.5MiB", "64MB", "-1", "9999999999GiB", "1 TiB"} {
		var s byteSize
		if err := s.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted: %d", bad, s)
		}
	}
}

func TestClientUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"get without key", []string{"get"}, "accepts 1 arg(s)"},
		{"get stale with value", []string{"get", "--stale=maybe", "k"}, "invalid argument \"maybe\""},
		{"member add without address", []string{"member", "add", "n4"}, "accepts 2 arg(s)"},
		{"member add bad id", []string{"member", "add", "n 4", "127.0.0.1:7004"}, "member id \"n 4\" must be non-empty"},
		{"member add bad address", []string{"member", "add", "n4", "localhost"}, "member address \"localhost\" is not host:port"},
		{"member remove two", []string{"member", "remove", "n1", "n2"}, "accepts 1 arg(s)"},
		{"member unknown", []string{"member", "frob"}, "unknown command \"frob\""},
		{"check with argument", []string{"check", "n1"}, "unknown command \"n1\""},
		{"put three arguments", []string{"put", "k", "v", "w"}, "accepts between 1 and 2 arg(s)"},
		{"put empty key", []string{"put", "", "v"}, "KEY must not be empty"},
		{"get empty key", []string{"get", ""}, "KEY must not be empty"},
		{"del empty key", []string{"del", ""}, "KEY must not be empty"},
		{"endpoint without port", []string{"--endpoints", "127.0.0.1", "get", "k"}, `--endpoints: "127.0.0.1" is not host:port`},
		{"endpoint with scheme", []string{"--endpoints", "http://127.0.0.1:7001", "get", "k"}, `give host:port, without http://`},
		{"del two keys", []string{"del", "a", "b"}, "accepts 1 arg(s)"},
		{"scan prefix and start", []string{"scan", "--prefix", "a", "--start", "b"}, "--prefix cannot be combined"},
		{"scan negative limit", []string{"scan", "--limit", "-1"}, "--limit must not be negative"},
		{"no endpoints", []string{"--endpoints", " , ", "get", "k"}, "--endpoints lists no endpoint"},
		{"zero timeout", []string{"--timeout", "0s", "status"}, "--timeout must be positive"},
		{"negative dial timeout", []string{"--dial-timeout", "-1s", "get", "k"}, "--dial-timeout must be positive"},
		{"zero dial timeout", []string{"--dial-timeout", "0s", "check"}, "--dial-timeout must be positive"},
		{"unknown command", []string{"frobnicate"}, "unknown command \"frobnicate\""},
		{"demo without clients", []string{"demo", "--clients", "0"}, "--clients must be at least 1"},
		{"demo one account", []string{"demo", "--accounts", "1"}, "--accounts must be in 2..10000"},
		{"backup without out", []string{"backup"}, "--out is required"},
		{"restore without from", []string{"restore", "--id", "n1", "--data", "d", "--initial-cluster", "n1=127.0.0.1:7001"}, "--from is required"},
		{"restore without cluster", []string{"restore", "--from", "f", "--id", "n1", "--data", "d"}, "--initial-cluster is required"},
		{"restore bad cluster", []string{"restore", "--from", "f", "--id", "n1", "--data", "d", "--initial-cluster", "n1"}, "--initial-cluster:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit code %d, stderr %q; want 2 and %q", code, stderr, tt.want)
			}
		})
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestNoEndpointReachable(t *testing.T) {
	addr := closedAddr(t)
	for _, args := range [][]string{
		{"get", "k"}, {"put", "k", "v"}, {"del", "k"}, {"scan"}, {"status"},
		{"member", "list"}, {"member", "add", "n4", "127.0.0.1:7004"}, {"member", "remove", "n4"}, {"check"},
	} {
		t.Run(strings.Join(args[:min(2, len(args))], "_"), func(t *testing.T) {
			began := time.Now()
			code, _, stderr := runCLI(t, append([]string{"--endpoints", addr, "--timeout", "3s"}, args...)...)
			want := "galena: no endpoint reachable (" + addr + ")"
			if code != 1 || !strings.HasPrefix(stderr, want) {
				t.Errorf("exit code %d, stderr %q; want 1 and prefix %q", code, stderr, want)
			}
			if d := time.Since(began); d > 3500*time.Millisecond {
				t.Errorf("took %v, more than the timeout", d)
			}
		})
	}
}

func TestPercentiles(t *testing.T) {
	var lat []time.Duration
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	slices.Sort(lat)
	p50, p99 := rank(lat, 0.50), rank(lat, 0.99)
	if p50 != 50*time.Millisecond || p99 != 99*time.Millisecond {
		t.Errorf("p50 %v p99 %v, want 50ms 99ms", p50, p99)
	}
	if p50, p99 := rank(nil, 0.50), rank(nil, 0.99); p50 != 0 || p99 != 0 {
		t.Errorf("empty: %v %v", p50, p99)
	}
}

// statusRow is one line of `galena status --json`: the shape /status
// serves too.
type statusRow = api.StatusView

// The client flags show in the help of the commands that talk to a
// cluster, not in that of start, demo, cert or version; completion scripts
// are there.
func TestHelpAndCompletion(t *testing.T) {
	for _, args := range [][]string{{"get", "--help"}, {"member", "list", "--help"}, {"bench", "--help"}} {
		if code, out, _ := runCLI(t, args...); code != 0 || !strings.Contains(out, "--endpoints") {
			t.Errorf("galena %v: exit %d; want the client flags in:\n%s", args, code, out)
		}
	}
	for _, args := range [][]string{{"cert", "node", "--help"}, {"demo", "--help"}, {"start", "--help"}, {"version", "--help"}} {
		if code, out, _ := runCLI(t, args...); code != 0 || strings.Contains(out, "--endpoints") || strings.Contains(out, "--dial-timeout") {
			t.Errorf("galena %v: exit %d; want no client flags in:\n%s", args, code, out)
		}
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		if code, out, _ := runCLI(t, "completion", shell); code != 0 || !strings.Contains(out, "galena") {
			t.Errorf("galena completion %s: exit %d, %d bytes", shell, code, len(out))
		}
	}
	if code, _, errs := runCLI(t, "demo", "--base-port", "65535"); code != 2 || !strings.Contains(errs, "--base-port must be in") {
		t.Errorf("demo --base-port 65535: exit %d, stderr %q; want a usage error", code, errs)
	}
}
