// Package cputime reads the CPU time this process has used, for the
// benchmarks that report CPU per operation (members and clients in one
// process, so what they all cost).
package cputime

import (
	"syscall"
	"testing"
	"time"
)

// Used is the user and system CPU time this process has used so far.
func Used(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ReportPerOp reports the CPU time used since start (a Used reading), per
// operation of b, as cpu-µs/op.
func ReportPerOp(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(Used(b)-start)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}
