package groupcomm

import (
	"encoding/binary"
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
	if err := g.fsm.failed.Load(); err != nil {
		return Position{}, fmt.Errorf("%w: %v", ErrStopped, *err)
	}
	sn, err := g.fsm.d.Snapshot()
	if err != nil {
		return Position{}, fmt.Errorf("groupcomm: backup: %w", err)
	}
	defer sn.Release()
	hdr := backupHeader(snapshotMagic, sn.Index())
	if _, err := w.Write(hdr[:]); err != nil {
		return Position{}, fmt.Errorf("groupcomm: backup: %w", err)
	}
	if _, err := sn.WriteTo(w); err != nil {
		return Position{}, fmt.Errorf("groupcomm: backup: %w", err)
	}
	return Position{Index: sn.Index(), Seqno: sn.Seqno()}, nil
}

func backupHeader(magic string, index uint64) [len(snapshotMagic) + 8]byte {
	var hdr [len(snapshotMagic) + 8]byte
	copy(hdr[:], magic)
	binary.BigEndian.PutUint64(hdr[len(snapshotMagic):], index)
	return hdr
}

// ReadBackupHeader reads the header Backup writes and returns the log
// index the backup reflects; r is then at the Deliverer's stream.
func ReadBackupHeader(r io.Reader) (index uint64, err error) {
	var hdr [len(snapshotMagic) + 8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, fmt.Errorf("%w: header: %v", ErrBadBackup, err)
	}
	switch string(hdr[:len(snapshotMagic)]) {
	case snapshotMagic:
		return binary.BigEndian.Uint64(hdr[len(snapshotMagic):]), nil
	case arbitratorMagic:
		return 0, fmt.Errorf("%w: an arbitrator's snapshot holds no data", ErrBadBackup)
	}
	return 0, ErrBadBackup
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
	hdr := backupHeader(magic, index)
	_, err = sink.Write(hdr[:])
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
