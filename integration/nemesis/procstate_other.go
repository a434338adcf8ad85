//go:build !linux

package nemesis

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// processState is the state letter of process pid, such as R (running), S
// (sleeping) or T (stopped), as ps reports it.
func processState(pid int) (string, error) {
	out, err := exec.Command("ps", "-o", "stat=", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		return "", fmt.Errorf("nemesis: state of pid %d: %w", pid, err)
	}
	s := strings.TrimSpace(string(out))
	if s == "" {
		return "", fmt.Errorf("nemesis: state of pid %d: ps printed nothing", pid)
	}
	return s[:1], nil
}
