package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The shop runs across three simulated regions: both regions commit,
// conflicts are retried, moved users see their own change, nothing
// acknowledged is lost, and the leader is where --leader puts it.
func TestDemoGeo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var out, errb bytes.Buffer
	o := demoOptions{Duration: 3 * time.Second, Exit: true, Clients: 8}
	g := geoOptions{Delays: "eu-asia=20ms,eu-me=5ms,asia-me=10ms", Third: "arbitrator", Leader: "asia", Users: 4, Items: 2, Stock: 1000, EUShare: 0.5}
	rep, err := runGeo(t.Context(), o, g, &out, &errb)
	t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Leaders[len(rep.Leaders)-1] != "asia" {
		t.Errorf("leaders %v, want asia", rep.Leaders)
	}
	conflicts, moves, linReads := 0, 0, 0
	for i, st := range rep.Regions {
		lat := st.commits["asia"]
		if len(lat) == 0 || len(st.reads) == 0 || len(st.commits) != 1 {
			t.Fatalf("%s: commits %v, %d reads; want commits with asia leading alone", geoRegions[i], st.commits, len(st.reads))
		}
		// A commit cannot beat the floor the delays set.
		if floor := rep.Delays.floor(i, 1); slices.Min(lat) < floor {
			t.Errorf("%s: a commit took %v, below the floor %v", geoRegions[i], slices.Min(lat), floor)
		}
		conflicts, moves = conflicts+st.conflicts, moves+len(st.moves)
		linReads += len(st.linReads)
		if st.missed > 0 {
			t.Errorf("%s: %d moved users did not read their own change", geoRegions[i], st.missed)
		}
	}
	// 4 users written from both regions: concurrent changes of one profile
	// must have met.
	if conflicts == 0 || moves == 0 || rep.Changes == 0 || rep.Checkout == 0 || linReads == 0 {
		t.Errorf("%d conflicts, %d moves, %d changes, %d checkouts, %d linearizable reads: want each above 0",
			conflicts, moves, rep.Changes, rep.Checkout, linReads)
	}
	if len(rep.Lost) > 0 || len(rep.Stock) > 0 || !strings.Contains(out.String(), "0 lost") {
		t.Errorf("lost %v, stock %v", rep.Lost, rep.Stock)
	}
}

func TestGeoDelays(t *testing.T) {
	d, err := parseGeoDelays(defaultGeoDelays)
	if err != nil {
		t.Fatal(err)
	}
	if d[0][1] != 100*time.Millisecond || d[1][0] != 100*time.Millisecond || d[2][1] != 60*time.Millisecond {
		t.Fatalf("parsed %v", d)
	}
	// The floors of docs/regions.md: eu leading, eu 80 ms and asia 280; asia
	// leading, 320 and 120; me leading, 160 and 200.
	for _, c := range []struct {
		r, leader int
		want      time.Duration
	}{{0, 0, 80}, {1, 0, 280}, {0, 1, 320}, {1, 1, 120}, {0, 2, 160}, {1, 2, 200}} {
		if got := d.floor(c.r, c.leader); got != c.want*time.Millisecond {
			t.Errorf("floor of %s with %s leading = %v, want %vms", geoRegions[c.r], geoRegions[c.leader], got, int(c.want))
		}
	}
	for _, bad := range []string{"", "eu-asia=100ms", "eu-asia=1ms,eu-me=1ms,asia-me=1ms,eu-asia=2ms", "eu-eu=1ms,eu-me=1ms,asia-me=1ms",
		"eu-asia=-1ms,eu-me=1ms,asia-me=1ms", "eu-mars=1ms,eu-me=1ms,asia-me=1ms", "eu-asia,eu-me=1ms,asia-me=1ms"} {
		if _, err := parseGeoDelays(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, bad := range []geoOptions{
		{Delays: defaultGeoDelays, Third: "witness", Users: 1, Items: 1},
		{Delays: defaultGeoDelays, Third: "arbitrator", Leader: "me", Users: 1, Items: 1},
		{Delays: defaultGeoDelays, Third: "data", Leader: "mars", Users: 1, Items: 1},
		{Delays: defaultGeoDelays, Third: "data", Users: 0, Items: 1},
		{Delays: defaultGeoDelays, Third: "data", Users: 1, Items: 1, EUShare: 1.5},
	} {
		if _, err := bad.validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// A demo flag the chosen demo would ignore, or clients that leave a region
// empty, are refused before anything starts.
func TestDemoFlagsRefused(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--users", "3"}, "--users applies only with --geo"},
		{[]string{"--leader", "eu"}, "--leader applies only with --geo"},
		{[]string{"--geo", "--accounts", "5"}, "--accounts applies to the bank, not with --geo"},
		{[]string{"--geo", "--clients", "1"}, "--clients 1 with --eu-share 0.5 leaves a region without clients"},
		{[]string{"--geo", "--eu-share", "0"}, "--clients 12 with --eu-share 0 leaves a region without clients"},
		{[]string{"--geo", "--clients", "0"}, "--clients must be at least 1"},
	} {
		code, _, stderr := runCLI(t, append([]string{"demo", "--exit"}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("demo %v: exit %d, %q; want 2 and %q", c.args, code, stderr, c.want)
		}
	}
}
