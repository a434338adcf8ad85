package api

// StatusView is a member's status in JSON, as `galena status --json`
// prints it (client.MemberStatus) and the member's /status serves it:
// snake_case names, durations in milliseconds, times in RFC 3339. Role is
// data or arbitrator; ClusterSize counts the members of the configuration
// the member knows.
type StatusView struct {
	ID            string `json:"id"`
	Address       string `json:"address"`
	ClusterID     string `json:"cluster_id,omitempty"`
	Role          string `json:"role,omitempty"` // data or arbitrator
	RaftState     string `json:"raft_state,omitempty"`
	LeaderID      string `json:"leader_id,omitempty"`
	Term          uint64 `json:"term"`
	CommitIndex   uint64 `json:"commit_index"`
	LastIndex     uint64 `json:"last_index"`
	AppliedIndex  uint64 `json:"applied_index"`
	AppliedSeqno  uint64 `json:"applied_seqno"`
	ApplyLag      uint64 `json:"apply_lag"`
	LastContactMs int64  `json:"last_contact_ms"` // -1: never
	Commits       uint64 `json:"commits"`
	CertFailures  uint64 `json:"cert_failures"`
	State         string `json:"state"`
	Error         string `json:"error,omitempty"`
	ClusterSize   int    `json:"cluster_size"`
	DataBytes     int64  `json:"data_bytes"`
	Version       string `json:"version,omitempty"`
	CertExpires   string `json:"cert_expires,omitempty"`
	// TransferPhase is sending, receiving or restoring while the member
	// takes part in a state transfer, with the bytes done of the total
	// (0 while receiving).
	TransferPhase string `json:"transfer_phase,omitempty"`
	TransferBytes int64  `json:"transfer_bytes,omitempty"`
	TransferTotal int64  `json:"transfer_total,omitempty"`
	// On the leader: the member whose backlog holds commits back now and
	// that backlog, the time commits were held back while this member led,
	// and the members reported lagging (see docs/regions.md).
	FlowControlPausedBy string   `json:"flow_control_paused_by,omitempty"`
	FlowControlBacklog  uint64   `json:"flow_control_backlog,omitempty"`
	FlowControlPausedMs int64    `json:"flow_control_paused_ms"`
	FlowControlLagging  []string `json:"flow_control_lagging,omitempty"`
}
