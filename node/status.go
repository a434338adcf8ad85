package node

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/groupcomm"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Member states, after Galera's.
const (
	StateSynced     = "SYNCED"      // primary and caught up
	StateJoined     = "JOINED"      // primary, applying a backlog
	StateNonPrimary = "NON_PRIMARY" // cut off from the majority
	StateFailed     = "FAILED"      // apply loop stopped; restart the member
)

// syncedLag is how many committed-but-unapplied entries a member may have
// and still count as synced.
const syncedLag = 1024

// Status is the member's state as reported by `galena status`.
type Status struct {
	groupcomm.Status
	State        string
	Commits      uint64
	CertFailures uint64
}

// Status reports the member's current state without blocking on the network.
func (n *Node) Status() Status {
	gs := n.group.Status()
	st := n.applier.Stats()
	s := Status{Status: gs, Commits: st.Commits, CertFailures: st.CertFailures}
	switch {
	case n.failed.Load():
		s.State = StateFailed
	case !gs.Primary:
		s.State = StateNonPrimary
	case gs.CommitIndex > gs.Applied+syncedLag:
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
		AppliedSeqno: s.Applied, Commits: s.Commits, CertFailures: s.CertFailures,
		State: s.State, CommitIndex: s.CommitIndex, LastIndex: s.LastIndex,
	}
	for _, m := range s.Members {
		resp.Members = append(resp.Members, &galenapb.Member{Id: m.ID, Address: m.Addr, Voter: m.Voter})
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
