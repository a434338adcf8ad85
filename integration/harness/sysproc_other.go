//go:build !linux

package harness

import "syscall"

// sysProcAttr: outside Linux there is no parent-death signal; cleanups alone
// stop the members.
func sysProcAttr() *syscall.SysProcAttr { return nil }
