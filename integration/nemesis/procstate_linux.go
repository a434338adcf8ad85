package nemesis

import (
	"fmt"
	"os"
	"strings"
)

// processState is the state letter of process pid, such as R (running), S
// (sleeping) or T (stopped), from /proc/<pid>/stat.
func processState(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", fmt.Errorf("nemesis: state of pid %d: %w", pid, err)
	}
	// "pid (comm) state ...": comm may hold spaces and parentheses.
	s := string(b)
	at := strings.LastIndexByte(s, ')')
	if at < 0 || len(s) < at+3 {
		return "", fmt.Errorf("nemesis: state of pid %d: unexpected %q", pid, s)
	}
	return s[at+2 : at+3], nil
}
