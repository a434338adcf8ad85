//go:build !faults

package apply

import "github.com/galenadb/galena/certification"

// Faults is empty in a release build. Fault builds (go build -tags faults)
// add deliberate misbehaviours for fault tests to it (see faults.go).
type Faults struct{}

// outcome is o: a release build records what certification decided.
func (Faults) outcome(_ uint64, o certification.Outcome) certification.Outcome { return o }
