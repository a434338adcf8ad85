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
}

func (s *donorStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.SnapshotStore.Open(id)
	if err != nil {
		return nil, nil, err
	}
	s.open.Add(1)
	return meta, &donorReader{ReadCloser: rc, s: s}, nil
}

type donorReader struct {
	io.ReadCloser
	s    *donorStore
	done atomic.Bool
}

func (r *donorReader) Close() error {
	if r.done.CompareAndSwap(false, true) {
		r.s.open.Add(-1)
	}
	return r.ReadCloser.Close()
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
	if err != nil || !s.dataMember {
		return sink, err
	}
	return &dataSink{SnapshotSink: sink, s: s, index: index}, nil
}

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
