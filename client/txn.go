package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/api/writesetpb"
)

// Txn is a transaction: its reads see one snapshot, chosen by its first read
// on the endpoint the transaction is then pinned to, and its writes are
// buffered here until Commit sends them as one write-set. Its reads see its
// own buffered writes.
//
// A Txn is not safe for concurrent use. Once Commit or Rollback is called,
// every method returns ErrTxnDone (Rollback is always safe).
type Txn struct {
	c        *Client
	readOnly bool
	opts     txnOptions
	done     bool
	ep       int    // endpoint index the reads are pinned to; -1 before the first read
	snapshot uint64 // 0 before the first read
	writes   map[string]write
	// reads and scans are a serializable transaction's read set: the keys
	// it read from its snapshot and the ranges it scanned.
	reads map[string]struct{}
	scans []*writesetpb.KeyRange
}

// write is one buffered put or delete.
type write struct {
	value []byte
	del   bool
}

// KV is one key and its value, as returned by Scan.
type KV struct {
	Key   []byte
	Value []byte
}

// CommitInfo describes a successful commit.
type CommitInfo struct {
	// Seqno is the seqno the write-set was committed at; for a transaction
	// with no writes, the snapshot it read at (0 if it read nothing).
	Seqno uint64
}

func (c *Client) newTxn(readOnly bool, opts []TxnOption) *Txn {
	tx := &Txn{c: c, readOnly: readOnly, ep: -1}
	tx.opts.serializable = c.cfg.Serializable
	for _, o := range opts {
		o(&tx.opts)
	}
	return tx
}

// TxnOption sets how one transaction reads and commits.
type TxnOption func(*txnOptions)

type txnOptions struct {
	linearizable bool
	allowStale   bool
	serializable bool
}

// Serializable makes the transaction serializable: its commit also fails
// with ErrConflict when a key it read, or a key in a range it scanned, was
// written by a transaction committed after its snapshot, so no interleaving
// of serializable transactions can break an invariant that each keeps on
// its own (no write skew, no phantom). Its write-set carries its read set,
// which members certify with its writes (at most Limits.MaxReadSetSize, 1
// MiB by default; more fails with ErrTooLarge). It changes nothing for a
// transaction without writes: its snapshot is already a point in the
// commit order. Config.Serializable makes it the client's default.
func Serializable() TxnOption { return func(o *txnOptions) { o.serializable = true } }

// SnapshotIsolation makes the transaction run under snapshot isolation,
// whatever Config.Serializable says: only its writes are certified.
func SnapshotIsolation() TxnOption { return func(o *txnOptions) { o.serializable = false } }

// Linearizable makes the transaction's snapshot linearizable: before its
// first read, the serving member learns the leader's commit point and waits
// until it has applied it (Galera's wsrep_sync_wait), so the transaction sees
// every commit acknowledged before it began, whichever member took it. It
// costs one round trip to the leader and a majority heartbeat. Without it, a
// transaction sees at least what its own session has seen.
func Linearizable() TxnOption { return func(o *txnOptions) { o.linearizable = true } }

// AllowStale lets a member cut off from the majority (NON_PRIMARY) serve the
// transaction's reads from its local state, which may miss commits the rest
// of the cluster made since (Galera's wsrep_dirty_reads). Without it such a
// member refuses reads with ErrNotPrimary and the client tries the next
// endpoint. Commits still need the majority.
func AllowStale() TxnOption { return func(o *txnOptions) { o.allowStale = true } }

// Get returns the value of key at the transaction's snapshot, or the value
// the transaction itself wrote. It returns ErrNotFound when the key is absent
// or deleted, ErrInvalidKey for an empty key (without a round trip),
// ErrUnavailable when no endpoint answers, and the server's errors (such as
// ErrSnapshotTooOld) mapped to this package's sentinels.
func (tx *Txn) Get(ctx context.Context, key []byte) ([]byte, error) {
	if err := tx.checkRead(ctx, key); err != nil {
		return nil, err
	}
	if w, ok := tx.writes[string(key)]; ok {
		if w.del {
			return nil, notFound(key)
		}
		return bytes.Clone(w.value), nil
	}
	req := &galenapb.GetRequest{Key: key}
	tx.stamp(&req.Snapshot, &req.MinSeqno, &req.Linearizable, &req.AllowStale)
	var resp *galenapb.GetResponse
	err := tx.read(ctx, func(ctx context.Context, kv galenapb.KVClient) (err error) {
		resp, err = kv.Get(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	tx.pin(resp.GetSnapshot())
	tx.noteRead(key)
	if !resp.GetFound() {
		return nil, notFound(key)
	}
	if resp.Value == nil {
		return []byte{}, nil
	}
	return resp.Value, nil
}

// notFound is ErrNotFound for key.
func notFound(key []byte) error { return fmt.Errorf("%w: %q", ErrNotFound, key) }

// Put buffers a write of key=value; value may be empty. Key and value are
// copied. It returns ErrReadOnly inside View, ErrInvalidKey for an empty
// key and ErrTooLarge for a value over Config.MaxValueSize; it makes no
// round trip.
func (tx *Txn) Put(key, value []byte) error {
	if err := tx.checkWrite(key); err != nil {
		return err
	}
	if max := tx.c.cfg.MaxValueSize; len(value) > max {
		return fmt.Errorf("%w: value of %d bytes for key %q exceeds the %d-byte limit of a value (Config.MaxValueSize)", ErrTooLarge, len(value), key, max)
	}
	tx.buffer(key, write{value: bytes.Clone(nonNil(value))})
	return nil
}

// Delete buffers a delete of key. It returns ErrReadOnly inside View and
// ErrInvalidKey for an empty key; it makes no round trip.
func (tx *Txn) Delete(key []byte) error {
	if err := tx.checkWrite(key); err != nil {
		return err
	}
	tx.buffer(key, write{del: true})
	return nil
}

func (tx *Txn) buffer(key []byte, w write) {
	if tx.writes == nil {
		tx.writes = make(map[string]write)
	}
	tx.writes[string(key)] = w
}

// Commit sends the buffered writes as one write-set and ends the
// transaction. It has three outcomes:
//
//   - nil: committed at info.Seqno;
//   - an error matching ErrConflict (a *ConflictError): certification
//     rejected it, it was definitely not applied;
//   - an error matching ErrIndeterminate: no answer came (deadline, Close,
//     or the connection was lost after sending and no other endpoint
//     answered), it may or may not have been applied.
//
// A transport failure resends the same write-set (same id, so it is applied
// at most once) to the next endpoint, and while every endpoint refuses for
// want of a leader it is resent until ctx ends (see Elections in the package
// documentation). Other errors (ErrTooLarge,
// ErrInvalidKey, ErrSnapshotTooOld, ErrOverloaded, ...) mean the write-set
// was refused; after ErrOverloaded, back off before committing again. A
// transaction without writes commits at once, with no round trip. A
// transaction that wrote without reading is dated by the session's highest
// seen seqno (its origin, which keeps a late resend from being applied
// twice); a session that has seen none first asks a member for one.
func (tx *Txn) Commit(ctx context.Context) (CommitInfo, error) {
	if tx.done {
		return CommitInfo{}, ErrTxnDone
	}
	tx.done = true
	if err := tx.c.check(ctx); err != nil {
		return CommitInfo{}, err
	}
	if len(tx.writes) == 0 {
		return CommitInfo{Seqno: tx.snapshot}, nil
	}
	ws, err := tx.writeSet()
	if n, max := proto.Size(ws), tx.c.cfg.MaxWriteSetSize; err == nil && n > max {
		err = fmt.Errorf("%w: write-set of %d bytes (%d writes) exceeds the %d-byte limit of a write-set (Config.MaxWriteSetSize)", ErrTooLarge, n, len(ws.Writes), max)
	}
	if err == nil && ws.Snapshot == 0 {
		ws.Origin, err = tx.c.origin(ctx)
	}
	if err != nil {
		return CommitInfo{}, err
	}
	tx.writes, tx.reads, tx.scans = nil, nil, nil
	info, err := tx.c.commit(ctx, tx.ep, ws)
	if errors.Is(err, ErrSnapshotTooOld) && ws.Snapshot == 0 {
		// Its origin, the session's highest seen seqno, fell out of the
		// window while the session was idle: the next write-set takes a
		// fresh one.
		if lerr := tx.c.learnSeqno(ctx); lerr != nil {
			tx.c.lg.Debug("could not learn a fresh seqno", zap.Error(lerr))
		}
	}
	return info, err
}

// writeSet builds the write-set to commit, writes in key order.
func (tx *Txn) writeSet() (*writesetpb.WriteSet, error) {
	id, err := newID()
	if err != nil {
		return nil, err
	}
	ws := &writesetpb.WriteSet{Id: id, Snapshot: tx.snapshot, Scans: tx.scans}
	for _, k := range slices.Sorted(maps.Keys(tx.writes)) {
		w := tx.writes[k]
		ws.Writes = append(ws.Writes, &writesetpb.Write{Key: []byte(k), Value: w.value, Delete: w.del})
	}
	for _, k := range slices.Sorted(maps.Keys(tx.reads)) {
		if _, written := tx.writes[k]; !written { // its write is checked alike
			ws.Reads = append(ws.Reads, []byte(k))
		}
	}
	return ws, nil
}

// noteRead adds key, read from the snapshot, to a serializable
// transaction's read set.
func (tx *Txn) noteRead(key []byte) {
	if !tx.opts.serializable || tx.readOnly {
		return
	}
	if tx.reads == nil {
		tx.reads = make(map[string]struct{})
	}
	tx.reads[string(key)] = struct{}{}
}

// noteScan adds the range a scan of [start, end) covered to a serializable
// transaction's read set: up to its end or, when the scan stopped at its
// limit, up to its last key.
func (tx *Txn) noteScan(start, end []byte, got []KV, limit int) {
	if !tx.opts.serializable || tx.readOnly {
		return
	}
	if limit > 0 && len(got) == limit {
		end = append(bytes.Clone(got[len(got)-1].Key), 0)
	}
	tx.addScan(start, end)
}

// addScan adds [start, end) (no end: to the last key) to the ranges the
// write-set carries. A range that continues the last one (the next page of
// All) extends it, and one the last covers adds nothing, so paging through
// a range costs the read set one range, not one per page.
func (tx *Txn) addScan(start, end []byte) {
	if n := len(tx.scans); n > 0 {
		last := tx.scans[n-1]
		switch {
		case len(last.End) > 0 && bytes.Equal(last.End, start):
			last.End = bytes.Clone(end)
			return
		case bytes.Compare(last.Start, start) <= 0 && (len(last.End) == 0 || len(end) > 0 && bytes.Compare(end, last.End) <= 0):
			return
		}
	}
	tx.scans = append(tx.scans, &writesetpb.KeyRange{Start: bytes.Clone(start), End: bytes.Clone(end)})
}

// Rollback discards the transaction. It makes no round trip and is safe to
// call at any time, also after Commit and more than once.
func (tx *Txn) Rollback() {
	tx.done = true
	tx.writes, tx.reads, tx.scans = nil, nil, nil
}

func (tx *Txn) checkRead(ctx context.Context, key []byte) error {
	if err := tx.checkState(ctx); err != nil {
		return err
	}
	if len(key) == 0 {
		return ErrInvalidKey
	}
	return nil
}

func (tx *Txn) checkState(ctx context.Context) error {
	if tx.done {
		return ErrTxnDone
	}
	return tx.c.check(ctx)
}

func (tx *Txn) checkWrite(key []byte) error {
	switch {
	case tx.done:
		return ErrTxnDone
	case tx.c.closed.Load():
		return ErrClosed
	case tx.readOnly:
		return ErrReadOnly
	case len(key) == 0:
		return ErrInvalidKey
	}
	return nil
}

// stamp fills a read request's snapshot, or, for the first read, its
// min_seqno so the server picks a snapshot no older than the session saw,
// and whether that snapshot must be linearizable; and whether a stale read
// is acceptable.
func (tx *Txn) stamp(snapshot, minSeqno *uint64, linearizable, allowStale *bool) {
	*snapshot, *allowStale = tx.snapshot, tx.opts.allowStale
	if tx.snapshot == 0 {
		*minSeqno = tx.c.seen.Load()
		*linearizable = tx.opts.linearizable
	}
}

// Snapshot is the seqno the transaction's reads see: every write-set at or
// below it and none above. It is 0 before the first read.
func (tx *Txn) Snapshot() uint64 { return tx.snapshot }

// pin records the snapshot the server chose for the first read.
func (tx *Txn) pin(snapshot uint64) {
	if tx.snapshot == 0 {
		tx.snapshot = snapshot
		tx.c.observe(snapshot)
	}
}

// read runs fn on the transaction's endpoint, failing over to the next ones
// (safe: the request carries the same snapshot), and pins the transaction to
// the endpoint that answered.
func (tx *Txn) read(ctx context.Context, fn rpc) error {
	start := tx.ep
	if start < 0 {
		start = tx.c.start()
	}
	idx, err := tx.c.call(ctx, start, fn)
	if err != nil {
		return err
	}
	tx.ep = idx
	return nil
}
