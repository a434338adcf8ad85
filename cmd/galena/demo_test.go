package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var out, errb bytes.Buffer
	o := demoOptions{Duration: 2 * time.Second, Exit: true, Accounts: 20, Clients: 12}
	rep, err := runDemo(t.Context(), o, &out, &errb)
	t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Commits == 0 {
		t.Error("no transfer committed")
	}
	if len(rep.Totals) != demoMembers {
		t.Fatalf("totals of %d members, want %d", len(rep.Totals), demoMembers)
	}
	for _, m := range rep.Totals {
		if m.Total != 20*initialBalance || m.Accounts != 20 {
			t.Errorf("%s: total %d in %d accounts, want 2000 in 20", m.ID, m.Total, m.Accounts)
		}
	}
	if !strings.Contains(out.String(), "digests equal") || strings.Contains(out.String(), "WRONG") {
		t.Errorf("report:\n%s", out.String())
	}
	if !strings.Contains(errb.String(), "commits") {
		t.Errorf("no progress line on stderr:\n%s", errb.String())
	}
}
