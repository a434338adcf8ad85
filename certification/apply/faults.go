//go:build faults

package apply

import "github.com/galenadb/galena/certification"

// Faults are deliberate misbehaviours for fault tests: they show that the
// cluster notices a member that goes wrong. Only fault builds (go build
// -tags faults) have them; in a release build Faults is empty.
type Faults struct {
	// DivergeAt: from this seqno on, the member records write-sets that
	// commit as conflicts, as a certification bug would. Zero disables it.
	DivergeAt uint64
}

// outcome is what the member records for a write-set certified at seqno
// as o.
func (f Faults) outcome(seqno uint64, o certification.Outcome) certification.Outcome {
	if f.DivergeAt > 0 && seqno >= f.DivergeAt && o.Verdict == certification.Commit && !o.Duplicate {
		return certification.Outcome{Verdict: certification.Conflict, Seqno: seqno}
	}
	return o
}
