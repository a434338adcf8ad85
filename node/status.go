package node

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/groupcomm"
	"github.com/galenadb/galena/node/rpc"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Member states, after Galera's.
const (
	StateJoining    = "JOINING"     // receiving state: joining, or restoring a snapshot; serves nothing
	StateDonor      = "DONOR"       // sending a snapshot to a member too far behind for the log
	StateJoined     = "JOINED"      // has the state, applying a backlog (or awaiting promotion to voter)
	StateSynced     = "SYNCED"      // primary and caught up
	StateNonPrimary = "NON_PRIMARY" // cut off from the majority
	StateFailed     = "FAILED"      // stopped: its state diverged or cannot be trusted, or it was removed
)

// errWaitingForData is the status error of a data member that the leader,
// an arbitrator, cannot bring up to date.
const errWaitingForData = "behind the leader's log, which an arbitrator leads and cannot send as a snapshot (it holds no data): " +
	"waiting for a data member to come back"

// Status is the member's state as reported by `galena status`.
type Status struct {
	groupcomm.Status
	State        string
	Commits      uint64
	CertFailures uint64
	// MinReadable is the oldest snapshot a read on this member can use:
	// older history was discarded (storage.Config.Retain). Zero on an
	// arbitrator.
	MinReadable uint64
	// Error says why the member stopped (StateFailed), or why it cannot
	// catch up by itself (StateJoining, waiting for a data member).
	Error string
}

// Status reports the member's current state without blocking on the network.
func (n *Node) Status() Status {
	if n.group == nil { // started failed: no group to ask
		return n.statusOf(groupcomm.Status{ID: n.cfg.ID, Addr: n.addr, RaftState: "Shutdown", LastContact: -1,
			ClusterID: n.clusterID, Arbitrator: n.cfg.Arbitrator})
	}
	return n.statusOf(n.group.Status())
}

// statusOf is the member's status given its group's.
func (n *Node) statusOf(gs groupcomm.Status) Status {
	s := Status{Status: gs}
	if n.applier != nil {
		st := n.applier.Stats()
		s.Commits, s.CertFailures = st.Commits, st.CertFailures
	}
	if n.store != nil {
		s.MinReadable = n.store.Applied().MinReadable
	}
	switch err := n.stopped(); {
	case err != nil:
		s.State, s.Error = StateFailed, err.Error()
	case gs.WaitingForData:
		s.State, s.Error = StateJoining, errWaitingForData
	case n.joining.Load() || gs.Restoring:
		s.State = StateJoining
	case !gs.Primary:
		s.State = StateNonPrimary
	case gs.Donor:
		s.State = StateDonor
	case s.ApplyLag > groupcomm.SyncedLag || !gs.Voter:
		s.State = StateJoined
	default:
		s.State = StateSynced
	}
	return s
}

func (n *Node) statusProto() *galenapb.StatusResponse {
	s := n.Status()
	resp := &galenapb.StatusResponse{
		Id: s.ID, Address: s.Addr, RaftState: s.RaftState, LeaderId: s.LeaderID,
		AppliedSeqno: s.AppliedSeqno, AppliedIndex: s.AppliedIndex, Commits: s.Commits, CertFailures: s.CertFailures,
		State: s.State, CommitIndex: s.CommitIndex, LastIndex: s.LastIndex,
		ClusterId: groupcomm.FormatClusterID(s.ClusterID), Arbitrator: s.Arbitrator, ApplyLag: s.ApplyLag,
		LastContactMs: -1, Error: s.Error, Members: rpc.MembersProto(s.Members),
	}
	if s.LastContact >= 0 {
		resp.LastContactMs = s.LastContact.Milliseconds()
	}
	return resp
}

// httpHandler serves /healthz, /readyz, /status, /metrics and /debug/pprof.
func (n *Node) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if st := n.Status().State; st != StateSynced {
			http.Error(w, st, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(n.Status())
	})
	if g, ok := n.cfg.Registerer.(prometheus.Gatherer); ok {
		mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
