package groupcomm

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ClusterIDFor derives the id of the cluster bootstrapped from peers with
// token. Every member of the initial configuration derives the same id
// without talking to the others; members that join later are told it.
func ClusterIDFor(token string, peers []Peer) uint64 {
	parts := make([]string, len(peers))
	for i, p := range peers {
		parts[i] = p.ID + "=" + p.Addr
	}
	slices.Sort(parts)
	sum := sha256.Sum256([]byte("galena-cluster\x00" + token + "\x00" + strings.Join(parts, ",")))
	return binary.BigEndian.Uint64(sum[:8])
}

// FormatClusterID renders a cluster id as 16 hex digits.
func FormatClusterID(id uint64) string { return fmt.Sprintf("%016x", id) }

// ParseClusterID reads what FormatClusterID wrote.
func ParseClusterID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 16, 64)
	if err != nil || len(s) != 16 {
		return 0, fmt.Errorf("groupcomm: cluster id %q is not 16 hex digits", s)
	}
	return id, nil
}
