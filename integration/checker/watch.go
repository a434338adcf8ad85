package checker

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Watch functions.
const (
	WatchCommit = "commit"
	WatchFollow = "follow"
)

// WatchOp is an operation of the watch workload: a transaction's commit of
// Writes (WatchCommit), acknowledged at Seqno when ok; or what one watcher
// of the change feed returned as it followed it (WatchFollow), in Log.
type WatchOp struct {
	F      string        `json:"f"`
	Writes []WatchChange `json:"writes,omitempty"`
	Seqno  uint64        `json:"seqno,omitempty"`
	Log    *WatchLog     `json:"log,omitempty"`
}

// WatchChange is a put of Value to Key or, with Delete, a delete of Key.
type WatchChange struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Delete bool   `json:"delete,omitempty"`
}

// WatchEvent is one event a watcher returned: the changes one write-set
// made to the watcher's range, in key order.
type WatchEvent struct {
	Seqno   uint64        `json:"seqno"`
	Changes []WatchChange `json:"changes"`
}

// WatchLog is what one watcher of the keys in [Start, End) returned, in
// order: its Events cover the seqnos in (After, Progress], that is, every
// write-set above After and at or below Progress that wrote a key of the
// range should be one of them.
type WatchLog struct {
	// Name names the watcher in anomalies.
	Name string `json:"name"`
	// Start and End bound the range; an empty End means no upper bound.
	Start string `json:"start"`
	End   string `json:"end,omitempty"`
	// After is the seqno the watch started after; Initial are the range's
	// keys and values at After (puts).
	After   uint64        `json:"after"`
	Initial []WatchChange `json:"initial,omitempty"`
	Events  []WatchEvent  `json:"events,omitempty"`
	// Progress is the seqno at or below which every event was returned.
	Progress uint64 `json:"progress"`
	// Resumes counts the watch's restarts inside the client, Rewatches the
	// new watches after Progress that continued it, Unavailable the calls
	// of Next that failed for want of a member and were made again.
	Resumes     int `json:"resumes,omitempty"`
	Rewatches   int `json:"rewatches,omitempty"`
	Unavailable int `json:"unavailable,omitempty"`
}

func (w *WatchOp) validate(t Type) error {
	switch {
	case w.F == WatchCommit && (len(w.Writes) == 0 || w.Log != nil):
		return fmt.Errorf("%w: a watch commit needs writes and no log", ErrMalformed)
	case w.F == WatchCommit && t == TypeOK && w.Seqno == 0:
		return fmt.Errorf("%w: an ok watch commit without its seqno", ErrMalformed)
	case w.F == WatchFollow && (w.Log == nil || len(w.Writes) > 0):
		return fmt.Errorf("%w: a watch log needs a log and no writes", ErrMalformed)
	case w.F == WatchFollow && w.Log.Progress < w.Log.After:
		return fmt.Errorf("%w: watch log %s: progress %d below its start %d", ErrMalformed, w.Log.Name, w.Log.Progress, w.Log.After)
	case w.F != WatchCommit && w.F != WatchFollow:
		return fmt.Errorf("%w: unknown watch function %q", ErrMalformed, w.F)
	}
	return nil
}

// String renders w, such as "commit [watch/a/1=v3 del watch/b/2] at 17" or
// "follow n1/all [watch/, watch0) after 5: 40 events, progress 88, 2
// resumes, 1 rewatches".
func (w *WatchOp) String() string {
	if w.F == WatchCommit {
		s := "commit " + formatChanges(w.Writes)
		if w.Seqno > 0 {
			s += fmt.Sprintf(" at %d", w.Seqno)
		}
		return s
	}
	l := w.Log
	return fmt.Sprintf("follow %s %s after %d: %d events, progress %d, %d resumes, %d rewatches",
		l.Name, l.rangeString(), l.After, len(l.Events), l.Progress, l.Resumes, l.Rewatches)
}

func formatChanges(cs []WatchChange) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.String()
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// String renders c as "key=value" or "del key".
func (c WatchChange) String() string {
	if c.Delete {
		return "del " + c.Key
	}
	return c.Key + "=" + c.Value
}

func (l *WatchLog) rangeString() string {
	return fmt.Sprintf("[%s, %s)", l.Start, l.End)
}

// holds reports whether key lies in the log's range.
func (l *WatchLog) holds(key string) bool {
	return key >= l.Start && (l.End == "" || key < l.End)
}

// covers reports whether seqno lies in the seqnos the log's events cover.
func (l *WatchLog) covers(seqno uint64) bool {
	return seqno > l.After && seqno <= l.Progress
}

// Anomaly kinds of CheckWatch.
const (
	KindWatchGap       = "watch-gap"
	KindWatchReorder   = "watch-reorder"
	KindWatchDuplicate = "watch-duplicate"
	KindWatchPhantom   = "watch-phantom"
	KindWatchOutside   = "watch-outside"
	KindWatchDiverged  = "watch-diverged"
	KindWatchFinal     = "watch-final-state"
)

// WatchConfig is what CheckWatch compares the watchers with besides the
// commits of the history.
type WatchConfig struct {
	// Final holds members' final contents, key to value, by member id (the
	// Node of a log's op). A log that ended well (ok) is replayed: its
	// Initial with its Events applied in order must give its member's final
	// contents in its range. A log of a member not in Final is not
	// replayed.
	Final map[string]map[string]string
}

// CheckWatch checks the watch ops of h (other workloads are ignored): the
// commits the writers attempted, with their outcomes and acknowledged
// seqnos, and the logs of the watchers. An event shows a commit when its
// changes are exactly the commit's writes to the watcher's range (the last
// write of a key winning); every put writes a value no other write wrote,
// which names its commit. A seqno at which some watcher returned an event
// holds the commit acknowledged there or, when there is none, the commit
// of unknown outcome (info), not seen at another seqno, that the most
// watchers covering the seqno show (by an event, or by none when it wrote
// nothing in their range). It reports:
//
//   - KindWatchReorder: an event whose seqno is below the one before it;
//   - KindWatchDuplicate: a second event at a seqno;
//   - KindWatchOutside: an event with no changes, with changes out of key
//     order, of a key outside the range, or at a seqno outside (After,
//     Progress];
//   - KindWatchPhantom: an event at the seqno of an acknowledged commit
//     that does not show it, or one that shows no commit attempted, a
//     commit that failed, or one acknowledged at another seqno;
//   - KindWatchGap: no event at the seqno of an acknowledged commit that
//     wrote keys of the range, though the watcher covered that seqno (or,
//     for a log that ended well, though the commit was acknowledged and the
//     watcher stopped below it);
//   - KindWatchDiverged: watchers that disagree: an event of another
//     commit of unknown outcome than the one its seqno holds, or of one
//     seen at another seqno; no event where the commit of unknown outcome
//     a seqno holds wrote keys of the range; two commits acknowledged at
//     one seqno;
//   - KindWatchFinal: a log that ended well does not replay to the final
//     contents of its member (see WatchConfig.Final).
//
// Counts gives the commits by outcome, the info commits some watcher saw
// ("info-seen"), the watchers, their events, resumes and rewatches, and
// the events found where an acknowledged or seen commit required them
// ("verified"). CheckWatch returns an error wrapping ErrMalformed for a
// malformed op or a value put twice.
func CheckWatch(h []Op, cfg WatchConfig) (Result, error) {
	idx, err := opsOf(h, WorkloadWatch)
	if err != nil {
		return Result{}, err
	}
	c, err := newWatchCheck(h, idx)
	if err != nil {
		return Result{}, err
	}
	c.indexAcknowledged()
	for _, l := range c.logs {
		c.scanLog(l)
	}
	c.resolveAll()
	for _, l := range c.logs {
		c.checkCoverage(l)
		if final, ok := cfg.Final[h[l.op].Node]; ok && h[l.op].Type == TypeOK {
			c.checkReplay(l, final)
		}
	}
	c.count()
	for _, l := range c.logs {
		l.flush(c.res, h)
	}
	return *c.res, nil
}

// watchCheck is the state of one CheckWatch.
type watchCheck struct {
	h       []Op
	res     *Result
	commits []int      // ops of commits, in history order
	logs    []*logView // one per watcher log, in history order

	byValue  map[string]int   // a put's value -> its commit
	byDelete map[string][]int // a deleted key -> the commits deleting it
	okAt     map[uint64]int   // an acknowledged seqno -> its commit
	seenAt   map[uint64]int   // a seqno -> the info commit it holds
	infoAt   map[int]uint64   // an info commit seen -> its seqno
	verified int
}

// logView is one watcher log under check, with the anomalies found in it.
type logView struct {
	op      int
	log     *WatchLog
	at      map[uint64]int // seqno -> the first event at it
	match   []bool         // the events to match with a commit
	reports map[string]*logReport
}

// logReport gathers a log's cases of one anomaly kind.
type logReport struct {
	cases []string
	ops   []int
}

func newWatchCheck(h []Op, idx []int) (*watchCheck, error) {
	res := newResult()
	c := &watchCheck{h: h, res: &res, byValue: map[string]int{}, byDelete: map[string][]int{},
		okAt: map[uint64]int{}, seenAt: map[uint64]int{}, infoAt: map[int]uint64{}}
	for _, i := range idx {
		w := h[i].Watch
		if w.F == WatchFollow {
			c.logs = append(c.logs, &logView{op: i, log: w.Log, at: map[uint64]int{}, reports: map[string]*logReport{}})
			continue
		}
		c.commits = append(c.commits, i)
		for _, wr := range w.Writes {
			if wr.Delete {
				c.byDelete[wr.Key] = append(c.byDelete[wr.Key], i)
				continue
			}
			if j, dup := c.byValue[wr.Value]; dup && j != i {
				return nil, fmt.Errorf("op %d: %w: value %q put by op %d too", i, ErrMalformed, wr.Value, j)
			}
			c.byValue[wr.Value] = i
		}
	}
	return c, nil
}

// indexAcknowledged indexes the ok commits by seqno; two at one seqno
// diverge.
func (c *watchCheck) indexAcknowledged() {
	for _, i := range c.commits {
		if c.h[i].Type != TypeOK {
			continue
		}
		s := c.h[i].Watch.Seqno
		if j, dup := c.okAt[s]; dup {
			c.res.add(Anomaly{Kind: KindWatchDiverged, Ops: refs(c.h, j, i),
				Detail: fmt.Sprintf("two commits acknowledged at seqno %d", s)})
			continue
		}
		c.okAt[s] = i
	}
}

// restrict returns the writes of commit i to keys in l's range, the last
// write of a key winning, in key order.
func (c *watchCheck) restrict(i int, l *WatchLog) []WatchChange {
	last := map[string]WatchChange{}
	for _, wr := range c.h[i].Watch.Writes {
		if l.holds(wr.Key) {
			last[wr.Key] = wr
		}
	}
	out := make([]WatchChange, 0, len(last))
	for _, k := range slices.Sorted(maps.Keys(last)) {
		out = append(out, last[k])
	}
	return out
}

// scanLog checks the shape and order of l's events and picks those to
// match with a commit: every event but repeats and those with a bad shape.
func (c *watchCheck) scanLog(l *logView) {
	var prev uint64
	l.match = make([]bool, len(l.log.Events))
	for k, e := range l.log.Events {
		_, repeat := l.at[e.Seqno]
		switch {
		case repeat:
			l.add(KindWatchDuplicate, fmt.Sprintf("event %d repeats seqno %d", k, e.Seqno))
		case k > 0 && e.Seqno < prev:
			l.add(KindWatchReorder, fmt.Sprintf("event %d at seqno %d after seqno %d", k, e.Seqno, prev))
		}
		prev = e.Seqno
		if repeat {
			continue
		}
		l.at[e.Seqno] = k
		if bad := l.shapeError(e); bad != "" {
			l.add(KindWatchOutside, fmt.Sprintf("event %d at seqno %d: %s", k, e.Seqno, bad))
			continue
		}
		l.match[k] = true
	}
}

// shapeError says what is wrong with e's seqno or changes in l, or "".
func (l *logView) shapeError(e WatchEvent) string {
	switch {
	case !l.log.covers(e.Seqno):
		return fmt.Sprintf("outside the seqnos (%d, %d] the watch covered", l.log.After, l.log.Progress)
	case len(e.Changes) == 0:
		return "no changes"
	}
	for i, ch := range e.Changes {
		if !l.log.holds(ch.Key) {
			return fmt.Sprintf("key %q outside %s", ch.Key, l.log.rangeString())
		}
		if i > 0 && ch.Key <= e.Changes[i-1].Key {
			return fmt.Sprintf("key %q after %q: not in key order", ch.Key, e.Changes[i-1].Key)
		}
	}
	return ""
}

// resolveAll decides, seqno by seqno, which commit each seqno at which some
// watcher returned an event holds, and checks those events against it.
func (c *watchCheck) resolveAll() {
	at := map[uint64][]logEvent{}
	for _, l := range c.logs {
		for k, e := range l.log.Events {
			if l.match[k] {
				at[e.Seqno] = append(at[e.Seqno], logEvent{l, k})
			}
		}
	}
	for _, s := range slices.Sorted(maps.Keys(at)) {
		c.resolve(s, at[s])
	}
}

// logEvent is event k of l.
type logEvent struct {
	l *logView
	k int
}

func (e logEvent) event() WatchEvent { return e.l.log.Events[e.k] }

// resolve checks the events at seqno s against the commit acknowledged at
// s or, when there is none, against the commit of unknown outcome that
// most of the watchers covering s agree on, which is then taken as seen
// at s. An event that is not that commit is explained by explain.
func (c *watchCheck) resolve(s uint64, evs []logEvent) {
	held, ok := c.okAt[s]
	if !ok {
		held = c.bestInfo(s, evs)
		if held >= 0 {
			c.seenAt[s], c.infoAt[held] = held, s
		}
	}
	for _, ev := range evs {
		if held < 0 || !slices.Equal(c.restrict(held, ev.l.log), ev.event().Changes) {
			c.explain(ev, held)
		}
	}
}

// bestInfo returns the commit of unknown outcome, not seen at another
// seqno, whose writes some event at seqno s shows and with which the most
// watchers covering s agree (see agrees), the first in the history on a
// tie; or -1 when there is none.
func (c *watchCheck) bestInfo(s uint64, evs []logEvent) int {
	best, score := -1, 0
	for _, ev := range evs {
		for _, i := range c.commitsOf(ev.l.log, ev.event()) {
			if prev, seen := c.infoAt[i]; c.h[i].Type != TypeInfo || (seen && prev != s) {
				continue
			}
			n := 0
			for _, l := range c.logs {
				if l.log.covers(s) && c.agrees(l, s, i) {
					n++
				}
			}
			if n > score || (n == score && i < best) {
				best, score = i, n
			}
		}
	}
	return best
}

// agrees reports whether l, which covers seqno s, shows commit i there:
// an event of its writes to l's range, or no event when it wrote none.
func (c *watchCheck) agrees(l *logView, s uint64, i int) bool {
	want := c.restrict(i, l.log)
	k, ok := l.at[s]
	if !ok {
		return len(want) == 0
	}
	return slices.Equal(want, l.log.Events[k].Changes)
}

// explain reports an event that does not show held, the commit its seqno
// holds (-1: none known), by the commit it shows instead.
func (c *watchCheck) explain(ev logEvent, held int) {
	e := ev.event()
	at := fmt.Sprintf("event %d at seqno %d %s", ev.k, e.Seqno, formatChanges(e.Changes))
	shown := -1
	if cands := c.commitsOf(ev.l.log, e); len(cands) > 0 {
		shown = cands[0]
	}
	var ops []int
	for _, i := range []int{held, shown} {
		if i >= 0 {
			ops = append(ops, i)
		}
	}
	_, acknowledged := c.okAt[e.Seqno]
	switch {
	case acknowledged:
		ev.l.add(KindWatchPhantom, at+" is not the commit acknowledged there", ops...)
	case shown < 0:
		ev.l.add(KindWatchPhantom, at+": no commit wrote that", ops...)
	case c.h[shown].Type == TypeOK:
		ev.l.add(KindWatchPhantom, fmt.Sprintf("%s: a commit acknowledged at seqno %d", at, c.h[shown].Watch.Seqno), ops...)
	case c.h[shown].Type == TypeFail:
		ev.l.add(KindWatchPhantom, at+": a commit that failed", ops...)
	case held >= 0:
		ev.l.add(KindWatchDiverged, at+": the other watchers covering it show another commit there", ops...)
	default:
		ev.l.add(KindWatchDiverged, fmt.Sprintf("%s: a commit seen at seqno %d", at, c.infoAt[shown]), ops...)
	}
}

// commitsOf returns the commits whose writes to l's range are exactly e's
// changes, in history order: the one a put names, or those of the deletes.
// Of several, those of unknown outcome come first.
func (c *watchCheck) commitsOf(l *WatchLog, e WatchEvent) []int {
	var cands []int
	for _, ch := range e.Changes {
		if !ch.Delete {
			if i, ok := c.byValue[ch.Value]; ok {
				cands = []int{i}
			}
			break
		}
	}
	if !hasPut(e.Changes) && len(e.Changes) > 0 {
		cands = c.byDelete[e.Changes[0].Key]
	}
	var out []int
	for _, i := range cands {
		if slices.Equal(c.restrict(i, l), e.Changes) {
			out = append(out, i)
		}
	}
	slices.SortStableFunc(out, func(a, b int) int {
		return cmpBool(c.h[a].Type != TypeInfo, c.h[b].Type != TypeInfo)
	})
	return out
}

// cmpBool orders false before true.
func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func hasPut(cs []WatchChange) bool {
	return slices.ContainsFunc(cs, func(c WatchChange) bool { return !c.Delete })
}

// checkCoverage finds the commits l should show but does not: those
// acknowledged, or seen by a watcher, at a seqno l covered, with writes to
// its range; and, when l ended well, those acknowledged above its
// progress.
func (c *watchCheck) checkCoverage(l *logView) {
	for _, s := range slices.Sorted(maps.Keys(c.okAt)) {
		i := c.okAt[s]
		switch {
		case len(c.restrict(i, l.log)) == 0:
		case l.log.covers(s):
			c.expect(l, s, i, KindWatchGap, "acknowledged")
		case s > l.log.Progress && c.h[l.op].Type == TypeOK:
			l.add(KindWatchGap, fmt.Sprintf("commit acknowledged at seqno %d above the final progress %d", s, l.log.Progress), i)
		}
	}
	for _, s := range slices.Sorted(maps.Keys(c.seenAt)) {
		if i := c.seenAt[s]; l.log.covers(s) && len(c.restrict(i, l.log)) > 0 {
			c.expect(l, s, i, KindWatchDiverged, "of unknown outcome, seen by another watcher,")
		}
	}
}

// expect requires an event of l at seqno s, for commit i.
func (c *watchCheck) expect(l *logView, s uint64, i int, kind, what string) {
	if _, ok := l.at[s]; ok {
		c.verified++
		return
	}
	l.add(kind, fmt.Sprintf("no event at seqno %d, commit %s %s", s, what, formatChanges(c.restrict(i, l.log))), i)
}

// checkReplay applies l's events in order to its initial contents and
// compares the result with final, the final contents of l's member.
func (c *watchCheck) checkReplay(l *logView, final map[string]string) {
	state := map[string]string{}
	for _, kv := range l.log.Initial {
		if l.log.holds(kv.Key) {
			state[kv.Key] = kv.Value
		}
	}
	for _, e := range l.log.Events {
		for _, ch := range e.Changes {
			if ch.Delete {
				delete(state, ch.Key)
			} else {
				state[ch.Key] = ch.Value
			}
		}
	}
	want := map[string]string{}
	for k, v := range final {
		if l.log.holds(k) {
			want[k] = v
		}
	}
	keys := map[string]bool{}
	for k := range state {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		got, have := state[k]
		v, ok := want[k]
		switch {
		case have && !ok:
			l.add(KindWatchFinal, fmt.Sprintf("replay holds %s=%s, absent at the end", k, got))
		case !have && ok:
			l.add(KindWatchFinal, fmt.Sprintf("replay lacks %s=%s", k, v))
		case got != v:
			l.add(KindWatchFinal, fmt.Sprintf("replay holds %s=%s, the end %s=%s", k, got, k, v))
		}
	}
}

// count fills res's Counts.
func (c *watchCheck) count() {
	n := c.res.Counts
	for _, i := range c.commits {
		n[string(c.h[i].Type)+"-commits"]++
	}
	n["info-seen"] = len(c.infoAt)
	n["watchers"] = len(c.logs)
	n["verified"] = c.verified
	for _, l := range c.logs {
		n["events"] += len(l.log.Events)
		n["resumes"] += l.log.Resumes
		n["rewatches"] += l.log.Rewatches
	}
}

// add notes a case of kind in l, with the commits it involves.
func (l *logView) add(kind, what string, ops ...int) {
	r := l.reports[kind]
	if r == nil {
		r = &logReport{}
		l.reports[kind] = r
	}
	r.cases = append(r.cases, what)
	for _, o := range ops {
		if len(r.ops) < maxListed && !slices.Contains(r.ops, o) {
			r.ops = append(r.ops, o)
		}
	}
}

// flush adds l's anomalies to res, one per kind, in kind order; h is the
// history checked.
func (l *logView) flush(res *Result, h []Op) {
	for _, kind := range slices.Sorted(maps.Keys(l.reports)) {
		r := l.reports[kind]
		cases, more := r.cases, ""
		if len(cases) > maxListed {
			cases, more = cases[:maxListed], fmt.Sprintf("; ... (%d more)", len(cases)-maxListed)
		}
		res.add(Anomaly{Kind: kind, Ops: refs(h, append([]int{l.op}, r.ops...)...),
			Detail: fmt.Sprintf("watcher %s %s on %s, %d cases: %s%s", l.log.Name, l.log.rangeString(), h[l.op].Node,
				len(r.cases), strings.Join(cases, "; "), more)})
	}
}
