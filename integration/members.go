package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/galenadb/galena/api/galenapb"
)

// httpStatusTimeout bounds one GET of a member's /status.
const httpStatusTimeout = 2 * time.Second

// AddMember adds a member slot to the cluster, with a new port, data
// directory and log, whose process asks to join through member via's
// address (`galena start --join`) instead of bootstrapping; it returns the
// new member's index. It does not start the process: Start does, and every
// later start of the slot passes --join too. args are appended to the
// member's command line after Options.ExtraArgs.
//
// AddMember changes the member list, so call it from the test's goroutine
// while no other method of the Cluster runs. It fails on a cluster started
// with Options.Proxy: the Net has a fixed set of members.
func (c *Cluster) AddMember(via int, args ...string) (int, error) {
	if c.net != nil {
		return -1, errors.New("integration: AddMember: the proxied Net has a fixed set of members")
	}
	ports, err := freePorts(1)
	if err != nil {
		return -1, err
	}
	m, err := c.newMember(ports[0])
	if err != nil {
		return -1, err
	}
	m.join, m.args = c.Endpoint(via), slices.Clone(args)
	c.members = append(c.members, m)
	return len(c.members) - 1, nil
}

// SetJoin makes member i's later starts join through member via's address
// (`--join`) instead of bootstrapping with --initial-cluster: how an operator
// brings a removed member, its data directory wiped, back into the cluster.
func (c *Cluster) SetJoin(i, via int) {
	m := c.members[i]
	m.op.Lock()
	defer m.op.Unlock()
	m.join = c.Endpoint(via)
}

// DataDir is member i's data directory.
func (c *Cluster) DataDir(i int) string { return c.members[i].dataDir }

// Wipe removes member i's data directory. The member must not be running.
func (c *Cluster) Wipe(i int) error {
	m := c.members[i]
	m.op.Lock()
	defer m.op.Unlock()
	if p := m.current(); p != nil && !p.exited() {
		return fmt.Errorf("integration: wipe %s: running (pid %d)", m.id, p.cmd.Process.Pid)
	}
	if err := os.RemoveAll(m.dataDir); err != nil {
		return fmt.Errorf("integration: wipe %s: %w", m.id, err)
	}
	c.note(m, "data directory %s wiped", m.dataDir)
	return nil
}

// PID is the process id of member i's running process, or 0.
func (c *Cluster) PID(i int) int {
	p := c.members[i].current()
	if p == nil || p.exited() {
		return 0
	}
	return p.cmd.Process.Pid
}

// ExpectExit tells the harness that member i's running process is about to
// exit on its own (it was removed from the cluster, or it must stop on an
// error), so its exit is not reported as a crash. Call it before whatever
// makes the member exit; WaitExit then says how it exited.
func (c *Cluster) ExpectExit(i int) {
	if p := c.members[i].current(); p != nil {
		p.stopping.Store(true)
	}
}

// WaitExit waits up to timeout for member i's current process to exit and
// returns its exit code. It fails if the member never ran or is still running
// after timeout (it is left running).
func (c *Cluster) WaitExit(i int, timeout time.Duration) (int, error) {
	m := c.members[i]
	p := m.current()
	if p == nil {
		return -1, fmt.Errorf("integration: %s never started", m.id)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		return -1, fmt.Errorf("integration: %s still running %v later\n%s", m.id, timeout, tail(m.logPath, logTailLines))
	}
	var exit *exec.ExitError
	if p.err != nil && !errors.As(p.err, &exit) {
		return -1, fmt.Errorf("integration: %s: %w", m.id, p.err)
	}
	return p.cmd.ProcessState.ExitCode(), nil
}

// LiveEndpoints are the addresses of the running members that are not
// paused.
func (c *Cluster) LiveEndpoints() []string {
	var eps []string
	for _, i := range c.filter(c.live) {
		eps = append(eps, c.Endpoint(i))
	}
	return eps
}

// WaitStatus polls member i's Status until cond accepts it, the member
// exits, or timeout passes, and returns the last status.
func (c *Cluster) WaitStatus(i int, timeout time.Duration, cond func(*galenapb.StatusResponse) error) (*galenapb.StatusResponse, error) {
	m := c.members[i]
	var last *galenapb.StatusResponse
	err := WaitFor(timeout, func() error {
		if !c.Running(i) {
			return permanent(fmt.Errorf("%s is not running", m.id))
		}
		st, err := statusOf(m)
		if err != nil {
			return err
		}
		last = st
		return cond(st)
	})
	if err != nil {
		return last, fmt.Errorf("integration: %s: %w", m.id, err)
	}
	return last, nil
}

// SyncedVoter accepts the status of a SYNCED member that counts itself a
// voter of the cluster: a joiner that finished catching up and was promoted.
func SyncedVoter(st *galenapb.StatusResponse) error {
	if st.GetState() != stateSynced {
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

// HTTPStatus fetches member i's /status page, the JSON of node.Status, as a
// generic map.
func (c *Cluster) HTTPStatus(i int) (map[string]any, error) {
	hc := http.Client{Timeout: httpStatusTimeout}
	resp, err := hc.Get("http://" + c.Endpoint(i) + "/status")
	if err != nil {
		return nil, fmt.Errorf("integration: /status of %s: %w", c.ID(i), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("integration: /status of %s: %s %q (%v)", c.ID(i), resp.Status, body, err)
	}
	var st map[string]any
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("integration: /status of %s: %w in %q", c.ID(i), err, body)
	}
	return st, nil
}

// harnessLine begins the lines the harness writes in a member's log;
// startMarker, its line before each start.
const (
	harnessLine = "=== integration: "
	startMarker = harnessLine + "start #"
)

// StartLog is what member i's current (or last) process wrote to its log
// so far, from the harness's line announcing its start.
func (c *Cluster) StartLog(i int) (string, error) {
	m := c.members[i]
	p := m.current()
	if p == nil {
		return "", fmt.Errorf("integration: %s never started", m.id)
	}
	b, err := os.ReadFile(m.logPath)
	if err != nil {
		return "", fmt.Errorf("integration: %w", err)
	}
	s := string(b)
	at := strings.LastIndex(s, fmt.Sprintf("%s%d of %s ", startMarker, p.start, m.id))
	if at < 0 {
		return "", fmt.Errorf("integration: %s: no start #%d in %s", m.id, p.start, m.logPath)
	}
	return s[at:], nil
}

// WaitLog waits up to timeout until member i's current process has logged a
// line containing substr, and returns that line. The harness's own lines
// (see note) do not count.
func (c *Cluster) WaitLog(i int, timeout time.Duration, substr string) (string, error) {
	var line string
	err := WaitFor(timeout, func() error {
		log, err := c.StartLog(i)
		if err != nil {
			return err
		}
		for l := range strings.Lines(log) {
			if !strings.HasPrefix(l, harnessLine) && strings.Contains(l, substr) {
				line = strings.TrimRight(l, "\n")
				return nil
			}
		}
		return fmt.Errorf("%s has not logged %q", c.ID(i), substr)
	})
	if err != nil {
		return "", fmt.Errorf("integration: %w", err)
	}
	return line, nil
}

// appliedField finds the applied field of a log line, console or JSON.
var appliedField = regexp.MustCompile(`"applied":\s*(\d+)`)

// StartedApplied waits for member i's current process to log "member
// started" and returns that line's applied field: the seqno it resumed from.
func (c *Cluster) StartedApplied(i int, timeout time.Duration) (uint64, error) {
	line, err := c.WaitLog(i, timeout, "member started")
	if err != nil {
		return 0, err
	}
	sub := appliedField.FindStringSubmatch(line)
	if sub == nil {
		return 0, fmt.Errorf("integration: %s: no applied field in %q", c.ID(i), line)
	}
	return strconv.ParseUint(sub[1], 10, 64)
}

// RunStart runs `galena start` with args as a one-off process, outside any
// cluster slot, and waits up to timeout for it to exit: for a start that
// must be refused. A process still running after timeout is killed, and the
// result's Err says so.
func RunStart(bin string, timeout time.Duration, args ...string) CLIResult {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append([]string{"start"}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Env = withoutEnv(os.Environ(), "GALENA_ENDPOINTS")
	cmd.SysProcAttr = sysProcAttr()
	return runCmd(ctx, cmd, full)
}
