package harness

import "syscall"

// sysProcAttr makes the kernel kill a member when the test binary dies
// without running its cleanups (a `go test -timeout` panic, a SIGKILL).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
