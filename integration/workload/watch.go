package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/checker"
)

// watchWorkload tests the change feed. Its clients write: each op is one
// Begin/Commit of 1 to 3 keys under the prefixes watchPrefixes, now and
// then a key on the edge of a watched range (watchEdgeKeys); each write a
// put of a value never written before or, one time in five, a delete. An
// ok commit records the seqno it was acknowledged at.
//
// Meanwhile every member has two watchers (client.Watch), one of a
// prefix and one of every watched key, each on a client of its own that
// lists the member first and the others after it: a watcher starts on its
// member and goes on on another when that one fails. They start after the
// seqno at which Setup read the watched keys, and record each event they
// return. Final brings the watchers of its member up to the member's
// applied seqno (a new watch after their progress, once the clients
// stopped) and records what each returned as one op; CheckWatch then
// matches the events with the commits, and replays them onto what Setup
// read to compare with the members' final contents.
type watchWorkload struct {
	next atomic.Int64 // the last value written

	// Set by Setup and Follow, read-only while the clients run.
	after    uint64                // the seqno the watchers start after
	initial  []checker.WatchChange // the keys under watchSpace at after, in key order
	ids      []string              // the members' ids, by index
	watchers []*watcher
}

const (
	// watchSpace starts every key the workload writes, those on the edges
	// of the watched ranges included: Setup reads them by it.
	watchSpace = "watch"
	// watchPrefix starts every watched key: the watchers of every key
	// follow it.
	watchPrefix = "watch/"
	// watchKeys is the number of keys under each of watchPrefixes.
	watchKeys = 6
	// watchMaxWrites is the most keys one commit writes.
	watchMaxWrites = 3
	// watchAccept bounds the wait for a member to accept a watcher's
	// watch.
	watchAccept = 30 * time.Second
)

var (
	// watchPrefixes are the prefixes of the watchers of one prefix, that of
	// member i at i mod their number.
	watchPrefixes = []string{"watch/a/", "watch/b/", "watch/c/"}
	// watchEdgeKeys lie on the edges of the watched ranges: just below and
	// at the end of watchPrefix's range, and between two of watchPrefixes.
	watchEdgeKeys = []string{"watch.", "watch/b", "watch0"}
)

// Name implements workload.
func (w *watchWorkload) Name() string { return checker.WorkloadWatch }

// Setup implements workload: it puts every other key of each prefix and
// the edge keys, then reads every key the workload writes in a
// linearizable snapshot, which the watchers start after.
func (w *watchWorkload) Setup(ctx context.Context, cl *client.Client) error {
	err := cl.Update(ctx, func(tx *client.Txn) error {
		for _, k := range watchSeedKeys() {
			if err := tx.Put([]byte(k), []byte("init-"+k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("watch: seed: %w", err)
	}
	err = cl.View(ctx, func(tx *client.Txn) error {
		kvs, err := tx.Scan(ctx, []byte(watchSpace), client.PrefixEnd([]byte(watchSpace)), 0)
		if err != nil {
			return err
		}
		w.after, w.initial = tx.Snapshot(), nil
		for _, kv := range kvs {
			w.initial = append(w.initial, checker.WatchChange{Key: string(kv.Key), Value: string(kv.Value)})
		}
		return nil
	}, client.Linearizable())
	if err != nil {
		return fmt.Errorf("watch: read the seed: %w", err)
	}
	return nil
}

// watchSeedKeys are the keys Setup puts.
func watchSeedKeys() []string {
	keys := slices.Clone(watchEdgeKeys)
	for _, p := range watchPrefixes {
		for k := 0; k < watchKeys; k += 2 {
			keys = append(keys, watchKey(p, k))
		}
	}
	return keys
}

func watchKey(prefix string, k int) string { return fmt.Sprintf("%s%d", prefix, k) }

// Follow implements follower: it starts the watchers of every member of c.
func (w *watchWorkload) Follow(ctx context.Context, c Cluster) error {
	w.ids = make([]string, c.Size())
	for i := range c.Size() {
		w.ids[i] = c.ID(i)
		for _, r := range memberRanges(i) {
			wt, err := startWatcher(ctx, watchSpec{name: c.ID(i) + "/" + r.name, node: c.ID(i), endpoints: memberFirst(c, i),
				start: r.start, end: r.end, after: w.after, initial: w.initial})
			if err != nil {
				return err
			}
			w.watchers = append(w.watchers, wt)
		}
	}
	return nil
}

// watchRange is the range of one of a member's watchers, and its name
// among them.
type watchRange struct{ name, start, end string }

// memberRanges are the ranges of member i's watchers: one of
// watchPrefixes, and every watched key.
func memberRanges(i int) []watchRange {
	p := watchPrefixes[i%len(watchPrefixes)]
	return []watchRange{
		{name: strings.Trim(strings.TrimPrefix(p, watchPrefix), "/"), start: p, end: string(client.PrefixEnd([]byte(p)))},
		{name: "all", start: watchPrefix, end: string(client.PrefixEnd([]byte(watchPrefix)))},
	}
}

// memberFirst lists the endpoints of c's members from member i's on, round
// the list.
func memberFirst(c Cluster, i int) []string {
	eps := make([]string, c.Size())
	for j := range eps {
		eps[j] = c.Endpoint((i + j) % c.Size())
	}
	return eps
}

// Stop implements follower.
func (w *watchWorkload) Stop() {
	for _, wt := range w.watchers {
		wt.close()
	}
}

// Step implements workload: one commit of 1 to watchMaxWrites writes.
func (w *watchWorkload) Step(ctx context.Context, cl *client.Client, rng *rand.Rand) checker.Op {
	op := &checker.WatchOp{F: checker.WatchCommit, Writes: w.pickWrites(rng)}
	tx, err := cl.Begin(ctx)
	if err != nil {
		return outcome(op, notApplied(err), false)
	}
	defer tx.Rollback()
	for _, wr := range op.Writes {
		if wr.Delete {
			err = tx.Delete([]byte(wr.Key))
		} else {
			err = tx.Put([]byte(wr.Key), []byte(wr.Value))
		}
		if err != nil {
			return outcome(op, notApplied(err), false)
		}
	}
	info, err := tx.Commit(ctx)
	if err == nil {
		op.Seqno = info.Seqno
	}
	return outcome(op, err, false)
}

// pickWrites chooses the writes of one commit: distinct keys, an edge key
// one time in eight, a delete one time in five, else a put of a new value.
func (w *watchWorkload) pickWrites(rng *rand.Rand) []checker.WatchChange {
	n := 1 + rng.IntN(watchMaxWrites)
	var writes []checker.WatchChange
	for len(writes) < n {
		key := watchEdgeKeys[rng.IntN(len(watchEdgeKeys))]
		if rng.IntN(8) > 0 {
			key = watchKey(watchPrefixes[rng.IntN(len(watchPrefixes))], rng.IntN(watchKeys))
		}
		if slices.ContainsFunc(writes, func(c checker.WatchChange) bool { return c.Key == key }) {
			continue
		}
		wr := checker.WatchChange{Key: key, Delete: true}
		if rng.IntN(5) > 0 {
			wr = checker.WatchChange{Key: key, Value: fmt.Sprintf("v%d", w.next.Add(1))}
		}
		writes = append(writes, wr)
	}
	return writes
}

// Final implements workload: it brings the watchers of s's member up to
// the seqno the member applied (read in a linearizable snapshot), stops
// them, and records what each returned as one op. A watcher that failed,
// or could not catch up, is an error.
func (w *watchWorkload) Final(ctx context.Context, s *session) ([]checker.Op, error) {
	until, err := appliedSeqno(ctx, s.Client)
	if err != nil {
		return nil, fmt.Errorf("watch: final seqno on %s: %w", s.Node, err)
	}
	var ops []checker.Op
	var errs []error
	for _, wt := range w.watchers {
		if wt.node != s.Node {
			continue
		}
		op := s.Do(func() checker.Op { return wt.finish(ctx, until) })
		if op.Type != checker.TypeOK {
			errs = append(errs, fmt.Errorf("watch: watcher %s: %s", wt.name, op.Error))
		}
		ops = append(ops, op)
	}
	return ops, errors.Join(errs...)
}

// appliedSeqno returns the snapshot of a linearizable read on cl: the
// member serving it has applied every commit up to it, and every commit
// acknowledged before the read lies at or below it.
func appliedSeqno(ctx context.Context, cl *client.Client) (uint64, error) {
	var seqno uint64
	err := cl.View(ctx, func(tx *client.Txn) error {
		if _, err := tx.Scan(ctx, []byte(watchPrefix), client.PrefixEnd([]byte(watchPrefix)), 1); err != nil {
			return err
		}
		seqno = tx.Snapshot()
		return nil
	}, client.Linearizable())
	return seqno, err
}

// Check implements workload: CheckWatch over the history and the
// watchers' ops, against every member's final contents. Every watcher
// must have its op among the final reads.
func (w *watchWorkload) Check(h []checker.Op, final finalState) (checker.Result, error) {
	if missing := w.missingLogs(final.Reads); len(missing) > 0 {
		return checker.Result{}, fmt.Errorf("watch: no final op of watchers %s", strings.Join(missing, ", "))
	}
	cfg := checker.WatchConfig{Final: map[string]map[string]string{}}
	for i, kvs := range final.Contents {
		if kvs == nil || i >= len(w.ids) {
			continue
		}
		m := make(map[string]string, len(kvs))
		for _, kv := range kvs {
			m[string(kv.Key)] = string(kv.Value)
		}
		cfg.Final[w.ids[i]] = m
	}
	return checker.CheckWatch(append(slices.Clip(h), final.Reads...), cfg)
}

// missingLogs names the watchers without an op in reads.
func (w *watchWorkload) missingLogs(reads []checker.Op) []string {
	var missing []string
	for _, wt := range w.watchers {
		if !slices.ContainsFunc(reads, func(o checker.Op) bool {
			return o.Watch != nil && o.Watch.Log != nil && o.Watch.Log.Name == wt.name
		}) {
			missing = append(missing, wt.name)
		}
	}
	return missing
}
