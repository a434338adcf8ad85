package main

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/node/nodetest"
)

// field quotes exactly what would break a line into the wrong fields.
func TestField(t *testing.T) {
	for in, want := range map[string]string{
		"plain":         "plain",
		"with space":    "with space",
		"":              "",
		"tab\there":     `"tab\there"`,
		"line\nbreak":   `"line\nbreak"`,
		`"quoted"`:      `"\"quoted\""`,
		"bin\xff":       `"bin\xff"`,
		"nul\x00":       `"nul\x00"`,
		"ünïcode ✓":     "ünïcode ✓",
		`inner "quote"`: `inner "quote"`,
	} {
		if got := field([]byte(in)); got != want {
			t.Errorf("field(%q) = %s; want %s", in, got, want)
		}
	}
}

// The output formats of get, scan, status and member list, pinned: keys
// and values that hold tabs, line breaks or bytes that are not UTF-8 come
// through every format intact.
func TestOutputFormats(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := nodetest.MakeCluster(t, 3)
	c.Leader()
	cli := cliOf(t, c.Endpoints()...)
	cl, err := client.New(client.Config{Endpoints: c.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	for k, v := range map[string]string{"o/plain": "hello", "o/tab\tkey": "line\nbreak", "o/bin": "\xff\x00"} {
		if err := cl.Put(ctx, []byte(k), []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	golden := []struct {
		args []string
		want string
	}{
		{[]string{"get", "o/plain"}, "hello\n"},
		{[]string{"get", "--linearizable", "o/plain"}, "hello\n"},
		{[]string{"get", "o/plain", "-w", "json"}, `{"key":"o/plain","value":"hello"}` + "\n"},
		{[]string{"get", "o/bin", "--json"}, `{"key":"o/bin","value_base64":"/wA="}` + "\n"},
		{[]string{"get", "o/plain", "-w", "table"}, "KEY      VALUE\no/plain  hello\n"},
		{[]string{"scan", "--prefix", "o/"}, "o/bin\t\"\\xff\\x00\"\no/plain\thello\n\"o/tab\\tkey\"\t\"line\\nbreak\"\n"},
		{[]string{"scan", "--prefix", "o/", "-w", "json"}, `{"key":"o/bin","value_base64":"/wA="}` + "\n" +
			`{"key":"o/plain","value":"hello"}` + "\n" + `{"key":"o/tab\tkey","value":"line\nbreak"}` + "\n"},
		{[]string{"scan", "--prefix", "o/", "--limit", "1", "-w", "table"}, "KEY    VALUE\no/bin  \"\\xff\\x00\"\n"},
	}
	for _, g := range golden {
		mustRunCLI(t, cli, g.want, g.args...)
	}

	code, out, errs := cli("status", "-w", "simple")
	if code != 0 || strings.Count(out, "\n") != 3 || strings.Count(out, "\tSYNCED") != 3 || strings.HasPrefix(out, "ID") {
		t.Fatalf("status -w simple: exit %d, stdout %q, stderr %q; want 3 tab-separated rows, no header", code, out, errs)
	}
	code, out, _ = cli("status", "-w", "json")
	var row statusRow
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &row); code != 0 || err != nil || row.Term == 0 || row.ClusterSize != 3 {
		t.Fatalf("status -w json: exit %d, first row %+v (%v); want its term and a cluster of 3", code, row, err)
	}

	// status -w json and a member's /status speak alike: the same fields.
	resp, err := http.Get("http://" + c.Endpoints()[0] + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var page, line map[string]any
	err = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, out, _ = cli("--endpoints", c.Endpoints()[0], "status", "-w", "json")
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &line); err != nil {
		t.Fatal(err)
	}
	if pk, lk := slices.Sorted(maps.Keys(page)), slices.Sorted(maps.Keys(line)); !slices.Equal(pk, lk) || page["id"] != line["id"] || page["role"] != line["role"] {
		t.Fatalf("/status has fields %v (%v, %v), status -w json %v (%v, %v)", pk, page["id"], page["role"], lk, line["id"], line["role"])
	}

	c.Stop(2)
	code, out, errs = cli("member", "list", "-w", "simple")
	if code != 0 || !strings.Contains(out, "n3\t"+c.Endpoints()[2]+"\tyes\t\tno\n") {
		t.Fatalf("member list -w simple with n3 stopped: exit %d, stdout %q, stderr %q; want n3 not reachable", code, out, errs)
	}
	for _, bad := range [][]string{{"get", "k", "-w", "yaml"}, {"scan", "-w", "table", "--json"}, {"get", "k", "--raw", "-w", "json"}, {"get", "k", "--stale", "--linearizable"}} {
		if code, _, errs := cli(bad...); code != 2 || errs == "" {
			t.Errorf("galena %v: exit %d, stderr %q; want a usage error", bad, code, errs)
		}
	}
}

// A state transfer in status: each side's phase and bytes, with the total
// where known; a joiner receiving takes its one donor's.
func TestTransferOf(t *testing.T) {
	donor := client.MemberStatus{Transfer: client.Transfer{Phase: "sending", Bytes: 30 << 20, Total: 120 << 20}}
	joiner := client.MemberStatus{Transfer: client.Transfer{Phase: "receiving", Bytes: 24 << 20}}
	rows := []client.MemberStatus{donor, joiner, {}}
	for _, tc := range []struct {
		t    client.Transfer
		rows []client.MemberStatus
		want string
	}{
		{donor.Transfer, rows, "sending:30MiB/120MiB(25%)"},
		{joiner.Transfer, rows, "receiving:24MiB/120MiB(20%)"},
		{joiner.Transfer, []client.MemberStatus{joiner}, "receiving:24MiB"},
		{client.Transfer{Phase: "restoring", Bytes: 60 << 20, Total: 120 << 20}, nil, "restoring:60MiB/120MiB(50%)"},
		{client.Transfer{}, rows, "-"},
	} {
		if got := transferOf(tc.t, tc.rows); got != tc.want {
			t.Errorf("transferOf(%+v) = %q; want %q", tc.t, got, tc.want)
		}
	}
}
