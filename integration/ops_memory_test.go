package integration

import (
	"errors"
	"fmt"
	"maps"
	"strconv"
	"testing"
	"time"

	"github.com/galenadb/galena/integration/harness"
)

// memWorkload is what TestOpsMemoryBoundedUnderLargeWriteSets writes: write-sets
// of perTxn values of 1 MiB, missed of them while a follower is down and
// during more while it catches up, from writers concurrent writers.
type memWorkload struct {
	perTxn, missed, during, writers int
}

// memDefault is the default run; -ops.figures writes near the largest
// write-set (16 MiB) and misses 480 MB.
var (
	memDefault = memWorkload{perTxn: 4, missed: 24, during: 8, writers: 8}
	memFigures = memWorkload{perTxn: 15, missed: 32, during: 8, writers: 8}
)

const (
	// memAppendBytes is the most a member sends a follower in one Raft
	// request, or one entry if larger (groupcomm's DefaultMaxAppendBytes).
	memAppendBytes = 8 << 20
	// memAppendEntries is the most entries one Raft request carries.
	memAppendEntries = 256
	// memSegment is the size of a segment of the Raft log (raft-wal's).
	memSegment = 64 << 20
	// memInflight is the members' --max-inflight-bytes: the least allowed,
	// one largest write-set.
	memInflight = 16 << 20
	// memAmplification is how many times over a member may hold what it has
	// in flight: the request, the decoded write-set, the log entry and what
	// is read back from the log, the delivered batch, and the heap's growth
	// before the garbage collector runs (GOGC 50 in galena start).
	memAmplification = 5
)

// While a follower is down, writers commit large write-sets through the
// other members; then it restarts and catches up while they go on. Every
// member's peak anonymous memory (sampled; RSS would also count storage's
// memory-mapped files, which grow with the data) stays within a bound
// derived from the settings, and the follower's does not grow with what it
// missed: it is sent the log in requests of at most
// max(memAppendBytes, one entry), where Raft alone would send it up to
// memAppendEntries entries in one.
//
// The bound adds, to what a member had before: memAmplification times what
// may be in flight (every member's commits, at most --max-inflight-bytes
// each, and one Raft request); the log store's write buffers, which raft-wal
// keeps for each segment of the log, sized to the largest batch appended to
// it (a follower appends a request at a time, the leader everything in
// flight at once), up to twice that; and, on the members that stayed up,
// what the leader reads from its log to send the follower, which Raft
// bounds by count only: here, all the follower missed.
func TestOpsMemoryBoundedUnderLargeWriteSets(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts real galena processes")
	}
	w := memDefault
	if *opsFigures {
		w = memFigures
	}
	c := harness.NewCluster(t, harness.Options{Binary: galenaBin, Members: 3,
		ExtraArgs: []string{"--max-inflight-bytes", strconv.Itoa(memInflight)}})
	base := anonNow(t, c)
	f, peaks := w.run(t, c)
	for i := range c.Size() {
		bound := base[i] + w.bound(c.Size(), i != f)
		pid := c.Member(i).Process().PID()
		hwm, _ := harness.PeakRSS(pid)
		t.Logf("%s: peak anonymous %.0f MB (bound %.0f MB), peak RSS %.0f MB", c.ID(i), mb(peaks[pid]), mb(bound), mb(hwm))
		if peaks[pid] > bound {
			t.Errorf("%s held %.0f MB of anonymous memory, more than the %.0f MB the settings allow%s",
				c.ID(i), mb(peaks[pid]), mb(bound), memHint(i == f))
		}
	}
	wantCheckOK(t, c)
}

// data is the workload's two data sets: written with the follower down,
// and while it catches up.
func (w memWorkload) data() (missed, during dataSet) {
	return dataSet{prefix: "missed", n: w.missed * w.perTxn, size: 1 << 20, perTxn: w.perTxn},
		dataSet{prefix: "during", n: w.during * w.perTxn, size: 1 << 20, perTxn: w.perTxn}
}

// run stops a follower, writes the missed data set through the others,
// restarts the follower and writes the other while it catches up, until
// the members converge. It returns the follower and the peak anonymous
// memory of each member's process, by pid.
func (w memWorkload) run(t *testing.T, c *harness.Cluster) (int, map[int]int64) {
	t.Helper()
	ctx := testCtx(t, 5*time.Minute)
	f := (mustLeader(t, c) + 1) % c.Size()
	if err := c.Member(f).Stop(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	for i := range c.Size() {
		if i != f {
			pids = append(pids, c.Member(i).Process().PID())
		}
	}
	live, began := c.EndpointsExcept(f), time.Now()
	missed, during := w.data()
	sampled := harness.SampleAnon(10*time.Millisecond, pids...)
	if err := missed.load(ctx, newClient(t, c, live...), w.writers); err != nil {
		t.Fatalf("write %.0f MB with %s down: %v", missed.MB(), c.ID(f), err)
	}
	if err := c.Member(f).Start(); err != nil {
		t.Fatal(err)
	}
	catching := harness.SampleAnon(10*time.Millisecond, c.Member(f).Process().PID())
	if err := during.load(ctx, newClient(t, c, live...), w.writers); err != nil {
		t.Fatalf("write %.0f MB while %s catches up: %v", during.MB(), c.ID(f), err)
	}
	converge(t, c)
	peaks := sampled.Stop()
	maps.Copy(peaks, catching.Stop())
	t.Logf("%s missed %.0f MB and caught up with %.0f MB more written, %v in all; write-sets of %d MiB",
		c.ID(f), missed.MB(), during.MB(), time.Since(began).Round(time.Millisecond), w.perTxn)
	return f, peaks
}

// bound is how much more anonymous memory than before the workload a member
// of a cluster of n may hold: the follower that caught up, or one that
// stayed up (and may have led).
func (w memWorkload) bound(n int, stayedUp bool) int64 {
	missed, during := w.data()
	ws := int64(w.perTxn) << 20
	request := max(memAppendBytes, ws)
	inflight := int64(n) * memInflight
	segments := (missed.Bytes()+during.Bytes())/memSegment + 2
	b := memAmplification*(inflight+request) + segments*2*request
	if stayedUp {
		b += segments*2*inflight + 2*min(missed.Bytes(), memAppendEntries*ws)
	}
	return b
}

// anonNow is every member's anonymous memory now, in member order.
func anonNow(t *testing.T, c *harness.Cluster) []int64 {
	t.Helper()
	anon := make([]int64, c.Size())
	for i := range anon {
		var err error
		if anon[i], err = harness.AnonRSS(c.Member(i).Process().PID()); errors.Is(err, errors.ErrUnsupported) {
			t.Skip("integration: memory is measured on Linux only")
		} else if err != nil {
			t.Fatal(err)
		}
	}
	return anon
}

func memHint(caughtUp bool) string {
	if !caughtUp {
		return ""
	}
	return fmt.Sprintf(": was it sent more than %d MiB per Raft request?", memAppendBytes>>20)
}
