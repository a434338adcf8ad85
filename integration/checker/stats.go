package checker

import "fmt"

// Counts are the numbers of operations by outcome.
type Counts struct {
	OK, Fail, Info int
}

// Total is OK + Fail + Info.
func (c Counts) Total() int { return c.OK + c.Fail + c.Info }

func (c *Counts) count(t Type) {
	switch t {
	case TypeOK:
		c.OK++
	case TypeFail:
		c.Fail++
	case TypeInfo:
		c.Info++
	}
}

// String renders c as "ok/fail/info".
func (c Counts) String() string { return fmt.Sprintf("%d/%d/%d", c.OK, c.Fail, c.Info) }

// Stats counts a history's operations by workload and outcome.
type Stats struct {
	Bank, Append, Set, Register, Watch Counts
	// Other counts ops with no payload, or more than one.
	Other Counts
}

// Summarize counts h's operations by workload and outcome. It never fails:
// ops of unknown type are counted in no outcome.
func Summarize(h []Op) Stats {
	var s Stats
	for _, o := range h {
		s.counts(o).count(o.Type)
	}
	return s
}

func (s *Stats) counts(o Op) *Counts {
	if o.payloads() != 1 {
		return &s.Other
	}
	switch o.Workload() {
	case WorkloadBank:
		return &s.Bank
	case WorkloadAppend:
		return &s.Append
	case WorkloadSet:
		return &s.Set
	case WorkloadWatch:
		return &s.Watch
	}
	return &s.Register
}

// String renders the non-empty workloads, such as
// "bank ok/fail/info=120/14/2 set ok/fail/info=40/0/1".
func (s Stats) String() string {
	out := ""
	for _, w := range []struct {
		name string
		c    Counts
	}{{WorkloadBank, s.Bank}, {WorkloadAppend, s.Append}, {WorkloadSet, s.Set}, {WorkloadRegister, s.Register}, {WorkloadWatch, s.Watch}, {"other", s.Other}} {
		if w.c.Total() == 0 {
			continue
		}
		if out != "" {
			out += " "
		}
		out += fmt.Sprintf("%s ok/fail/info=%s", w.name, w.c)
	}
	return out
}
