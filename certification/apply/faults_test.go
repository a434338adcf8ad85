//go:build faults

package apply

import (
	"math/rand/v2"
	"testing"
)

// Tests of the fault hooks, which only fault builds have: go test -tags
// faults (.ci/faults runs them).

// A member with Faults.DivergeAt agrees with an honest one up to that
// seqno, then records every write-set that commits as a conflict, and its
// digest differs from there on.
func TestFaultsDivergeAt(t *testing.T) {
	log := randomLog(t, rand.New(rand.NewPCG(3, 0)), 200)
	c := boundary(log, 100)
	at := log[c].Seqno
	cfg := Config{Certification: testConfig(64, 8)}
	honest, _, hrec := memApplier(t, cfg)
	cfg.Faults.DivergeAt = at
	faulty, _, frec := memApplier(t, cfg)
	for _, a := range []*Applier{honest, faulty} {
		if err := a.Deliver(log[:c], positionOf(log[c-1])); err != nil {
			t.Fatal(err)
		}
	}
	if _, h := honest.Digest(); h != digestOf(faulty) {
		t.Fatal("the members' digests differ before DivergeAt")
	}
	for _, a := range []*Applier{honest, faulty} {
		if err := a.Deliver(log[c:], positionOf(log[len(log)-1])); err != nil {
			t.Fatal(err)
		}
	}
	if _, h := honest.Digest(); h == digestOf(faulty) {
		t.Fatal("the members' digests agree after DivergeAt")
	}
	if n := a0Commits(hrec.outcomes[c:]); n == 0 {
		t.Fatal("degenerate log: nothing commits after DivergeAt")
	}
	if n := a0Commits(frec.outcomes[c:]); n != 0 {
		t.Fatalf("the faulty member committed %d write-sets after DivergeAt", n)
	}
}

func digestOf(a *Applier) [32]byte {
	_, d := a.Digest()
	return d
}
