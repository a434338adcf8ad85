package groupcomm

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// ErrBadBackup: a backup that is not a data member's (see Group.Backup).
var ErrBadBackup = errors.New("groupcomm: not a backup of a data member")

// ErrArbitrator: an arbitrator holds no data to back up.
var ErrArbitrator = errors.New("groupcomm: an arbitrator holds no data")

// Backup writes a consistent copy of the member's state at one position to
// w, in the format of its Raft snapshots: snapshotMagic, the log index,
// then the Deliverer's stream. It pins the state while it writes; delivery
// and commits go on meanwhile. It returns the position the copy reflects.
func (g *Group) Backup(w io.Writer) (Position, error) {
	if g.cfg.Arbitrator {
		return Position{}, ErrArbitrator
	}
	fs, err := g.fsm.Snapshot()
	if err != nil {
		return Position{}, fmt.Errorf("groupcomm: backup: %w", err)
	}
	s := fs.(*fsmSnapshot)
	defer s.Release()
	if err := s.writeTo(w); err != nil {
		return Position{}, fmt.Errorf("groupcomm: backup: %w", err)
	}
	return Position{Index: s.sn.Index(), Seqno: s.sn.Seqno()}, nil
}

// ReadBackupHeader reads the header Backup writes and returns the log
// index the backup reflects; r is then at the Deliverer's stream.
func ReadBackupHeader(r io.Reader) (index uint64, err error) {
	magic, index, err := readSnapshotHeader(r)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%w: %v", ErrBadBackup, err)
	case magic == arbitratorMagic:
		return 0, fmt.Errorf("%w: an arbitrator's snapshot holds no data", ErrBadBackup)
	}
	return index, nil
}

// Seed prepares cfg.Dir, which must hold no Raft state, for a member of a
// new cluster whose state is backup's (written by Backup): as if the
// cluster, made of cfg.Bootstrap's voters, had taken a Raft snapshot at the
// backup's log index. On its first start the member restores that snapshot
// (Deliverer.Restore), and the log goes on at the next index, so seqnos go
// on from the backup's too; a member that joins later receives the
// snapshot, never a log that starts below it. An arbitrator's snapshot
// holds the index alone. Every member of cfg.Bootstrap must be seeded from
// the same backup. It returns the backup's index.
func Seed(cfg Config, backup io.Reader) (uint64, error) {
	if len(cfg.Bootstrap) == 0 {
		return 0, errors.New("groupcomm: seed: the new cluster's voters (Bootstrap) are required")
	}
	index, err := ReadBackupHeader(backup)
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return 0, fmt.Errorf("groupcomm: seed: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hclog.NewNullLogger())
	if err != nil {
		return 0, fmt.Errorf("groupcomm: seed: snapshot store: %w", err)
	}
	if have, err := snaps.List(); err != nil || len(have) > 0 {
		return 0, fmt.Errorf("groupcomm: seed: %s already holds Raft snapshots (%d, %v)", cfg.Dir, len(have), err)
	}
	var conf raft.Configuration
	for _, p := range cfg.Bootstrap {
		conf.Servers = append(conf.Servers, raft.Server{
			Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr),
		})
	}
	_, trans := raft.NewInmemTransport("") // encodes the peers in the snapshot's metadata
	defer trans.Close()
	const term = 1 // the new cluster's first leader is elected in term 1
	sink, err := snaps.Create(raft.SnapshotVersionMax, index, term, conf, index, trans)
	if err != nil {
		return 0, fmt.Errorf("groupcomm: seed: %w", err)
	}
	magic := snapshotMagic
	if cfg.Arbitrator {
		magic = arbitratorMagic // it keeps no data, as its own snapshots
	}
	hdr := snapshotHeader(magic, index)
	_, err = sink.Write(hdr)
	if err == nil && !cfg.Arbitrator {
		_, err = io.Copy(sink, backup)
	}
	if err != nil {
		sink.Cancel()
		return 0, fmt.Errorf("groupcomm: seed: %w", err)
	}
	if err := sink.Close(); err != nil {
		return 0, fmt.Errorf("groupcomm: seed: %w", err)
	}
	return index, nil
}
