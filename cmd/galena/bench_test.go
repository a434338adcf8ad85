package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/galenadb/galena/node/nodetest"
	"go.uber.org/goleak"
)

// decodeBench parses --json output: one object per workload.
func decodeBench(t *testing.T, stdout string) []benchResult {
	t.Helper()
	var out []benchResult
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	for dec.More() {
		var r benchResult
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("stdout is not JSON lines: %v\n%s", err, stdout)
		}
		out = append(out, r)
	}
	return out
}

// checkBenchResult checks that a workload committed and had no errors, and
// that a bank total held.
func checkBenchResult(t *testing.T, r benchResult) {
	t.Helper()
	if r.Commits == 0 || r.CommitsPerS <= 0 || r.DurationS <= 0 {
		t.Errorf("%s: commits %d (%.1f/s) in %.2fs, want some", r.Workload, r.Commits, r.CommitsPerS, r.DurationS)
	}
	if r.Errors != 0 {
		t.Errorf("%s: %d errors, first: %s", r.Workload, r.Errors, r.FirstError)
	}
	if r.P50ms <= 0 || r.P50ms > r.P99ms || r.P99ms > r.P999ms {
		t.Errorf("%s: percentiles p50 %v, p99 %v, p99.9 %v ms not ordered", r.Workload, r.P50ms, r.P99ms, r.P999ms)
	}
	if (r.Workload == workloadBank) != (r.BankOK != nil) {
		t.Errorf("%s: bank_ok %v", r.Workload, r.BankOK)
	}
	if r.BankOK != nil && !*r.BankOK {
		t.Errorf("%s: total did not hold: %s", r.Workload, r.BankDetail)
	}
}

func TestBenchLocal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	code, stdout, stderr := runCLI(t, "bench", "--local", "--workload", "put,rmw,hot,read,bank",
		"--duration", "1s", "--warmup", "0s", "--clients", "4", "--keys", "1000", "--json")
	t.Logf("stderr:\n%s", stderr)
	if code != 0 {
		t.Fatalf("exit code %d, stdout:\n%s", code, stdout)
	}
	results := decodeBench(t, stdout)
	var names []string
	for _, r := range results {
		names = append(names, r.Workload)
		checkBenchResult(t, r)
		if r.Clients != 4 {
			t.Errorf("%s: clients %d, want 4", r.Workload, r.Clients)
		}
	}
	if want := []string{"put", "rmw", "hot", "read", "bank"}; !slices.Equal(names, want) {
		t.Fatalf("workloads %v, want %v", names, want)
	}
	if !strings.Contains(stderr, "put  ") || !strings.Contains(stderr, "digests equal") {
		t.Errorf("no progress line or digest check on stderr")
	}
}

// --serializable runs the transactions serializable, and says so.
func TestBenchSerializable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	code, stdout, stderr := runCLI(t, "bench", "--local", "--workload", "skew", "--serializable",
		"--duration", "1s", "--warmup", "0s", "--clients", "4", "--keys", "1000", "--json")
	if code != 0 {
		t.Fatalf("exit code %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	results := decodeBench(t, stdout)
	if len(results) != 1 || results[0].Workload != workloadSkew || !results[0].Serializable {
		t.Fatalf("results %+v; want one serializable skew", results)
	}
	// The result only echoes the flag: what makes the transactions
	// serializable is the clients' configuration.
	if r := (&benchRun{o: benchOptions{Serializable: true}}); !r.clientConfig().Serializable {
		t.Fatal("--serializable does not reach the clients' configuration")
	}
	checkBenchResult(t, results[0])
}

func TestBenchEndpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := nodetest.MakeCluster(t, 3)
	c.Leader()
	eps := strings.Join(c.Endpoints(), ",")
	code, stdout, stderr := runCLI(t, "--endpoints", eps, "bench", "--workload", "bank,read",
		"--duration", "500ms", "--warmup", "200ms", "--clients", "3", "--keys", "500")
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "WORKLOAD") ||
		!strings.HasPrefix(lines[1], "bank") || !strings.HasPrefix(lines[2], "read") {
		t.Fatalf("not a table of bank and read")
	}
	if f := strings.Fields(lines[1]); f[len(f)-1] != "ok" {
		t.Errorf("bank check %q, want ok", f[len(f)-1])
	}
	if !strings.Contains(stdout, "total 100000 in 100 accounts on each of "+strings.Join(c.Endpoints(), ", ")) {
		t.Errorf("no bank detail naming every endpoint")
	}
	if !strings.Contains(stderr, "warming up") || !strings.Contains(stderr, "read: loaded 500 keys") {
		t.Errorf("no warm-up or load line on stderr")
	}
	// It removed what it wrote: 500 keys and 100 accounts.
	if !strings.Contains(stderr, "removed the 600 keys under bench/") {
		t.Errorf("no removal line on stderr")
	}
	if code, out, errs := runCLI(t, "--endpoints", eps, "scan", "--prefix", "bench/"); code != 0 || out != "" {
		t.Errorf("after bench: scan bench/ exit %d, stdout %q, stderr %q; want nothing left", code, out, errs)
	}
	code, _, stderr = runCLI(t, "--endpoints", eps, "bench", "--workload", "put", "--keep",
		"--duration", "300ms", "--warmup", "0s", "--clients", "2", "--keys", "50")
	if code != 0 || strings.Contains(stderr, "removed") {
		t.Fatalf("bench --keep: exit %d, stderr:\n%s", code, stderr)
	}
	if code, out, _ := runCLI(t, "--endpoints", eps, "scan", "--prefix", "bench/", "--limit", "1"); code != 0 || out == "" {
		t.Errorf("bench --keep left nothing under bench/")
	}
}

func TestBenchFlagsRejected(t *testing.T) {
	tests := []struct {
		name string
		args []string // after bench
		want string
	}{
		{"unknown workload", []string{"--workload", "put,scan"}, `unknown workload "scan"`},
		{"no workload", []string{"--workload", ""}, "--workload names no workload"},
		{"zero keys", []string{"--keys", "0"}, "--keys must be at least 2, got 0"},
		{"negative keys", []string{"--keys", "-3"}, "--keys must be at least 2, got -3"},
		{"negative value size", []string{"--value-size", "-1"}, "--value-size must be in 0..1048576"},
		{"huge value size", []string{"--value-size", "2000000"}, "--value-size must be in 0..1048576"},
		{"zero clients", []string{"--clients", "0"}, "--clients must be at least 1, got 0"},
		{"negative clients", []string{"--clients", "-1"}, "--clients must be at least 1, got -1"},
		{"zero duration", []string{"--duration", "0s"}, "--duration must be positive, got 0s"},
		{"negative duration", []string{"--duration", "-1s"}, "--duration must be positive, got -1s"},
		{"negative warmup", []string{"--warmup", "-1s"}, "--warmup must not be negative"},
		{"local and endpoints", []string{"--local", "--endpoints", "127.0.0.1:7001"}, "--local (start a cluster in-process) and --endpoints (use a running one) exclude each other"},
		{"bad load", []string{"--load=maybe"}, `invalid argument "maybe" for "--load"`},
		{"positional argument", []string{"put"}, `unknown command "put"`},
		{"no endpoint", []string{"--endpoints", ","}, "--endpoints lists no endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, append([]string{"bench"}, tt.args...)...)
			if code != 2 || stdout != "" {
				t.Errorf("exit code %d, stdout %q; want 2 and nothing", code, stdout)
			}
			if !strings.HasPrefix(stderr, "galena: ") || !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.want)
			}
		})
	}
}

func TestBenchLoadDefaults(t *testing.T) {
	tests := []struct {
		args []string
		want map[string]bool
	}{
		{nil, map[string]bool{"put": false, "rmw": true, "hot": true, "read": true, "bank": true}},
		{[]string{"--load"}, map[string]bool{"put": true, "rmw": true, "hot": true, "read": true, "bank": true}},
		{[]string{"--load=false"}, map[string]bool{"put": false, "rmw": false, "hot": false, "read": false, "bank": true}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(append([]string{"auto"}, tt.args...), " "), func(t *testing.T) {
			cmd := newBenchCmd(&globalFlags{})
			if err := cmd.ParseFlags(tt.args); err != nil {
				t.Fatal(err)
			}
			o := benchOptions{Load: *cmd.Flags().Lookup("load").Value.(*loadFlag)}
			for w, want := range tt.want {
				if got := o.load(w); got != want {
					t.Errorf("%s: load %v, want %v", w, got, want)
				}
			}
		})
	}
}

func TestBenchResultFailure(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name string
		r    benchResult
		want string // "" for no failure
	}{
		{"clean", benchResult{Workload: "put", Commits: 10, Conflicts: 3}, ""},
		{"bank ok", benchResult{Workload: "bank", Commits: 10, BankOK: &yes}, ""},
		{"errors", benchResult{Workload: "rmw", Errors: 2, FirstError: "boom"}, "rmw: 2 errors (first: boom)"},
		{"bank total", benchResult{Workload: "bank", BankOK: &no, BankDetail: "n1: 99 in 100 accounts"}, "bank: the total did not hold: n1: 99 in 100 accounts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.r.failure()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("failure: %v, want none", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Fatalf("failure: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestPrintBench(t *testing.T) {
	yes := true
	var b bytes.Buffer
	err := printBench(&b, []benchResult{
		{Workload: "put", CommitsPerS: 1234.56, Commits: 6172, P50ms: 1.5, P99ms: 9.25, P999ms: 20},
		{Workload: "bank", CommitsPerS: 10, Commits: 50, Conflicts: 7, Errors: 1, FirstError: "boom", BankOK: &yes, BankDetail: "total 100000"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `WORKLOAD  COMMITS/S   COMMITS  CONFLICTS  ERRORS   P50 MS   P99 MS  P99.9 MS  CHECK
put          1234.6      6172          0       0     1.50     9.25     20.00      -
bank           10.0        50          7       1     0.00     0.00      0.00     ok
bank: 1 errors, the first: boom
bank: total 100000
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}
