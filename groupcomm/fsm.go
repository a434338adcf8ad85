package groupcomm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// snapshotMagic starts every snapshot a data member writes, followed by the
// applied index the snapshot reflects and then the Deliverer's stream. An
// arbitrator's snapshots start with arbitratorMagic and the index, and hold
// nothing else: a data member must never restore one.
const (
	snapshotMagic   = "GLNSNAP1"
	arbitratorMagic = "GLNARBT1"
)

// snapshotHeader is what starts a snapshot: magic, then index (8 bytes,
// big-endian).
func snapshotHeader(magic string, index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(magic), index)
}

// readSnapshotHeader reads a snapshot's header: its magic, snapshotMagic or
// arbitratorMagic, and its index.
func readSnapshotHeader(r io.Reader) (magic string, index uint64, err error) {
	var hdr [len(snapshotMagic) + 8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "", 0, fmt.Errorf("groupcomm: read snapshot header: %w", err)
	}
	magic = string(hdr[:len(snapshotMagic)])
	if magic != snapshotMagic && magic != arbitratorMagic {
		return "", 0, fmt.Errorf("groupcomm: not a galena snapshot")
	}
	return magic, binary.BigEndian.Uint64(hdr[len(snapshotMagic):]), nil
}

// errArbitratorSnapshot refuses an arbitrator's snapshot on a data member.
// The state is left as it was; the leader retries, and an arbitrator does
// not stay leader.
var errArbitratorSnapshot = errors.New("groupcomm: refusing an arbitrator's snapshot: it holds no data")

// errSnapshotIndex stops a member whose restored state is not at the index
// the snapshot's header names (the header is outside the Deliverer's
// checksummed stream).
var errSnapshotIndex = errors.New("groupcomm: the restored state is not at the snapshot's index")

// fsm adapts a Deliverer to raft's BatchingFSM: it splits batched entries
// into their commands, gives each its seqno, and tracks the applied
// position so that callers can wait for their entry to be delivered
// locally.
type fsm struct {
	d          Deliverer
	lg         *zap.Logger
	fatal      func(error)
	arbitrator bool // d is an arbitratorState

	restoring atomic.Bool // a snapshot is being restored (state transfer)

	// applied is the position delivered: its index and seqno are read
	// together. Only the apply goroutine stores it.
	applied atomic.Pointer[Position]
	mu      sync.Mutex
	advance chan struct{} // closed and replaced each time applied grows
	failed  atomic.Pointer[error]

	entries []Entry // reused across batches

	// committed, if set, is told of each command entry before it is
	// applied: it has committed (the leader answers forwards with it).
	committed func(*raft.Log)
}

var _ raft.BatchingFSM = (*fsm)(nil)

func newFSM(d Deliverer, lg *zap.Logger, fatal func(error)) *fsm {
	_, arb := d.(*arbitratorState)
	f := &fsm{d: d, lg: lg, fatal: fatal, arbitrator: arb, advance: make(chan struct{})}
	f.setApplied(d.Applied())
	return f
}

func (f *fsm) Apply(l *raft.Log) interface{} { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch delivers the commands in logs as one batch. Each entry's
// response is its term (a *uint64), which the leader sends with its answer
// to a forwarded entry (see notifier).
func (f *fsm) ApplyBatch(logs []*raft.Log) []interface{} {
	resp := make([]interface{}, len(logs))
	if f.failed.Load() != nil || len(logs) == 0 {
		return resp
	}
	if f.committed != nil {
		for _, l := range logs {
			if l.Type == raft.LogCommand {
				f.committed(l)
			}
		}
	}
	last, err := f.sequence(logs)
	if err != nil {
		f.fail(err)
		return resp
	}
	if last != f.position() {
		if err := f.d.Deliver(f.entries, last); err != nil {
			f.fail(fmt.Errorf("deliver through index %d: %w", last.Index, err))
			return resp
		}
		f.setApplied(last)
	}
	terms := make([]uint64, len(logs)) // one allocation per batch, not per entry
	for i, l := range logs {
		terms[i] = l.Term
		resp[i] = &terms[i]
	}
	return resp
}

// sequence fills f.entries with the commands of logs above the applied
// position, each with its seqno (see Position), and returns the position
// after the last log. Entries at or below it were delivered before a
// restart: Raft replays
// its log from its last snapshot, which may be older than the Deliverer's
// durable state.
func (f *fsm) sequence(logs []*raft.Log) (Position, error) {
	f.entries = f.entries[:0]
	at := f.position()
	for _, l := range logs {
		if l.Index <= at.Index {
			continue
		}
		seqno := at.Seqno + (l.Index - at.Index)
		if l.Type == raft.LogCommand {
			n := uint64(0)
			err := commands(l, func(cmd []byte) {
				f.entries = append(f.entries, Entry{Index: l.Index, Seqno: seqno + n, Data: cmd})
				n++
			})
			if err != nil {
				return at, fmt.Errorf("entry at index %d: %w", l.Index, err)
			}
			seqno += max(n, 1) - 1
		}
		at = Position{Index: l.Index, Seqno: seqno}
	}
	return at, nil
}

// fail stops delivery for good: a member whose state may differ from its
// peers' must not go on.
func (f *fsm) fail(err error) {
	f.failed.Store(&err)
	f.lg.Error("apply loop stopped: this member's state can no longer be trusted", zap.Error(err))
	f.mu.Lock()
	close(f.advance)
	f.advance = make(chan struct{})
	f.mu.Unlock()
	if f.fatal != nil {
		f.fatal(err)
	}
}

// setApplied moves the delivered position to p, on the apply goroutine.
func (f *fsm) setApplied(p Position) {
	f.applied.Store(&p)
	f.mu.Lock()
	close(f.advance)
	f.advance = make(chan struct{})
	f.mu.Unlock()
}

// waitIndex blocks until log index idx has been delivered locally, and
// returns the seqno delivered then.
func (f *fsm) waitIndex(ctx context.Context, idx uint64, closing <-chan struct{}) (uint64, error) {
	var at Position
	err := f.wait(ctx, closing, func() bool {
		at = f.position()
		return at.Index >= idx
	})
	return at.Seqno, err
}

// waitSeqno blocks until seqno has been delivered locally.
func (f *fsm) waitSeqno(ctx context.Context, seqno uint64, closing <-chan struct{}) error {
	return f.wait(ctx, closing, func() bool { return f.position().Seqno >= seqno })
}

// position is the position delivered here.
func (f *fsm) position() Position { return *f.applied.Load() }

// wait blocks until done reports true; it checks it each time the applied
// position moves.
func (f *fsm) wait(ctx context.Context, closing <-chan struct{}, done func() bool) error {
	for {
		f.mu.Lock()
		ch := f.advance
		f.mu.Unlock()
		if err := f.failed.Load(); err != nil {
			return fmt.Errorf("%w: %v", ErrStopped, *err)
		}
		if done() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-closing:
			return ErrClosed
		}
	}
}

// Snapshot pins the Deliverer's state; Persist streams it later.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.failed.Load(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStopped, *err) // the state is not what raft thinks it is
	}
	sn, err := f.d.Snapshot()
	if err != nil {
		return nil, err
	}
	magic := snapshotMagic
	if f.arbitrator {
		magic = arbitratorMagic
	}
	return &fsmSnapshot{sn: sn, magic: magic}, nil
}

// Restore replaces the state with a snapshot's. On start, raft restores the
// latest local snapshot; when the Deliverer's durable state is already at or
// past it, there is nothing to do and the stream is not read further.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	magic, idx, err := readSnapshotHeader(rc)
	if err != nil {
		return err
	}
	if have := f.d.Applied().Index; idx <= have {
		f.lg.Info("snapshot already reflected in local state", zap.Uint64("snapshot", idx), zap.Uint64("applied", have))
		return nil
	}
	if magic == arbitratorMagic && !f.arbitrator {
		f.lg.Warn("refused a snapshot taken by an arbitrator; waiting for one from a data member", zap.Uint64("snapshot", idx))
		return errArbitratorSnapshot
	}
	f.restoring.Store(true)
	defer f.restoring.Store(false)
	start := time.Now()
	f.lg.Info("state transfer: restoring state from snapshot", zap.Uint64("snapshot", idx), zap.Uint64("applied", f.d.Applied().Index))
	if err := f.d.Restore(rc, idx); err != nil {
		f.fail(fmt.Errorf("restore snapshot at %d: %w", idx, err))
		return err
	}
	got := f.d.Applied()
	if got.Index != idx {
		err := fmt.Errorf("%w: header %d, state %d", errSnapshotIndex, idx, got.Index)
		f.fail(err)
		return err
	}
	f.setApplied(got)
	f.lg.Info("state transfer: restored state from snapshot", zap.Uint64("snapshot", idx), zap.Duration("took", time.Since(start)))
	return nil
}

type fsmSnapshot struct {
	sn    Snapshot
	magic string
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	markLocal(sink)
	if err := s.writeTo(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

// writeTo writes the snapshot: its header, then the Deliverer's stream.
func (s *fsmSnapshot) writeTo(w io.Writer) error {
	if _, err := w.Write(snapshotHeader(s.magic, s.sn.Index())); err != nil {
		return err
	}
	_, err := s.sn.WriteTo(w)
	return err
}

func (s *fsmSnapshot) Release() { s.sn.Release() }
