package certification

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// A resumed Certifier looks new ids up in storage only while its window
// reaches back before the restart, and still finds every duplicate: in its
// index, or in storage when the index has let it go.
func TestIDFilterSparesStorageLookups(t *testing.T) {
	const window = 400
	st := &countingStore{memStore: newMemStore()}
	st.ids["before-restart"] = Outcome{Seqno: 5, Verdict: Commit}
	c, err := NewCertifier(testConfig(window, 4), st)
	if err != nil {
		t.Fatal(err)
	}
	c.Resume(10)
	seqno := uint64(10)
	next := func(id string) Outcome {
		seqno++
		return certifyAndStore(t, c, st.memStore, ws(id, seqno-1, fmt.Sprint("k", seqno)), seqno)
	}
	for i := 0; i < window-10; i++ { // the window still reaches back to the restart
		next(fmt.Sprint("early", i))
	}
	if st.idReads != window-10 {
		t.Fatalf("%d id lookups in storage while the window reaches before the restart, want %d", st.idReads, window-10)
	}
	if o := next("before-restart"); !o.Duplicate || o.Seqno != 5 {
		t.Fatalf("resent id from before the restart: %+v, want the duplicate of seqno 5", o)
	}
	for i := 0; i < window; i++ {
		next(fmt.Sprint("late", i))
	}
	reads := st.idReads
	var resend string
	var resendAt uint64
	for i := 0; i < 4*window; i++ {
		id := fmt.Sprint("new", i)
		if o := next(id); i == 3*window+10 {
			resend, resendAt = id, o.Seqno
		}
	}
	// The filter's hash seed is random: allow ten times the expected share
	// of false "maybe"s.
	if extra := st.idReads - reads; extra > 4*window/10 {
		t.Fatalf("%d id lookups in storage for %d new ids, want at most 10%%", extra, 4*window)
	}
	// resend left the index long ago but is still in the window.
	if o := next(resend); !o.Duplicate || o.Seqno != resendAt {
		t.Fatalf("resent id inside the window: %+v, want the duplicate of seqno %d", o, resendAt)
	}
	// "late0" is out of the window: a new write-set.
	if o := next("late0"); o.Duplicate || o.Verdict != Commit {
		t.Fatalf("resent id beyond the window: %+v, want a fresh commit", o)
	}
}

// The filter never rules out an id added within the window, whatever the
// pace of seqnos, and forgets spans the window has left.
func TestIDFilterNeverMissesAnIDInTheWindow(t *testing.T) {
	for _, window := range []uint64{1, 3, 64, 1000} {
		f := newIDFilter(window)
		f.resume(0)
		rng := rand.New(rand.NewPCG(1, window))
		type added struct {
			id    []byte
			seqno uint64
		}
		var log []added
		seqno := uint64(0)
		for i := 0; i < 5000; i++ {
			seqno += 1 + rng.Uint64N(3)
			id := fmt.Appendf(nil, "id-%d", i)
			f.add(id, seqno)
			log = append(log, added{id, seqno})
			probe := seqno + rng.Uint64N(window+1)
			for j := len(log) - 1; j >= 0 && log[j].seqno+window > probe; j-- {
				if f.absent(log[j].id, probe) {
					t.Fatalf("window %d: id added at %d ruled out at %d", window, log[j].seqno, probe)
				}
			}
		}
		if len(f.gens) > 6 {
			t.Fatalf("window %d: %d spans kept, want at most 6", window, len(f.gens))
		}
		maybe := 0
		for i := 0; i < 1000; i++ {
			if !f.absent(fmt.Appendf(nil, "never-%d", i), seqno+1) {
				maybe++
			}
		}
		if maybe > 100 { // about 3% expected with these small filters
			t.Fatalf("window %d: %d of 1000 ids never added were not ruled out", window, maybe)
		}
	}
}

// Until it is resumed, and after a resume that follows its first id, the
// filter rules nothing out.
func TestIDFilterUnknownFloor(t *testing.T) {
	f := newIDFilter(8)
	if f.absent([]byte("x"), 100) {
		t.Fatal("an unresumed filter ruled an id out")
	}
	f.resume(50)
	if f.absent([]byte("x"), 55) {
		t.Fatal("ruled an id out while the window reaches before the resume")
	}
	if !f.absent([]byte("x"), 59) {
		t.Fatal("did not rule out an id once the window is past the resume")
	}
}
