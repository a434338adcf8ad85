package node

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/galenadb/galena/groupcomm"
	"github.com/galenadb/galena/storage"
)

// RestoreInfo describes the state a data directory was seeded with.
type RestoreInfo struct {
	Seqno   uint64 // the state is the one after this seqno
	Index   uint64 // the Raft log index it was reached at
	Entries uint64 // keys, deletes and write-set ids it holds
}

// Restore seeds cfg.DataDir for a member of a new cluster from the backup
// in the file named backup (written by client.Backup, galena backup).
// cfg names the member (ID, and an address in InitialCluster) and the new
// cluster (InitialCluster, ClusterToken); DataDir must be absent or empty.
// Restore first reads the backup whole and checks it (format, order,
// checksum) and writes nothing if it is bad. It then records the new
// cluster's configuration as a Raft snapshot at the backup's position
// (groupcomm.Seed) and the cluster id. The member's first start, with the
// same InitialCluster, loads the state; seqnos go on from the backup's.
// Restore every member of InitialCluster from the same backup.
func Restore(cfg Config, backup string) (RestoreInfo, error) {
	for _, p := range cfg.InitialCluster {
		if p.ID == cfg.ID && cfg.Addr == "" {
			cfg.Addr = p.Addr
		}
	}
	if len(cfg.InitialCluster) == 0 {
		return RestoreInfo{}, errors.New("node: restore: the new cluster's members (InitialCluster) are required")
	}
	if err := cfg.Validate(); err != nil {
		return RestoreInfo{}, fmt.Errorf("node: restore: %w", err)
	}
	existed, err := checkEmptyDir(cfg.DataDir)
	if err != nil {
		return RestoreInfo{}, err
	}
	info, err := verifyBackup(backup)
	if err != nil {
		return RestoreInfo{}, err
	}
	if err := seed(cfg, backup); err != nil {
		if rerr := unseed(cfg.DataDir, existed); rerr != nil {
			err = errors.Join(err, fmt.Errorf("node: restore: remove the half-seeded %s: %w", cfg.DataDir, rerr))
		}
		return RestoreInfo{}, err
	}
	return info, nil
}

// checkEmptyDir refuses a directory that holds anything, and says whether
// it exists.
func checkEmptyDir(dir string) (exists bool, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("node: restore: %w", err)
	case len(entries) > 0:
		return true, fmt.Errorf("node: restore: %s is not empty: restore seeds the data directory of a new member; "+
			"give an empty or absent one", dir)
	}
	return true, nil
}

// unseed removes what a failed seed wrote: dir itself if Restore created
// it, else only what is inside (dir may be a mount point).
func unseed(dir string, existed bool) error {
	if !existed {
		return os.RemoveAll(dir)
	}
	entries, err := os.ReadDir(dir)
	for _, e := range entries {
		err = errors.Join(err, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	return err
}

// verifyBackup reads the backup whole and checks it.
func verifyBackup(name string) (RestoreInfo, error) {
	f, err := os.Open(name)
	if err != nil {
		return RestoreInfo{}, fmt.Errorf("node: restore: %w", err)
	}
	defer f.Close()
	index, err := groupcomm.ReadBackupHeader(f)
	if err != nil {
		return RestoreInfo{}, fmt.Errorf("node: restore: %s: %w", name, err)
	}
	st, entries, err := storage.Verify(f)
	if err != nil {
		return RestoreInfo{}, fmt.Errorf("node: restore: %s: %w", name, err)
	}
	if _, err := f.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		return RestoreInfo{}, fmt.Errorf("node: restore: %s: %w: bytes after the end of the state", name, storage.ErrBadSnapshot)
	}
	return RestoreInfo{Seqno: st.Seqno, Index: index, Entries: entries}, nil
}

// seed writes the member's Raft state and the cluster id.
func seed(cfg Config, backup string) error {
	f, err := os.Open(backup)
	if err != nil {
		return fmt.Errorf("node: restore: %w", err)
	}
	defer f.Close()
	if _, err := groupcomm.Seed(cfg.groupConfig(), f); err != nil {
		return fmt.Errorf("node: restore: %w", err)
	}
	return writeClusterID(cfg.DataDir, groupcomm.ClusterIDFor(cfg.ClusterToken, cfg.bootstrap()))
}
