package harness

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ResetPeakRSS resets the peak resident set size (VmHWM) of process pid to
// its current RSS, by writing 5 to /proc/pid/clear_refs. Linux only: it
// returns errors.ErrUnsupported elsewhere.
func ResetPeakRSS(pid int) error {
	if runtime.GOOS != "linux" {
		return errors.ErrUnsupported
	}
	path := fmt.Sprintf("/proc/%d/clear_refs", pid)
	if err := os.WriteFile(path, []byte("5"), 0); err != nil {
		return fmt.Errorf("harness: reset peak RSS: %w", err)
	}
	return nil
}

// PeakRSS is the peak resident set size of process pid in bytes, since it
// started or since the last ResetPeakRSS (VmHWM). It counts file-backed
// pages too, such as storage's memory-mapped files, which the kernel can
// drop under pressure. Linux only: errors.ErrUnsupported elsewhere.
func PeakRSS(pid int) (int64, error) { return procStatus(pid, "VmHWM") }

// AnonRSS is the anonymous memory process pid holds now (heap, stacks,
// anonymous maps: what it cannot give back without freeing), in bytes.
// Linux only: errors.ErrUnsupported elsewhere.
func AnonRSS(pid int) (int64, error) { return procStatus(pid, "RssAnon") }

// RSSParts describes what process pid holds resident now, e.g.
// "RssAnon 120 MB, RssFile 300 MB". Linux only.
func RSSParts(pid int) (string, error) {
	anon, err := procStatus(pid, "RssAnon")
	if err != nil {
		return "", err
	}
	file, err := procStatus(pid, "RssFile")
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("RssAnon %d MB, RssFile %d MB", anon>>20, file>>20), nil
}

// procStatus reads the "name: N kB" line of /proc/pid/status, in bytes.
func procStatus(pid int, name string) (int64, error) {
	if runtime.GOOS != "linux" {
		return 0, errors.ErrUnsupported
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("harness: %s: %w", name, err)
	}
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, name+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest) // "123456 kB"
		if len(f) == 2 && f[1] == "kB" {
			if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				return kb << 10, nil
			}
		}
		break
	}
	return 0, fmt.Errorf("harness: no %s line in /proc/%d/status", name, pid)
}

// AnonPeaks samples the anonymous memory of processes until Stop, and keeps
// each one's peak: /proc has a peak for the whole RSS only.
type AnonPeaks struct {
	done chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	peak map[int]int64
}

// SampleAnon samples the anonymous memory (AnonRSS) of the processes pids
// every period, on a goroutine of its own, until Stop. Linux only: elsewhere
// it finds nothing.
func SampleAnon(every time.Duration, pids ...int) *AnonPeaks {
	a := &AnonPeaks{done: make(chan struct{}), peak: make(map[int]int64)}
	a.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			for _, pid := range pids {
				if n, err := AnonRSS(pid); err == nil {
					a.mu.Lock()
					a.peak[pid] = max(a.peak[pid], n)
					a.mu.Unlock()
				}
			}
			select {
			case <-a.done:
				return
			case <-t.C:
			}
		}
	})
	return a
}

// Stop ends the sampling and returns the peaks, by pid. Call it once.
func (a *AnonPeaks) Stop() map[int]int64 {
	close(a.done)
	a.wg.Wait()
	return a.peak
}
