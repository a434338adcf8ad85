package storage

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func changesString(cs []Change) string {
	var b strings.Builder
	for _, c := range cs {
		if c.Delete {
			fmt.Fprintf(&b, "%d:-%s ", c.Seqno, c.Key)
		} else {
			fmt.Fprintf(&b, "%d:%s=%s ", c.Seqno, c.Key, c.Value)
		}
	}
	return strings.TrimSpace(b.String())
}

func mustChanges(t *testing.T, s *Store, start, end string, after, upTo uint64, maxBytes int) (string, uint64) {
	t.Helper()
	cs, through, err := s.Changes([]byte(start), []byte(end), after, upTo, maxBytes)
	if err != nil {
		t.Fatalf("Changes(%q, %q, %d, %d): %v", start, end, after, upTo, err)
	}
	return changesString(cs), through
}

// Changes lists each write-set's writes in the range, in seqno then key
// order, deletes included, aborted write-sets and ids left out.
func TestChanges(t *testing.T) {
	s := openMem(t)
	history(t, s)
	tests := []struct {
		start, end  string
		after, upTo uint64
		want        string
	}{
		{"", "", 0, 8, "1:a=a1 1:b=b1 3:a=a3 3:-b 3:c=c3 5:-a 5:b=b5 7:a=a7 7:d=d7"},
		{"a", "b", 0, 8, "1:a=a1 3:a=a3 5:-a 7:a=a7"},
		{"b", "", 1, 8, "3:-b 3:c=c3 5:b=b5 7:d=d7"},
		{"", "", 3, 5, "5:-a 5:b=b5"},
		{"", "", 5, 6, ""},
		{"e", "", 0, 8, ""},
	}
	for _, tc := range tests {
		if got, through := mustChanges(t, s, tc.start, tc.end, tc.after, tc.upTo, 1<<20); got != tc.want || through != tc.upTo {
			t.Errorf("Changes(%q, %q, %d, %d) = %q through %d; want %q through %d",
				tc.start, tc.end, tc.after, tc.upTo, got, through, tc.want, tc.upTo)
		}
	}
	if _, _, err := s.Changes(nil, nil, 0, 9, 1<<20); err == nil {
		t.Fatal("Changes up to seqno 9 with 8 applied succeeded")
	}
}

// WrittenIn finds the first key of a range whose latest version below a
// seqno is above another, deletes included.
func TestWrittenIn(t *testing.T) {
	s := openMem(t)
	history(t, s) // 1: a b; 3: a -b c; 5: -a b; 7: a d
	for _, tc := range []struct {
		start, end    string
		after, before uint64
		want          string // key@seqno, or "" for none
	}{
		{"", "", 0, 9, "a@7"},
		{"b", "", 5, 9, "d@7"},       // b's latest is 5, c's 3
		{"a", "b", 3, 5, ""},         // a at 3 is not after 3
		{"a", "b", 3, 6, "a@5"},      // a delete is a write
		{"b", "d", 3, 9, "b@5"},      // end excluded
		{"c", "d", 3, 9, ""},         // c only at 3
		{"", "", 7, 8, ""},           // nothing between 7 and 8
		{"a", "", 0, 2, "a@1"},       // versions at or above before are ignored
		{"e", "", 0, 100, ""},        // past every key
		{"", "a\x00", 6, 100, "a@7"}, // a range of one key
	} {
		key, seqno, ok, err := s.WrittenIn([]byte(tc.start), []byte(tc.end), tc.after, tc.before)
		got := ""
		if ok {
			got = fmt.Sprintf("%s@%d", key, seqno)
		}
		if err != nil || got != tc.want {
			t.Errorf("WrittenIn(%q, %q, %d, %d) = %q, %v; want %q", tc.start, tc.end, tc.after, tc.before, got, err, tc.want)
		}
	}
}

// A small budget cuts between seqnos, never inside one, and following the
// cuts reads every change once.
func TestChangesCutBetweenSeqnos(t *testing.T) {
	s := openMem(t)
	history(t, s)
	var all []string
	after, calls := uint64(0), 0
	for after < 8 {
		got, through := mustChanges(t, s, "", "", after, 8, 1)
		if through <= after {
			t.Fatalf("Changes after %d made no progress (through %d)", after, through)
		}
		for _, c := range strings.Fields(got) {
			if !strings.HasPrefix(c, fmt.Sprint(through)+":") {
				t.Fatalf("Changes after %d through %d returned %q: more than one seqno with a 1-byte budget", after, through, got)
			}
		}
		all = append(all, got)
		after, calls = through, calls+1
	}
	want := "1:a=a1 1:b=b1 3:a=a3 3:-b 3:c=c3 5:-a 5:b=b5 7:a=a7 7:d=d7"
	// Seqnos 1, 3, 5 and 7, then the empty rest up to 8.
	if got := strings.Join(strings.Fields(strings.Join(all, " ")), " "); got != want || calls != 5 {
		t.Fatalf("cut changes joined = %q in %d calls; want %q in 5", got, calls, want)
	}
}

// The cut also holds when the budget is crossed in the middle of the scan,
// which goes in key order.
func TestChangesCutWhileScanning(t *testing.T) {
	s := openMem(t)
	for n := uint64(1); n <= 200; n++ {
		mustApply(t, s, n, rec(n, "", put(fmt.Sprintf("k%03d", n%50), strings.Repeat("v", 100)),
			put(fmt.Sprintf("k%03d", (n+25)%50), strings.Repeat("w", 100))))
	}
	after, seen := uint64(0), 0
	for after < 200 {
		cs, through, err := s.Changes(nil, nil, after, 200, 2000)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range cs {
			if c.Seqno <= after || c.Seqno > through || (i > 0 && c.Seqno < cs[i-1].Seqno) {
				t.Fatalf("change at seqno %d outside (%d, %d] or out of order", c.Seqno, after, through)
			}
		}
		if len(cs)%2 != 0 {
			t.Fatalf("%d changes after %d: a seqno was split", len(cs), after)
		}
		seen += len(cs)
		after = through
	}
	if seen != 400 {
		t.Fatalf("read %d changes in all, want 400", seen)
	}
}

// History before an import, or discarded by retention, is refused with
// ErrSnapshotTooOld; HistoryFloor says where it starts.
func TestChangesFloor(t *testing.T) {
	src := openMem(t)
	history(t, src)
	dst := openMem(t)
	if _, err := dst.Import(bytes.NewReader(exportBytes(t, src))); err != nil {
		t.Fatal(err)
	}
	if f := dst.HistoryFloor(); f != 8 {
		t.Fatalf("HistoryFloor after an import at 8 = %d", f)
	}
	if _, _, err := dst.Changes(nil, nil, 7, 8, 1<<20); !errors.Is(err, ErrSnapshotTooOld) {
		t.Fatalf("Changes after 7 on a store imported at 8: %v, want ErrSnapshotTooOld", err)
	}
	mustApply(t, dst, 9, rec(9, "", put("e", "e9")))
	if got, _ := mustChanges(t, dst, "", "", 8, 9, 1<<20); got != "9:e=e9" {
		t.Fatalf("Changes after the imported seqno = %q, want only what followed it", got)
	}

	s := openCfg(t, Config{Dir: t.TempDir(), Retain: 10, memTableSize: 64 << 10})
	overwrite(t, s, 1, 50)
	if f := s.HistoryFloor(); f != 40 {
		t.Fatalf("HistoryFloor at 50 with Retain 10 = %d, want 40", f)
	}
	compact(t, s)
	if _, _, err := s.Changes(nil, nil, 39, 50, 1<<20); !errors.Is(err, ErrSnapshotTooOld) {
		t.Fatalf("Changes after 39 with history from 40: %v, want ErrSnapshotTooOld", err)
	}
	cs, _, err := s.Changes(nil, nil, 40, 50, 1<<20)
	if err != nil || len(cs) != 10 {
		t.Fatalf("Changes after 40 after compaction = %d changes, %v; want 10", len(cs), err)
	}
	for i, c := range cs {
		if c.Seqno != uint64(41+i) || string(c.Value) != value(c.Seqno) {
			t.Fatalf("change %d = seqno %d value %.8q, want seqno %d value %.8q", i, c.Seqno, c.Value, 41+i, value(uint64(41+i)))
		}
	}

	w := openCfg(t, Config{InMemory: true, Window: 16})
	withIDs(t, w, 1, 40)
	if f := w.HistoryFloor(); f != 40-16 {
		t.Fatalf("HistoryFloor at 40 with a window of 16 = %d, want 24", f)
	}
}
