package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/client"
	"google.golang.org/grpc"
)

// dg is a 32-byte digest made of one repeated byte.
func dg(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// ans is a data member's answer: applied seqno, its digest and checkpoints.
func ans(id string, applied uint64, d byte, cps ...uint64) digestAnswer {
	a := digestAnswer{id: id, addr: id + ":1", applied: applied, state: "SYNCED", points: map[uint64][]byte{applied: dg(d)}}
	for _, s := range cps {
		a.points[s] = dg(byte(s)) // a checkpoint's digest depends on its seqno only
	}
	return a
}

// divergedAt is ans with the checkpoint at seqno s replaced by digest d.
func divergedAt(a digestAnswer, s uint64, d byte) digestAnswer {
	a.points[s] = dg(d)
	return a
}

func TestCompareDigests(t *testing.T) {
	unreachable := digestAnswer{id: "n9", addr: "n9:1", err: errors.New("connection refused")}
	arbitrator := digestAnswer{id: "arb", addr: "arb:1", arbitrator: true}
	tests := []struct {
		name     string
		answers  []digestAnswer
		verdict  string
		seqno    uint64
		outcomes []string
	}{
		{"same applied seqno", []digestAnswer{ans("n1", 50, 7), ans("n2", 50, 7), ans("n3", 50, 7)},
			verdictConsistent, 50, []string{memberAgrees, memberAgrees, memberAgrees}},
		{"highest common checkpoint", []digestAnswer{ans("n1", 70, 1, 16, 32, 48), ans("n2", 60, 2, 32, 48), ans("n3", 49, 3, 16, 32, 48)},
			verdictConsistent, 48, []string{memberAgrees, memberAgrees, memberAgrees}},
		{"applied seqno of one is a checkpoint of another", []digestAnswer{ans("n1", 70, 1, 32, 64), ans("n2", 64, 64, 32)},
			verdictConsistent, 64, []string{memberAgrees, memberAgrees}},
		{"no common seqno", []digestAnswer{ans("n1", 70, 1, 64), ans("n2", 60, 2, 32)},
			verdictNoCommon, 0, []string{memberNotCompared, memberNotCompared}},
		{"one diverged", []digestAnswer{ans("n1", 70, 1, 64), divergedAt(ans("n2", 66, 2, 64), 64, 0xee), ans("n3", 64, 64)},
			verdictDiverged, 64, []string{memberAgrees, memberDiverged, memberAgrees}},
		{"two disagree", []digestAnswer{ans("n1", 64, 1), ans("n2", 64, 2)},
			verdictDisagree, 64, []string{memberDisagrees, memberDisagrees}},
		{"no majority of three", []digestAnswer{ans("n1", 64, 1), ans("n2", 64, 2), ans("n3", 64, 3)},
			verdictDisagree, 64, []string{memberDisagrees, memberDisagrees, memberDisagrees}},
		{"arbitrator and unreachable skipped", []digestAnswer{ans("n1", 64, 1), arbitrator, unreachable, ans("n2", 64, 1)},
			verdictConsistent, 64, []string{memberAgrees, memberArbitrator, memberUnreachable, memberAgrees}},
		{"one data member and an arbitrator", []digestAnswer{ans("n1", 64, 1), arbitrator},
			verdictConsistent, 64, []string{memberAgrees, memberArbitrator}},
		{"only one data member answered", []digestAnswer{ans("n1", 64, 1), unreachable},
			verdictTooFew, 0, []string{memberNotCompared, memberUnreachable}},
		{"nobody answered", []digestAnswer{unreachable},
			verdictTooFew, 0, []string{memberUnreachable}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := compareDigests(tt.answers)
			if rep.Verdict != tt.verdict || rep.Seqno != tt.seqno {
				t.Fatalf("verdict %s at %d; want %s at %d", rep.Verdict, rep.Seqno, tt.verdict, tt.seqno)
			}
			for i, m := range rep.Members {
				if m.Outcome != tt.outcomes[i] {
					t.Errorf("%s: outcome %s; want %s", m.ID, m.Outcome, tt.outcomes[i])
				}
			}
			if rep.final() != (tt.verdict != verdictNoCommon && tt.verdict != verdictTooFew) {
				t.Errorf("final() = %v for %s", rep.final(), rep.Verdict)
			}
		})
	}
}

func TestCheckReportText(t *testing.T) {
	unreachable := digestAnswer{id: "n4", addr: "n4:1", err: errors.New("connection refused")}
	tests := []struct {
		name    string
		answers []digestAnswer
		out     string
		err     string // "" for success
	}{
		{"consistent", []digestAnswer{ans("n1", 8192, 0xab), ans("n2", 8192, 0xab), unreachable},
			"n4: not checked: unreachable: connection refused\nconsistent: 2 members agree at seqno 8192 (digest abababab…)\n", ""},
		{"one member", []digestAnswer{ans("n1", 7, 0xab), {id: "arb", arbitrator: true}},
			"arb: not checked: arbitrator, stores no data\nconsistent: the only member with data is at seqno 7 (digest abababab…)\n", ""},
		{"diverged", []digestAnswer{ans("n1", 8192, 0xcd), ans("n2", 8192, 0xcd), ans("n3", 8192, 0xab)},
			"n3 diverged at seqno 8192: digest abababab… differs from the majority's cdcdcdcd…\n",
			"inconsistent: n3 diverged at seqno 8192"},
		{"disagree", []digestAnswer{ans("n1", 8192, 0xcd), ans("n2", 8192, 0xab)},
			"members disagree at seqno 8192: n1 has cdcdcdcd…, n2 has abababab…\n",
			"inconsistent: n1, n2 disagree at seqno 8192, and no digest has a majority"},
		{"no common seqno", []digestAnswer{ans("n1", 70, 1), ans("n2", 60, 2)},
			"", "not checked: no seqno at which n1, n2 can all be compared within 5s (applied: n1 70, n2 60)"},
		{"too few", []digestAnswer{ans("n1", 70, 1), unreachable},
			"n4: not checked: unreachable: connection refused\n", "not checked: fewer than two members with data answered within 5s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := compareDigests(tt.answers)
			var out bytes.Buffer
			if err := printCheck(&out, rep); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.out {
				t.Errorf("output:\n%s\nwant:\n%s", out.String(), tt.out)
			}
			err := rep.failure(5 * time.Second)
			if (err == nil) != (tt.err == "") || (err != nil && err.Error() != tt.err) {
				t.Errorf("failure = %v; want %q", err, tt.err)
			}
		})
	}
}

// fakeMember serves Status, MemberList and Digest with answers a test sets.
type fakeMember struct {
	galenapb.UnimplementedKVServer
	addr string

	mu      sync.Mutex
	status  *galenapb.StatusResponse
	members []*galenapb.Member
	digest  func() *galenapb.DigestResponse
	commit  func() (*galenapb.CommitResponse, error)
}

// fakeClusterService serves the Cluster service of a fakeMember. (The two
// services' Unimplemented types cannot both be embedded in one struct.)
type fakeClusterService struct {
	galenapb.UnimplementedClusterServer
	m *fakeMember
}

func startFakeMember(t *testing.T, id string) *fakeMember {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeMember{addr: lis.Addr().String()}
	m.status = &galenapb.StatusResponse{Id: id, Address: m.addr, State: "SYNCED"}
	srv := grpc.NewServer()
	galenapb.RegisterKVServer(srv, m)
	galenapb.RegisterClusterServer(srv, fakeClusterService{m: m})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return m
}

func (m *fakeMember) set(fn func(m *fakeMember)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fn(m)
}

func (m *fakeMember) Status(context.Context, *galenapb.StatusRequest) (*galenapb.StatusResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status, nil
}

func (s fakeClusterService) MemberList(context.Context, *galenapb.MemberListRequest) (*galenapb.MemberListResponse, error) {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return &galenapb.MemberListResponse{ClusterId: "c1", LeaderId: "n1", Members: s.m.members}, nil
}

func (s fakeClusterService) Digest(context.Context, *galenapb.DigestRequest) (*galenapb.DigestResponse, error) {
	s.m.mu.Lock()
	fn := s.m.digest
	s.m.mu.Unlock()
	return fn(), nil
}

// fakeMembers starts n fake members n1..nn that list each other.
func fakeMembers(t *testing.T, n int) []*fakeMember {
	var ms []*fakeMember
	var list []*galenapb.Member
	for i := range n {
		m := startFakeMember(t, "n"+string(rune('1'+i)))
		ms = append(ms, m)
		list = append(list, &galenapb.Member{Id: m.status.Id, Address: m.addr, Voter: true})
	}
	for _, m := range ms {
		m.set(func(m *fakeMember) { m.members = list })
	}
	return ms
}

func fixedDigest(id string, applied uint64, d []byte, cps ...*galenapb.Checkpoint) func() *galenapb.DigestResponse {
	return func() *galenapb.DigestResponse {
		return &galenapb.DigestResponse{Id: id, AppliedSeqno: applied, Digest: d, Checkpoints: cps, State: "SYNCED"}
	}
}

// A diverged member makes `galena check` fail, naming it; an arbitrator,
// which answers with an empty digest, is skipped.
func TestCheckCommandDiverged(t *testing.T) {
	ms := fakeMembers(t, 4)
	ms[0].set(func(m *fakeMember) { m.digest = fixedDigest("n1", 100, dg(1)) })
	ms[1].set(func(m *fakeMember) { m.digest = fixedDigest("n2", 100, dg(1)) })
	ms[2].set(func(m *fakeMember) { m.digest = fixedDigest("n3", 100, dg(2)) })
	ms[3].set(func(m *fakeMember) {
		m.status.Arbitrator = true
		m.digest = fixedDigest("n4", 100, nil)
	})
	code, out, errs := runCLI(t, "--endpoints", ms[1].addr, "check")
	wantOut := "n4: not checked: arbitrator, stores no data\n" +
		"n3 diverged at seqno 100: digest 02020202… differs from the majority's 01010101…\n"
	if code != 1 || out != wantOut || errs != "galena: inconsistent: n3 diverged at seqno 100\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 1, %q", code, out, errs, wantOut)
	}

	code, out, _ = runCLI(t, "--endpoints", ms[1].addr, "check", "--json")
	var rep checkReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 {
		t.Fatalf("exit %d, stdout %q: %v", code, out, err)
	}
	if rep.Verdict != verdictDiverged || rep.Seqno != 100 || rep.Digest != hex.EncodeToString(dg(1)) ||
		rep.Members[2].Outcome != memberDiverged || rep.Members[3].Outcome != memberArbitrator {
		t.Fatalf("report %+v", rep)
	}
}

// While the members have no seqno in common, check asks again; it
// succeeds once they have one.
func TestCheckCommandRetries(t *testing.T) {
	ms := fakeMembers(t, 2)
	var mu sync.Mutex
	calls := 0
	ms[0].set(func(m *fakeMember) {
		m.digest = fixedDigest("n1", 300, dg(9), &galenapb.Checkpoint{Seqno: 256, Digest: dg(5)})
	})
	ms[1].set(func(m *fakeMember) {
		m.digest = func() *galenapb.DigestResponse {
			mu.Lock()
			defer mu.Unlock()
			if calls++; calls < 3 {
				return &galenapb.DigestResponse{AppliedSeqno: 200, Digest: dg(3)} // behind: nothing in common yet
			}
			return &galenapb.DigestResponse{AppliedSeqno: 260, Digest: dg(6), Checkpoints: []*galenapb.Checkpoint{{Seqno: 256, Digest: dg(5)}}}
		}
	})
	code, out, errs := runCLI(t, "--endpoints", ms[0].addr, "--timeout", "10s", "check")
	if code != 0 || out != "consistent: 2 members agree at seqno 256 (digest 05050505…)\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 3 {
		t.Fatalf("%d Digest calls to n2; want 3", calls)
	}
}

func TestCheckCommandNoCommonSeqno(t *testing.T) {
	ms := fakeMembers(t, 2)
	ms[0].set(func(m *fakeMember) { m.digest = fixedDigest("n1", 300, dg(9)) })
	ms[1].set(func(m *fakeMember) { m.digest = fixedDigest("n2", 200, dg(3)) })
	began := time.Now()
	code, out, errs := runCLI(t, "--endpoints", ms[0].addr, "--timeout", "1s", "check")
	want := "galena: not checked: no seqno at which n1, n2 can all be compared within 1s (applied: n1 300, n2 200)\n"
	if code != 1 || out != "" || errs != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and %q", code, out, errs, want)
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Fatalf("took %v with --timeout 1s", d)
	}
}

// earlyDeadline reports a deadline before the one that ends it, as a
// context does between its deadline and the moment its timer fires: gRPC
// already fails calls at the deadline while Err is still nil.
type earlyDeadline struct {
	context.Context
	at time.Time
}

func (c earlyDeadline) Deadline() (time.Time, bool) { return c.at, true }

// Rounds of check that start at the deadline fail for every member, even
// while the context does not yet say it is done: the report is still the
// last whole round's.
func TestCheckKeepsLastReportAtDeadline(t *testing.T) {
	ms := fakeMembers(t, 2)
	ms[0].set(func(m *fakeMember) { m.digest = fixedDigest("n1", 300, dg(9)) })
	ms[1].set(func(m *fakeMember) { m.digest = fixedDigest("n2", 200, dg(3)) })
	c, err := client.New(client.Config{Endpoints: []string{ms[0].addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ends, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	ctx := earlyDeadline{Context: ends, at: time.Now().Add(time.Second)}
	rep, err := checkCluster(ctx, prober{c: c, dialTimeout: client.DefaultDialTimeout}, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verdict != verdictNoCommon || rep.Members[0].AppliedSeqno != 300 || rep.Members[1].AppliedSeqno != 200 {
		t.Fatalf("report %+v; want %s with both members' applied seqnos", rep, verdictNoCommon)
	}
}
