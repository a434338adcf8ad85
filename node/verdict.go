package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/galenadb/galena/certification/apply"
	"github.com/galenadb/galena/internal/atomicfile"
)

// verdictFile, in the data directory, records why the member stopped for
// good: its state diverged from the cluster's, or it was removed from the
// cluster. A member that finds it when it starts takes no part in the
// cluster and serves nothing but its status (FAILED, with the reason),
// until an operator resets it: removes it from the cluster if it is still
// listed, deletes its data directory and starts it again with --join.
const verdictFile = "verdict.json"

// verdict is the content of verdictFile.
type verdict struct {
	Reason string    `json:"reason"` // verdictDiverged or verdictRemoved
	Error  string    `json:"error"`  // the error that stopped the member
	Time   time.Time `json:"time"`
}

const (
	verdictDiverged = "diverged"
	verdictRemoved  = "removed"
)

// verdictOf is the verdict err makes durable, if any: only a divergence or a
// removal is about the member itself; another failure (of its disk, say)
// may not happen again after a restart.
func verdictOf(err error) (verdict, bool) {
	v := verdict{Error: err.Error(), Time: time.Now().UTC()}
	switch {
	case errors.Is(err, apply.ErrDiverged):
		v.Reason = verdictDiverged
	case errors.Is(err, ErrRemoved):
		v.Reason = verdictRemoved
	default:
		return verdict{}, false
	}
	return v, true
}

// writeVerdict records v in dir, durably.
func writeVerdict(dir string, v verdict) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, verdictFile), append(b, '\n'), 0o644, true); err != nil {
		return fmt.Errorf("node: record why the member stopped: %w", err)
	}
	return nil
}

// readVerdict returns the verdict recorded in dir, if any.
func readVerdict(dir string) (verdict, bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, verdictFile))
	if errors.Is(err, os.ErrNotExist) {
		return verdict{}, false, nil
	}
	if err != nil {
		return verdict{}, false, fmt.Errorf("node: read %s: %w", verdictFile, err)
	}
	var v verdict
	if err := json.Unmarshal(b, &v); err != nil || (v.Reason != verdictDiverged && v.Reason != verdictRemoved) {
		return verdict{}, false, fmt.Errorf("node: %s in %s is malformed; it records why this member stopped for good", verdictFile, dir)
	}
	return v, true, nil
}

// err is the error a member with verdict v reports: it matches the error
// that stopped it (apply.ErrDiverged or ErrRemoved) and says how
// to reset the member.
func (v verdict) err(id, dir string) error {
	sentinel := ErrRemoved
	if v.Reason == verdictDiverged {
		sentinel = apply.ErrDiverged
	}
	return fmt.Errorf("%w (recorded %s: %s); it takes no part in the cluster until it is reset: "+
		"run `galena member remove %s` if it is still a member, delete %s, and start it again with --join",
		sentinel, v.Time.Format(time.RFC3339), v.Error, id, dir)
}
