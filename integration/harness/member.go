package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/galenadb/galena/api/galenapb"
)

const (
	// httpStatusTimeout bounds one GET of a member's /status.
	httpStatusTimeout = 2 * time.Second
	// statusTimeout bounds one Status call.
	statusTimeout = 2 * time.Second
)

// Member is one slot of a Cluster: a member's id, port, data directory and
// log, which survive restarts, and the Process currently (or last) running
// in it. Its methods are safe for concurrent use; those that start or stop
// its process are serialised.
type Member struct {
	c                          *Cluster
	i                          int // index in the cluster
	id, addr, dataDir, logPath string
	conn                       *grpc.ClientConn // for Status; reconnects across restarts
	kv                         galenapb.KVClient

	// join, when set, replaces --initial-cluster: the address of the
	// member the process asks to be added through (see AddMember).
	join string
	args []string // appended to the command line (Options.MemberArgs)

	op     sync.Mutex // serialises Start, Stop and Kill of this member
	mu     sync.Mutex // guards proc and starts
	proc   *Process   // nil before the first start
	starts int
}

// Process is the member's current (or last) process, nil before its first
// start.
func (m *Member) Process() *Process {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc
}

// DataDir is the member's data directory.
func (m *Member) DataDir() string { return m.dataDir }

// LogPath is the member's log file; each start appends to it.
func (m *Member) LogPath() string { return m.logPath }

// LogTail is the end of the member's log, for a failure message.
func (m *Member) LogTail() string { return tail(m.logPath, logTailLines) }

// Arbitrator reports whether the member runs with --arbitrator: it votes
// but stores no data, so the content checks leave it out.
func (m *Member) Arbitrator() bool {
	m.op.Lock()
	defer m.op.Unlock()
	return slices.Contains(m.args, "--arbitrator")
}

// SetJoin makes the member's later starts join through member via's address
// (`--join`) instead of bootstrapping with --initial-cluster: how an operator
// brings a removed member, its data directory wiped, back into the cluster.
func (m *Member) SetJoin(via int) {
	m.op.Lock()
	defer m.op.Unlock()
	m.join = m.c.Endpoint(via)
}

// Wipe removes the member's data directory. The member must not be running.
func (m *Member) Wipe() error {
	m.op.Lock()
	defer m.op.Unlock()
	if p := m.Process(); p != nil && !p.Exited() {
		return fmt.Errorf("harness: wipe %s: running (pid %d)", m.id, p.PID())
	}
	if err := os.RemoveAll(m.dataDir); err != nil {
		return fmt.Errorf("harness: wipe %s: %w", m.id, err)
	}
	m.note("data directory %s wiped", m.dataDir)
	return nil
}

// running reports whether the member's process is running (paused or not).
func (m *Member) running() bool {
	p := m.Process()
	return p != nil && !p.Exited()
}

// live reports whether the member runs and is not paused.
func (m *Member) live() bool {
	p := m.Process()
	return p != nil && !p.Exited() && !p.paused.Load()
}

// Status asks the member for its status through the Status RPC.
func (m *Member) Status() (*galenapb.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	st, err := m.kv.Status(ctx, &galenapb.StatusRequest{})
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", m.id, err)
	}
	return st, nil
}

// WaitStatus polls the member's Status until cond accepts it, the member
// exits, or timeout passes, and returns the last status.
func (m *Member) WaitStatus(timeout time.Duration, cond func(*galenapb.StatusResponse) error) (*galenapb.StatusResponse, error) {
	var last *galenapb.StatusResponse
	err := WaitFor(timeout, func() error {
		if !m.running() {
			return Permanent(fmt.Errorf("%s is not running", m.id))
		}
		st, err := m.Status()
		if err != nil {
			return err
		}
		last = st
		return cond(st)
	})
	if err != nil {
		return last, fmt.Errorf("harness: %s: %w", m.id, err)
	}
	return last, nil
}

// SyncedVoter accepts the status of a SYNCED member that counts itself a
// voter of the cluster: a joiner that finished catching up and was promoted.
func SyncedVoter(st *galenapb.StatusResponse) error {
	if st.GetState() != StateSynced {
		return fmt.Errorf("%s is %s", st.GetId(), st.GetState())
	}
	for _, m := range st.GetMembers() {
		if m.GetId() == st.GetId() {
			if !m.GetVoter() {
				return fmt.Errorf("%s is SYNCED but not yet a voter", st.GetId())
			}
			return nil
		}
	}
	return fmt.Errorf("%s is not in its own member list %v", st.GetId(), st.GetMembers())
}

// HTTPStatus fetches the member's /status page, the JSON of node.Status, as
// a generic map.
func (m *Member) HTTPStatus() (map[string]any, error) {
	hc := http.Client{Timeout: httpStatusTimeout}
	scheme := "http://"
	if cfg := m.c.opts.ClientTLS; cfg != nil {
		tr := &http.Transport{TLSClientConfig: cfg.Clone()}
		defer tr.CloseIdleConnections()
		hc.Transport, scheme = tr, "https://"
	}
	resp, err := hc.Get(scheme + m.addr + "/status")
	if err != nil {
		return nil, fmt.Errorf("harness: /status of %s: %w", m.id, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("harness: /status of %s: %s %q (%v)", m.id, resp.Status, body, err)
	}
	var st map[string]any
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("harness: /status of %s: %w in %q", m.id, err, body)
	}
	return st, nil
}

// note appends a harness line to the member's log.
func (m *Member) note(format string, args ...any) {
	f, err := os.OpenFile(m.logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s%s at %s: %s\n", harnessLine, m.id, time.Now().Format(time.RFC3339Nano), fmt.Sprintf(format, args...))
}
