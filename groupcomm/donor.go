package groupcomm

import (
	"io"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// donorStore counts the snapshots open for reading. Once the member runs,
// raft opens one only to send it to a follower that is too far behind for
// the log, so a non-zero count means this member is a state-transfer donor.
// The transfer streams the snapshot file: it is never held in memory whole.
type donorStore struct {
	raft.SnapshotStore
	open atomic.Int32
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
