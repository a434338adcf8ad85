package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// cliTimeout bounds one run of the command line tool.
const cliTimeout = time.Minute

// CLIResult is the outcome of one run of the galena command line tool.
type CLIResult struct {
	Args           []string // the arguments after the binary
	Stdout, Stderr string
	Code           int           // exit code; -1 if it did not exit normally
	Elapsed        time.Duration // from start to exit
	Err            error         // set when it could not run or was killed
}

// String summarises r for a test failure message.
func (r CLIResult) String() string {
	s := fmt.Sprintf("galena %s: exit %d after %v\nstdout: %q\nstderr: %q",
		strings.Join(r.Args, " "), r.Code, r.Elapsed.Round(time.Millisecond), r.Stdout, r.Stderr)
	if r.Err != nil {
		s += fmt.Sprintf("\nerror: %v", r.Err)
	}
	return s
}

// RunCLI runs bin with --endpoints set to endpoints and then args, with
// GALENA_ENDPOINTS removed from its environment, and waits for it to exit
// (at most a minute).
func RunCLI(bin string, endpoints []string, args ...string) CLIResult {
	full := append([]string{"--endpoints", strings.Join(endpoints, ",")}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Env = withoutEnv(os.Environ(), "GALENA_ENDPOINTS")
	return runCmd(ctx, cmd, full)
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

// runCmd runs cmd, whose context is ctx and arguments args, to its end.
func runCmd(ctx context.Context, cmd *exec.Cmd, args []string) CLIResult {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	err := cmd.Run()
	r := CLIResult{Args: args, Elapsed: time.Since(began), Code: cmd.ProcessState.ExitCode()}
	r.Stdout, r.Stderr = stdout.String(), stderr.String()
	var exit *exec.ExitError
	if err != nil && (!errors.As(err, &exit) || ctx.Err() != nil) {
		r.Err = err
	}
	return r
}

func withoutEnv(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}
