package checker

import (
	"bytes"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func put(k, v string) WatchChange { return WatchChange{Key: k, Value: v} }

func del(k string) WatchChange { return WatchChange{Key: k, Delete: true} }

func event(seqno uint64, cs ...WatchChange) WatchEvent { return WatchEvent{Seqno: seqno, Changes: cs} }

func commit(typ Type, seqno uint64, writes ...WatchChange) Op {
	return Op{Process: 1, Type: typ, Node: "n1", Watch: &WatchOp{F: WatchCommit, Writes: writes, Seqno: seqno}}
}

func follow(node string, l WatchLog) Op {
	return Op{Process: 7, Type: TypeOK, Node: node, Watch: &WatchOp{F: WatchFollow, Log: &l}}
}

// watchRun is a run of the watch workload: the writers' commits, then one
// log per watcher, and the members' final contents.
type watchRun struct {
	commits []Op
	logs    []WatchLog
	nodes   []string // the member of each log
	final   map[string]string
}

// Ops of validRun: the commits, then the logs of n1/all, n2/a and n3/b.
const (
	logAll = iota
	logA
	logB
)

// validRun starts at seqno 10 with watch/a/2 and watch/b/3, and has every
// outcome: acknowledged commits (one writing outside every range), failed
// ones, and commits of unknown outcome that took effect (one deleting
// only) or did not. Its three watchers, over every watched key, the a/
// and the b/ prefix, saw exactly what they should.
func validRun() watchRun {
	initial := []WatchChange{put("watch/a/2", "init-a2"), put("watch/b/3", "init-b3")}
	in := func(start, end string) []WatchChange {
		var out []WatchChange
		for _, c := range initial {
			if c.Key >= start && c.Key < end {
				out = append(out, c)
			}
		}
		return out
	}
	return watchRun{
		commits: []Op{
			commit(TypeOK, 11, put("watch/a/1", "v1")),
			commit(TypeOK, 12, put("watch/b/1", "v2"), del("watch/a/2")),
			commit(TypeInfo, 0, put("watch/a/3", "v3")), // took effect at 13
			commit(TypeFail, 0, put("watch/a/4", "v4")),
			commit(TypeInfo, 0, put("watch/b/2", "v5")), // never took effect
			commit(TypeOK, 14, put("watch0", "v7"), put("watch/a/1", "v6")),
			commit(TypeInfo, 0, del("watch/b/3")), // took effect at 15
		},
		logs: []WatchLog{{
			Name: "n1/all", Start: "watch/", End: "watch0", After: 10, Initial: in("watch/", "watch0"),
			Events: []WatchEvent{
				event(11, put("watch/a/1", "v1")),
				event(12, del("watch/a/2"), put("watch/b/1", "v2")),
				event(13, put("watch/a/3", "v3")),
				event(14, put("watch/a/1", "v6")),
				event(15, del("watch/b/3")),
			},
			Progress: 16, Resumes: 2, Rewatches: 1,
		}, {
			Name: "n2/a", Start: "watch/a/", End: "watch/a0", After: 10, Initial: in("watch/a/", "watch/a0"),
			Events: []WatchEvent{
				event(11, put("watch/a/1", "v1")),
				event(12, del("watch/a/2")),
				event(13, put("watch/a/3", "v3")),
				event(14, put("watch/a/1", "v6")),
			},
			Progress: 16,
		}, {
			Name: "n3/b", Start: "watch/b/", End: "watch/b0", After: 10, Initial: in("watch/b/", "watch/b0"),
			Events:   []WatchEvent{event(12, put("watch/b/1", "v2")), event(15, del("watch/b/3"))},
			Progress: 15,
		}},
		nodes: []string{"n1", "n2", "n3"},
		final: map[string]string{"watch/a/1": "v6", "watch/a/3": "v3", "watch/b/1": "v2", "watch0": "v7"},
	}
}

// history returns r's ops, commits first.
func (r watchRun) history() []Op {
	h := slices.Clone(r.commits)
	for i, l := range r.logs {
		h = append(h, follow(r.nodes[i], l))
	}
	return seq(h...)
}

// logOp is the index in r.history() of log i.
func (r watchRun) logOp(i int) int { return len(r.commits) + i }

func (r watchRun) config() WatchConfig {
	cfg := WatchConfig{Final: map[string]map[string]string{}}
	for _, n := range r.nodes {
		cfg.Final[n] = maps.Clone(r.final)
	}
	return cfg
}

func (r watchRun) check(t *testing.T) Result {
	t.Helper()
	res, err := CheckWatch(r.history(), r.config())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestWatchValid(t *testing.T) {
	r := validRun()
	res := r.check(t)
	wantKinds(t, res)
	want := map[string]int{"ok-commits": 3, "info-commits": 3, "fail-commits": 1, "info-seen": 2,
		"watchers": 3, "events": 11, "verified": 11, "resumes": 2, "rewatches": 1}
	if !maps.Equal(res.Counts, want) {
		t.Errorf("counts = %v, want %v", res.Counts, want)
	}
}

// Each planted fault is caught with its kind, and the anomaly names the
// watcher's log and the commits involved.
func TestWatchPlantedFaults(t *testing.T) {
	tests := []struct {
		name  string
		plant func(r *watchRun)
		kinds []string
		log   int   // the log the anomaly of kinds[0] is about
		ops   []int // the commits it names
	}{{
		name: "gap: an acknowledged commit missing",
		plant: func(r *watchRun) {
			r.logs[logB].Events = slices.Delete(r.logs[logB].Events, 0, 1) // seqno 12
		},
		kinds: []string{KindWatchGap, KindWatchFinal}, log: logB, ops: []int{1},
	}, {
		name: "gap: stopped below an acknowledged commit",
		plant: func(r *watchRun) {
			r.logs[logA].Events = r.logs[logA].Events[:3]
			r.logs[logA].Progress = 13
		},
		kinds: []string{KindWatchGap, KindWatchFinal}, log: logA, ops: []int{5},
	}, {
		name: "reorder",
		plant: func(r *watchRun) {
			e := r.logs[logAll].Events
			e[2], e[3] = e[3], e[2] // 14 before 13: different keys, same final state
		},
		kinds: []string{KindWatchReorder}, log: logAll,
	}, {
		name: "duplicate",
		plant: func(r *watchRun) {
			e := r.logs[logA].Events
			r.logs[logA].Events = slices.Insert(e, 3, e[2]) // 13 twice
		},
		kinds: []string{KindWatchDuplicate}, log: logA,
	}, {
		name: "duplicate out of order",
		plant: func(r *watchRun) {
			r.logs[logA].Events = append(r.logs[logA].Events, r.logs[logA].Events[0]) // 11 again at the end
		},
		kinds: []string{KindWatchDuplicate, KindWatchFinal}, log: logA,
	}, {
		name: "phantom: writes no one attempted",
		plant: func(r *watchRun) {
			r.logs[logAll].Events = append(r.logs[logAll].Events, event(16, del("watch/c/9")))
		},
		kinds: []string{KindWatchPhantom}, log: logAll,
	}, {
		name: "phantom: a failed commit",
		plant: func(r *watchRun) {
			r.logs[logA].Events = append(r.logs[logA].Events, event(16, put("watch/a/4", "v4")))
		},
		kinds: []string{KindWatchPhantom, KindWatchFinal}, log: logA, ops: []int{3},
	}, {
		name: "phantom: an acknowledged commit at another seqno",
		plant: func(r *watchRun) {
			r.logs[logA].Events[3].Seqno = 15 // acknowledged at 14
		},
		kinds: []string{KindWatchPhantom, KindWatchGap}, log: logA, ops: []int{5, 6}, // 6: seen at 15
	}, {
		name: "phantom: part of a commit",
		plant: func(r *watchRun) {
			r.logs[logAll].Events[1].Changes = r.logs[logAll].Events[1].Changes[1:] // 12 without its delete
		},
		kinds: []string{KindWatchPhantom, KindWatchFinal}, log: logAll, ops: []int{1},
	}, {
		name: "diverged: a commit of unknown outcome seen by one watcher only",
		plant: func(r *watchRun) {
			r.logs[logB].Events = r.logs[logB].Events[:1] // no seqno 15
		},
		kinds: []string{KindWatchDiverged, KindWatchFinal}, log: logB, ops: []int{6},
	}, {
		name: "diverged: a commit of unknown outcome at two seqnos",
		plant: func(r *watchRun) {
			r.logs[logA].Events[2].Seqno = 15 // logAll saw it at 13
			r.logs[logA].Events[2], r.logs[logA].Events[3] = r.logs[logA].Events[3], r.logs[logA].Events[2]
		},
		kinds: []string{KindWatchDiverged}, log: logA, ops: []int{2, 6}, // 6: seen at 15
	}, {
		name: "outside: a key outside the range",
		plant: func(r *watchRun) {
			r.logs[logB].Events[0] = r.logs[logAll].Events[1] // with watch/a/2
		},
		kinds: []string{KindWatchOutside}, log: logB,
	}, {
		name: "outside: an event at or below the start",
		plant: func(r *watchRun) {
			r.logs[logB].Events = slices.Insert(r.logs[logB].Events, 0, event(10, put("watch/b/3", "init-b3")))
		},
		kinds: []string{KindWatchOutside}, log: logB,
	}, {
		name: "final state differs",
		plant: func(r *watchRun) {
			r.final["watch/b/1"] = "v5"
		},
		kinds: []string{KindWatchFinal}, log: logAll,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRun()
			tt.plant(&r)
			res := r.check(t)
			kind := tt.kinds[0]
			wantKinds(t, res, tt.kinds...) // sorts tt.kinds
			a := find(t, res.Anomalies, kind)
			want := append([]int{r.logOp(tt.log)}, tt.ops...)
			slices.Sort(want)
			if got := indexes(a); !slices.Equal(got, want) {
				t.Errorf("%s anomaly's ops = %v, want %v\n%s", kind, got, want, res)
			}
		})
	}
}

// The kinds the planted faults must be reported as, and only those.
func TestWatchPlantedGapAndReorder(t *testing.T) {
	r := validRun()
	r.logs[logAll].Events = slices.Delete(r.logs[logAll].Events, 3, 4) // no seqno 14
	e := r.logs[logB].Events
	e[0], e[1] = e[1], e[0] // 15 before 12
	res := r.check(t)
	wantKinds(t, res, KindWatchGap, KindWatchReorder, KindWatchFinal)
	gap := find(t, res.Anomalies, KindWatchGap)
	if !strings.Contains(gap.Detail, "n1/all") || !strings.Contains(gap.Detail, "no event at seqno 14") {
		t.Errorf("gap detail: %s", gap.Detail)
	}
	reorder := find(t, res.Anomalies, KindWatchReorder)
	if !strings.Contains(reorder.Detail, "n3/b") || !strings.Contains(reorder.Detail, "seqno 12 after seqno 15") {
		t.Errorf("reorder detail: %s", reorder.Detail)
	}
}

// Commits of deletes only are told apart by every watcher that covers
// their seqno: the b/ watcher, which saw nothing at 16, rules out the
// first commit deleting watch/a/5, though the a/ watcher's event matches
// it.
func TestWatchDeletesOnlyTakeTheCommitAllWatchersShow(t *testing.T) {
	r := validRun()
	r.commits = append(r.commits,
		commit(TypeInfo, 0, del("watch/a/5"), del("watch/b/5")), // never took effect
		commit(TypeInfo, 0, del("watch/a/5")))                   // took effect at 16
	for _, i := range []int{logA, logAll} {
		r.logs[i].Events = append(r.logs[i].Events, event(16, del("watch/a/5")))
		r.logs[i].Progress = 17
	}
	r.logs[logB].Progress = 17
	res := r.check(t)
	wantKinds(t, res)
	if res.Counts["info-seen"] != 3 {
		t.Errorf("counts = %v, want 3 info commits seen", res.Counts)
	}

	// Without the event of the a/ watcher, the others still agree on the
	// second commit, and the a/ watcher missed it.
	r.logs[logA].Events = r.logs[logA].Events[:len(r.logs[logA].Events)-1]
	res = r.check(t)
	wantKinds(t, res, KindWatchDiverged)
	if a := find(t, res.Anomalies, KindWatchDiverged); !slices.Equal(indexes(a), []int{len(r.commits) - 1, r.logOp(logA)}) {
		t.Errorf("diverged names ops %v\n%s", indexes(a), res)
	}
}

func TestWatchTwoCommitsAcknowledgedAtOneSeqno(t *testing.T) {
	r := validRun()
	r.commits[3] = commit(TypeOK, 12, put("watch/a/4", "v4"))
	wantKinds(t, r.check(t), KindWatchDiverged)
}

// A log that ended with an error is checked up to its progress, but not
// replayed, nor required to reach the last acknowledged commit.
func TestWatchFailedLogEndsEarly(t *testing.T) {
	r := validRun()
	r.logs[logA].Events = r.logs[logA].Events[:2]
	r.logs[logA].Progress = 12
	h := r.history()
	h[r.logOp(logA)].Type, h[r.logOp(logA)].Error = TypeFail, "snapshot too old"
	res, err := CheckWatch(h, r.config())
	if err != nil {
		t.Fatal(err)
	}
	wantKinds(t, res)
}

func TestWatchMalformed(t *testing.T) {
	for name, plant := range map[string]func(r *watchRun){
		"value put twice":  func(r *watchRun) { r.commits[3].Watch.Writes[0].Value = "v1" },
		"ok without seqno": func(r *watchRun) { r.commits[0].Watch.Seqno = 0 },
		"commit no writes": func(r *watchRun) { r.commits[0].Watch.Writes = nil },
		"progress below":   func(r *watchRun) { r.logs[logA].Progress = 9 },
		"unknown function": func(r *watchRun) { r.commits[0].Watch.F = "scan" },
	} {
		r := validRun()
		plant(&r)
		if _, err := CheckWatch(r.history(), r.config()); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestWatchHistoryRoundTrip(t *testing.T) {
	h := validRun().history()
	var buf bytes.Buffer
	if err := WriteHistory(&buf, h); err != nil {
		t.Fatal(err)
	}
	got, err := ReadHistory(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, h) {
		t.Fatalf("round trip:\n got %v\nwant %v", got, h)
	}
	if s := Summarize(h).String(); s != "watch ok/fail/info=6/1/3" {
		t.Errorf("Summarize = %q", s)
	}
	for i, want := range map[int]string{
		1:                           "p1 ok n1 commit [watch/b/1=v2 del watch/a/2] at 12",
		len(validRun().commits):     "p7 ok n1 follow n1/all [watch/, watch0) after 10: 5 events, progress 16, 2 resumes, 1 rewatches",
		len(validRun().commits) - 1: "p1 info n1 commit [del watch/b/3]",
	} {
		if got := h[i].String(); got != want {
			t.Errorf("op %d = %q, want %q", i, got, want)
		}
	}
}
