package node

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/galenadb/galena/api"
	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/groupcomm"
	"github.com/galenadb/galena/node/rpc"
	"github.com/galenadb/galena/security"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
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
		LastContactMs: -1, Error: s.Error, Members: rpc.MembersProto(s.Members), CertExpiryUnix: n.certNotAfter.Load(),
		Term: s.Term, DataBytes: n.dataBytes.Load(), Version: ThisBuild().Version,
		TransferPhase: s.Transfer.Phase, TransferBytes: s.Transfer.Bytes, TransferTotal: s.Transfer.Total,
		FlowControlPausedBy: s.FlowControl.PausedBy, FlowControlBacklog: s.FlowControl.Backlog,
		FlowControlPausedMs: s.FlowControl.Paused.Milliseconds(), FlowControlLagging: s.FlowControl.Lagging,
	}
	if s.LastContact >= 0 {
		resp.LastContactMs = s.LastContact.Milliseconds()
	}
	return resp
}

// statusView is r as /status serves it: the fields, names and units of
// `galena status --json`.
func statusView(r *galenapb.StatusResponse) api.StatusView {
	v := api.StatusView{
		ID: r.Id, Address: r.Address, ClusterID: r.ClusterId, Role: "data", RaftState: r.RaftState, LeaderID: r.LeaderId,
		Term: r.Term, CommitIndex: r.CommitIndex, LastIndex: r.LastIndex, AppliedIndex: r.AppliedIndex,
		AppliedSeqno: r.AppliedSeqno, ApplyLag: r.ApplyLag, LastContactMs: r.LastContactMs, Commits: r.Commits,
		CertFailures: r.CertFailures, State: r.State, Error: r.Error, ClusterSize: len(r.Members),
		DataBytes: r.DataBytes, Version: r.Version,
		TransferPhase: r.TransferPhase, TransferBytes: r.TransferBytes, TransferTotal: r.TransferTotal,
		FlowControlPausedBy: r.FlowControlPausedBy, FlowControlBacklog: r.FlowControlBacklog,
		FlowControlPausedMs: r.FlowControlPausedMs, FlowControlLagging: r.FlowControlLagging,
	}
	if r.Arbitrator {
		v.Role = "arbitrator"
	}
	if r.CertExpiryUnix != 0 {
		v.CertExpires = time.Unix(r.CertExpiryUnix, 0).UTC().Format(time.RFC3339)
	}
	return v
}

// httpHandler serves the member's port: /healthz and /readyz to anyone;
// /status and /metrics to the read role and /debug/pprof/ (only with
// EnablePprof) to the admin role when the member verifies clients.
func (n *Node) httpHandler() http.Handler {
	mux := http.NewServeMux()
	n.handleProbes(mux)
	mux.Handle("/status", n.httpRole(security.RoleRead, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(statusView(n.statusProto()))
	})))
	if h := n.metricsHandler(); h != nil {
		mux.Handle("/metrics", n.httpRole(security.RoleRead, h))
	}
	if n.cfg.EnablePprof {
		prof := http.NewServeMux()
		prof.HandleFunc("/debug/pprof/", pprof.Index)
		prof.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		prof.HandleFunc("/debug/pprof/profile", pprof.Profile)
		prof.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		prof.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.Handle("/debug/pprof/", n.httpRole(security.RoleAdmin, prof))
	}
	return mux
}

// plainHandler serves the extra plaintext listener (MetricsAddr):
// /healthz, /readyz and /metrics, to anyone.
func (n *Node) plainHandler() http.Handler {
	mux := http.NewServeMux()
	n.handleProbes(mux)
	if h := n.metricsHandler(); h != nil {
		mux.Handle("/metrics", h)
	}
	return mux
}

// handleProbes serves /healthz and /readyz on mux.
func (n *Node) handleProbes(mux *http.ServeMux) {
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if st := n.Status().State; st != StateSynced {
			http.Error(w, st, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
}

// metricsHandler serves Registerer's metrics, or is nil when it gathers
// none.
func (n *Node) metricsHandler() http.Handler {
	if g, ok := n.cfg.Registerer.(prometheus.Gatherer); ok {
		return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
	}
	return nil
}

// tlsStateKey is the context key of an HTTP request's TLS state: the
// member's listener ends TLS before the HTTP server sees the connection,
// so http.Request.TLS is nil.
type tlsStateKey struct{}

// httpConnContext records the TLS state of an HTTP connection for
// httpRole.
func httpConnContext(ctx context.Context, c net.Conn) context.Context {
	if cs, ok := tlsState(c); ok {
		return context.WithValue(ctx, tlsStateKey{}, &cs)
	}
	return ctx
}

// httpRole serves h to callers whose certificate has the role need when
// the member verifies clients (ClientCertAuth), and to anyone otherwise;
// others get 401 (no certificate) or 403 (not the role), as gRPC calls
// get Unauthenticated or PermissionDenied.
func (n *Node) httpRole(need security.Role, h http.Handler) http.Handler {
	if !n.cfg.ClientCertAuth {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs, _ := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState)
		if ref := n.admit(r.URL.Path, need, r.RemoteAddr, cs); ref != nil {
			code := http.StatusForbidden
			if ref.code == codes.Unauthenticated {
				code = http.StatusUnauthorized
			}
			http.Error(w, ref.msg, code)
			return
		}
		h.ServeHTTP(w, r)
	})
}
