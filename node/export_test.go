package node

// SetQuota changes a running member's space quota, as a restart with
// another --quota-bytes would.
func SetQuota(n *Node, bytes int64) { n.quotaBytes.Store(bytes) }
