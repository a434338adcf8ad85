package nemesis

import (
	"slices"
	"testing"
	"time"
)

// The workloads of a Jepsen run share the fault kinds out so that, each
// injecting only the faults it promises, together they inject every kind.
func TestFaultSpecSharesEveryKind(t *testing.T) {
	for _, nemesis := range []string{"all", "partition", "kill", "latency,kill,pause"} {
		kinds, err := ParseKinds(nemesis)
		if err != nil {
			t.Fatal(err)
		}
		for parts := 1; parts <= 5; parts++ {
			var got []Kind
			for part := range parts {
				sch, err := FaultSpec{Nemesis: nemesis, Part: part, Parts: parts}.Schedule(6 * time.Second)
				if err != nil {
					t.Fatal(err)
				}
				for i := range sch.MinFaults {
					got = append(got, sch.kind(nil, i))
				}
			}
			for _, k := range kinds {
				if !slices.Contains(got, k) {
					t.Errorf("%s over %d workloads: %s is never injected (%v)", nemesis, parts, k, got)
				}
			}
		}
	}
	for _, none := range []string{"", "none"} {
		if sch, err := (FaultSpec{Nemesis: none}).Schedule(6 * time.Second); len(sch.Kinds) != 0 || err != nil {
			t.Errorf("FaultSpec{Nemesis: %q}.Schedule = %+v, %v; want no faults", none, sch, err)
		}
	}
	if _, err := (FaultSpec{Nemesis: "kill,flood"}).Schedule(6 * time.Second); err == nil {
		t.Error("FaultSpec.Schedule accepted an unknown kind")
	}
}

// fitted fits MinFaults faults, with their quiet times, in Duration when
// that leaves them long enough, and keeps the defaults for long runs.
func TestScheduleFitted(t *testing.T) {
	for _, tc := range []struct {
		d         time.Duration
		minFaults int
		fits      bool
	}{
		{6 * time.Second, 3, true},
		{6 * time.Second, 1, true},
		{12 * time.Second, 9, true},
		{2 * time.Second, 9, false}, // too short: floors of 500ms and 100ms
	} {
		s := Schedule{Duration: tc.d, MinFaults: tc.minFaults}.fitted()
		worst := time.Duration(tc.minFaults) * (s.FaultMax + s.QuietMax)
		switch {
		case s.FaultMin < 500*time.Millisecond || s.FaultMin > s.FaultMax || s.QuietMin < 100*time.Millisecond || s.QuietMin > s.QuietMax:
			t.Errorf("%v for %d faults: %+v", tc.d, tc.minFaults, s)
		case tc.fits && worst > tc.d:
			t.Errorf("%v for %d faults: they may take %v: %+v", tc.d, tc.minFaults, worst, s)
		}
	}
	long := Schedule{Duration: 10 * time.Minute, MinFaults: 3}.fitted()
	def := Schedule{}.withDefaults()
	if long.FaultMin != def.FaultMin || long.FaultMax != def.FaultMax || long.QuietMin != def.QuietMin || long.QuietMax != def.QuietMax {
		t.Errorf("a 10m run: %+v, want the defaults %+v", long, def)
	}
}
