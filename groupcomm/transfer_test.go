package groupcomm

import (
	"io"
	"testing"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// A state transfer's progress: what a joiner receives (its size unknown),
// what a donor sends or a joiner restores (of the snapshot's size); the
// member's own snapshots count for nothing.
func TestTransferProgress(t *testing.T) {
	s := &donorStore{SnapshotStore: raft.NewInmemSnapshotStore(), lg: zap.NewNop()}
	create := func() raft.SnapshotSink {
		t.Helper()
		sink, err := s.Create(raft.SnapshotVersionMax, 10, 1, raft.Configuration{}, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		return sink
	}
	want := func(restoring bool, w Transfer) {
		t.Helper()
		if got := s.transfer(restoring); got != w {
			t.Fatalf("transfer = %+v; want %+v", got, w)
		}
	}

	own := create()
	markLocal(own)
	own.Write(make([]byte, 50))
	want(false, Transfer{})
	own.Cancel()

	sink := create() // a snapshot from the leader
	sink.Write(make([]byte, 60))
	sink.Write(make([]byte, 40))
	want(false, Transfer{Phase: "receiving", Bytes: 100})
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	want(false, Transfer{})

	metas, err := s.List()
	if err != nil || len(metas) == 0 {
		t.Fatalf("List: %v, %v", metas, err)
	}
	_, rc, err := s.Open(metas[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, rc, 30); err != nil {
		t.Fatal(err)
	}
	want(false, Transfer{Phase: "sending", Bytes: 30, Total: 100})
	want(true, Transfer{Phase: "restoring", Bytes: 30, Total: 100})
	rc.Close()
	want(false, Transfer{})
}
