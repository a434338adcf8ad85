package apply

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/galenadb/galena/certification"
	"go.uber.org/zap"
)

// ErrDiverged stops a member whose running digest at a checkpoint differs
// from the one a majority of the members that announced theirs agree on: its
// state is not the cluster's, and it must not serve it.
var ErrDiverged = errors.New("apply: this member's state diverged from the cluster's")

// keptCheckpoints is how many recent checkpoints a member remembers, for
// comparison with the others' announcements and for `galena check`.
const keptCheckpoints = 16

// checkpoints records the running digest at every multiple of the interval
// and the digests other members announce for them. A checkpoint is judged
// when the log passes the next one: by then every live member has had an
// interval's worth of seqnos to announce it.
type checkpoints struct {
	interval uint64
	self     string
	lg       *zap.Logger

	mu   sync.Mutex                 // guards kept, for Recent
	kept []certification.Checkpoint // oldest first

	next    uint64                         // the next multiple of interval to record
	reports map[uint64]map[string][32]byte // seqno → member → announced digest
}

// newCheckpoints returns checkpoints to be resumed before use.
func newCheckpoints(interval uint64, self string, lg *zap.Logger) *checkpoints {
	return &checkpoints{interval: interval, self: self, lg: lg}
}

// resume starts over from a state applied through applied (at start, or
// after a snapshot replaced the state): the next checkpoint is the first
// multiple of the interval after it, and what was recorded or announced
// before is forgotten.
func (c *checkpoints) resume(applied uint64) {
	if c.interval > 0 {
		c.next = (applied/c.interval + 1) * c.interval
	}
	c.reports = map[uint64]map[string][32]byte{}
	c.mu.Lock()
	c.kept = nil
	c.mu.Unlock()
}

// Recent returns the remembered checkpoints, oldest first.
func (c *checkpoints) Recent() []certification.Checkpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.kept)
}

// pass records the checkpoint at the highest multiple of the interval at or
// below seqno, the last seqno folded into digest, if not yet recorded. It
// returns the new checkpoint, if any, and the verdict on the previous one.
func (c *checkpoints) pass(seqno uint64, digest [32]byte) (certification.Checkpoint, bool, error) {
	if c.interval == 0 || seqno < c.next {
		return certification.Checkpoint{}, false, nil
	}
	cp := certification.Checkpoint{Seqno: seqno / c.interval * c.interval, Digest: digest}
	c.next = cp.Seqno + c.interval
	var err error
	if n := len(c.kept); n > 0 {
		err = c.judge(c.kept[n-1])
	}
	c.mu.Lock()
	c.kept = append(c.kept, cp)
	if len(c.kept) > keptCheckpoints {
		delete(c.reports, c.kept[0].Seqno)
		c.kept = slices.Delete(c.kept, 0, 1)
	}
	c.mu.Unlock()
	return cp, true, err
}

// report takes another member's announcement; one for a checkpoint this
// member does not remember is dropped.
func (c *checkpoints) report(member string, cp certification.Checkpoint) {
	if member == c.self || c.interval == 0 || cp.Seqno%c.interval != 0 {
		return
	}
	if len(c.kept) == 0 || cp.Seqno < c.kept[0].Seqno || cp.Seqno >= c.next {
		return // not remembered, or not yet reached: a member ahead of us
	}
	m := c.reports[cp.Seqno]
	if m == nil {
		m = map[string][32]byte{}
		c.reports[cp.Seqno] = m
	}
	m[member] = cp.Digest
}

// judge compares this member's digest at cp with the announced ones. This
// member diverged if at least two others agree on a different digest and
// outnumber the members (this one included) that agree with it. Any other
// disagreement is logged, to be settled by `galena check`.
func (c *checkpoints) judge(cp certification.Checkpoint) error {
	counts := map[[32]byte][]string{}
	var differ []string
	for m, d := range c.reports[cp.Seqno] {
		counts[d] = append(counts[d], m)
		if d != cp.Digest {
			differ = append(differ, m)
		}
	}
	mine := len(counts[cp.Digest]) + 1
	for d, ms := range counts {
		if d == cp.Digest || len(ms) < 2 || len(ms) <= mine {
			continue
		}
		slices.Sort(ms)
		return fmt.Errorf("%w: at seqno %d this member's digest is %s, but members %s announced %s",
			ErrDiverged, cp.Seqno, short(cp.Digest), strings.Join(ms, ", "), short(d))
	}
	if len(differ) > 0 {
		slices.Sort(differ)
		c.lg.Error("members announced a different digest at a checkpoint; run `galena check`",
			zap.Uint64("seqno", cp.Seqno), zap.String("ours", short(cp.Digest)), zap.Strings("members", differ))
	}
	return nil
}

func short(d [32]byte) string { return hex.EncodeToString(d[:6]) }
