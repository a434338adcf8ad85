package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/groupcomm"
	"github.com/galenadb/galena/internal/atomicfile"
)

// clusterIDFile, in the data directory, names the cluster the directory's
// state belongs to. It is written before any other state, so a directory
// without it holds none.
const clusterIDFile = "cluster-id"

// joinTimeout bounds each call to the member named by Config.Join.
const joinTimeout = 10 * time.Second

// ErrRemoved is delivered by Fatal when the member was removed from the
// cluster: it no longer takes part, and its process should exit.
var ErrRemoved = errors.New("node: removed from the cluster")

// resolveCluster decides which cluster this member belongs to before
// anything on disk is created or changed, and refuses a data directory or a
// configuration that belongs to another cluster. It returns the cluster id
// and, for a member about to join, the cluster's view of it.
func (c Config) resolveCluster(ctx context.Context) (uint64, error) {
	stored, has, err := readClusterID(c.DataDir)
	if err != nil {
		return 0, err
	}
	switch {
	case has && len(c.InitialCluster) > 0:
		if want := groupcomm.ClusterIDFor(c.ClusterToken, c.bootstrap()); want != stored {
			return 0, fmt.Errorf("node: data directory %s belongs to cluster %s, but --initial-cluster (with cluster token %q) describes cluster %s; to restart this member, give the --initial-cluster it was created with, or none",
				c.DataDir, groupcomm.FormatClusterID(stored), c.ClusterToken, groupcomm.FormatClusterID(want))
		}
		return stored, nil
	case has && c.Join != "":
		ml, err := c.memberList(ctx, c.Join)
		if err != nil {
			return stored, nil // a restart need not reach the member it first joined through
		}
		if ml.GetClusterId() != groupcomm.FormatClusterID(stored) {
			return 0, fmt.Errorf("node: data directory %s belongs to cluster %s, but %s is a member of cluster %s; use an empty data directory to join it",
				c.DataDir, groupcomm.FormatClusterID(stored), c.Join, ml.GetClusterId())
		}
		return stored, nil
	case has:
		return stored, nil
	case len(c.InitialCluster) > 0:
		return groupcomm.ClusterIDFor(c.ClusterToken, c.bootstrap()), nil
	case c.Join != "":
		ml, err := c.memberList(ctx, c.Join)
		if err != nil {
			return 0, fmt.Errorf("node: join %s: %w", c.Join, err)
		}
		if err := c.checkJoin(ml); err != nil {
			return 0, err
		}
		return groupcomm.ParseClusterID(ml.GetClusterId())
	default:
		return 0, fmt.Errorf("node: data directory %s holds no member state: give --initial-cluster to bootstrap a new cluster, or --join to join a running one", c.DataDir)
	}
}

// checkJoin refuses to join a cluster in which this member's id or address
// is taken. A non-voter with both is this member's own interrupted join.
func (c Config) checkJoin(ml *galenapb.MemberListResponse) error {
	addr := c.advertise()
	for _, m := range ml.GetMembers() {
		switch {
		case m.GetId() == c.ID && m.GetAddress() == addr && !m.GetVoter():
			return nil
		case m.GetId() == c.ID:
			return fmt.Errorf("node: cannot join: id %s is already in use by the member at %s; remove it first (galena member remove %s) or choose another id",
				c.ID, m.GetAddress(), c.ID)
		case m.GetAddress() == addr:
			return fmt.Errorf("node: cannot join: address %s is already in use by member %s", addr, m.GetId())
		}
	}
	return nil
}

func readClusterID(dir string) (uint64, bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, clusterIDFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("node: %w", err)
	}
	id, err := groupcomm.ParseClusterID(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, false, fmt.Errorf("node: %s in %s: %w", clusterIDFile, dir, err)
	}
	return id, true, nil
}

// writeClusterID creates the data directory and records the cluster id.
func writeClusterID(dir string, id uint64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, clusterIDFile), []byte(groupcomm.FormatClusterID(id)+"\n"), 0o644, true); err != nil {
		return fmt.Errorf("node: record the cluster id: %w", err)
	}
	return nil
}

// memberList asks the member at addr for the cluster's configuration.
func (c Config) memberList(ctx context.Context, addr string) (*galenapb.MemberListResponse, error) {
	var ml *galenapb.MemberListResponse
	err := c.withCluster(ctx, addr, func(ctx context.Context, cc galenapb.ClusterClient) (err error) {
		ml, err = cc.MemberList(ctx, &galenapb.MemberListRequest{})
		return err
	})
	return ml, err
}

// withCluster runs fn against the Cluster service of the member at addr,
// as a member: with TLS, it presents this member's certificate.
func (c Config) withCluster(ctx context.Context, addr string, fn func(context.Context, galenapb.ClusterClient) error) error {
	conn, err := c.dialMember(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	return fn(ctx, galenapb.NewClusterClient(conn))
}
