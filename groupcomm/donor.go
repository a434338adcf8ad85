package groupcomm

import (
	"io"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// donorStore counts the snapshots open for reading. Once the member runs,
// raft opens one only to send it to a follower that is too far behind for
// the log, so a non-zero count means this member is a state-transfer donor.
// The transfer streams the snapshot file: it is never held in memory whole.
//
// On a data member it also refuses to store an arbitrator's snapshot (see
// Create).
type donorStore struct {
	raft.SnapshotStore
	lg         *zap.Logger
	dataMember bool
	open       atomic.Int32
	refused    atomic.Uint64 // the index of the last arbitrator's snapshot refused

	// Progress of the snapshots open for reading (sent to a follower, or
	// restored here): bytes read and their sizes, over those open; and of
	// the snapshots being received from the leader: sinks open and bytes
	// written to them.
	read, readTotal atomic.Int64
	receiving       atomic.Int32
	received        atomic.Int64
}

func (s *donorStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.SnapshotStore.Open(id)
	if err != nil {
		return nil, nil, err
	}
	s.open.Add(1)
	s.readTotal.Add(meta.Size)
	return meta, &donorReader{ReadCloser: rc, s: s, size: meta.Size}, nil
}

type donorReader struct {
	io.ReadCloser
	s    *donorStore
	size int64
	n    atomic.Int64 // bytes read
	done atomic.Bool
}

func (r *donorReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	r.s.read.Add(int64(n))
	return n, err
}

func (r *donorReader) Close() error {
	if r.done.CompareAndSwap(false, true) {
		r.s.open.Add(-1)
		r.s.read.Add(-r.n.Load())
		r.s.readTotal.Add(-r.size)
	}
	return r.ReadCloser.Close()
}

// Transfer is the progress of a state transfer on a member: Phase is
// "sending" (a donor streaming a snapshot to a member too far behind),
// "receiving" (a joiner storing the snapshot the leader sends; its size
// is known only to the sender) or "restoring" (the joiner loading it),
// and "" when none runs. Bytes is what was sent, received or restored;
// Total the snapshot's size, 0 while receiving.
type Transfer struct {
	Phase        string
	Bytes, Total int64
}

// transfer is the progress of the member's state transfer; restoring
// says whether its FSM is loading a snapshot.
func (s *donorStore) transfer(restoring bool) Transfer {
	switch {
	case restoring:
		return Transfer{Phase: "restoring", Bytes: s.read.Load(), Total: s.readTotal.Load()}
	case s.receiving.Load() > 0:
		return Transfer{Phase: "receiving", Bytes: s.received.Load()}
	case s.open.Load() > 0:
		return Transfer{Phase: "sending", Bytes: s.read.Load(), Total: s.readTotal.Load()}
	}
	return Transfer{}
}

// Create returns the sink of a new snapshot. Raft saves a snapshot received
// from the leader in the store before it asks the FSM to restore it, so a
// data member must refuse an arbitrator's snapshot (a header without data)
// here: once stored, it would push the member's own snapshots out, and the
// member could not restart from it. The sink of a data member therefore
// fails the first write that completes an arbitrator's header; raft then
// cancels the sink, which removes the partial snapshot, and reads the rest
// of the stream itself.
func (s *donorStore) Create(version raft.SnapshotVersion, index, term uint64, conf raft.Configuration,
	confIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.SnapshotStore.Create(version, index, term, conf, confIndex, trans)
	if err != nil {
		return nil, err
	}
	sink = &receivingSink{SnapshotSink: sink, s: s}
	if !s.dataMember {
		return sink, nil
	}
	return &dataSink{SnapshotSink: sink, s: s, index: index}, nil
}

// receivingSink counts what is written to a snapshot received from the
// leader. The member's own snapshots are written to sinks of this store
// too: fsmSnapshot.Persist marks them local first, and they count for
// nothing.
type receivingSink struct {
	raft.SnapshotSink
	s              *donorStore
	local, counted bool // written by Persist; counted as receiving
}

func (k *receivingSink) markLocal() { k.local = true }

func (k *receivingSink) Write(p []byte) (int, error) {
	if !k.local && !k.counted {
		k.counted = true
		k.s.received.Store(0)
		k.s.receiving.Add(1)
	}
	n, err := k.SnapshotSink.Write(p)
	if k.counted {
		k.s.received.Add(int64(n))
	}
	return n, err
}

func (k *receivingSink) Close() error  { k.done(); return k.SnapshotSink.Close() }
func (k *receivingSink) Cancel() error { k.done(); return k.SnapshotSink.Cancel() }

func (k *receivingSink) done() {
	if k.counted {
		k.counted = false
		k.s.receiving.Add(-1)
	}
}

// localSink is a sink that can be told this member writes its own
// snapshot to it.
type localSink interface{ markLocal() }

// markLocal tells sink, if it is this store's, that it holds one of this
// member's own snapshots.
func markLocal(sink raft.SnapshotSink) {
	if l, ok := sink.(localSink); ok {
		l.markLocal()
	}
}

func (k *dataSink) markLocal() { markLocal(k.SnapshotSink) }

// dataSink is a data member's snapshot sink: it refuses an arbitrator's
// snapshot by its header.
type dataSink struct {
	raft.SnapshotSink
	s     *donorStore
	index uint64
	magic []byte // the header's magic, as far as written
}

func (k *dataSink) Write(p []byte) (int, error) {
	if need := len(arbitratorMagic) - len(k.magic); need > 0 {
		k.magic = append(k.magic, p[:min(need, len(p))]...)
		if string(k.magic) == arbitratorMagic {
			k.s.refused.Store(k.index)
			k.s.lg.Warn("refused a snapshot taken by an arbitrator: it holds no data; waiting for a data member to send state",
				zap.Uint64("snapshot", k.index))
			return 0, errArbitratorSnapshot
		}
	}
	return k.SnapshotSink.Write(p)
}

// waitingForData reports whether this member refused an arbitrator's
// snapshot that is still ahead of its applied index: it is behind the
// leader's log and only a data member can bring it up to date.
func (s *donorStore) waitingForData(applied uint64) bool { return s.refused.Load() > applied }
