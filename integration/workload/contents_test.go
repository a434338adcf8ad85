package workload

import (
	"fmt"
	"strings"
	"testing"

	"github.com/galenadb/galena/client"
)

// kvs builds contents, in key order, from "key=value" pairs.
func kvs(pairs ...string) []client.KV {
	out := make([]client.KV, 0, len(pairs))
	for _, p := range pairs {
		k, v, _ := strings.Cut(p, "=")
		out = append(out, client.KV{Key: []byte(k), Value: []byte(v)})
	}
	return out
}

// wantDiff fails t unless got is "" when want is empty, or holds every
// string of want when it is not.
func wantDiff(t *testing.T, got string, want ...string) {
	t.Helper()
	if len(want) == 0 && got != "" {
		t.Errorf("found a difference in equal contents: %s", got)
	}
	if len(want) > 0 && got == "" {
		t.Errorf("found no difference, want %q", want)
	}
	for _, w := range want {
		if got != "" && !strings.Contains(got, w) {
			t.Errorf("difference %q does not name %q", got, w)
		}
	}
}

// DiffContents finds every kind of difference between two members'
// contents, also where both hold as many keys, and none between equal ones.
func TestDiffContents(t *testing.T) {
	base := kvs("a=1", "b=2", "c=3")
	for _, tc := range []struct {
		name string
		a, b []client.KV
		want []string // "" when equal
	}{
		{"equal", base, kvs("a=1", "b=2", "c=3"), nil},
		{"both empty", nil, kvs(), nil},
		{"key missing in the middle", base, kvs("a=1", "c=3"), []string{`- "b"="2"`, "3 keys vs 2 keys"}},
		{"key missing at the end", base, kvs("a=1", "b=2"), []string{`- "c"="3"`}},
		{"extra key", base, kvs("a=1", "b=2", "c=3", "d=4"), []string{`+ "d"="4"`}},
		{"extra key first", base, kvs("0=0", "a=1", "b=2", "c=3"), []string{`+ "0"="0"`}},
		{"value differs", base, kvs("a=1", "b=X", "c=3"), []string{`~ "b": "2" -> "X"`, "3 keys vs 3 keys"}},
		{"empty value", base, kvs("a=1", "b=", "c=3"), []string{`~ "b": "2" -> ""`}},
		{"one key for another", base, kvs("a=1", "b=2", "d=3"), []string{`- "c"="3"`, `+ "d"="3"`}},
		{"everything missing", base, nil, []string{`- "a"="1"`, `- "c"="3"`}},
	} {
		t.Run(tc.name, func(t *testing.T) { wantDiff(t, DiffContents(tc.a, tc.b), tc.want...) })
	}
}

// DiffContents lists a bounded number of differences but always reports
// that there are some.
func TestDiffContentsBounded(t *testing.T) {
	var a []string
	for i := range 50 {
		a = append(a, fmt.Sprintf("k%02d=v", i))
	}
	got := DiffContents(kvs(a...), nil)
	if got == "" || strings.Count(got, "- ") > 10 || !strings.Contains(got, "50 keys vs 0 keys") {
		t.Errorf("DiffContents of 50 missing keys = %q", got)
	}
}

// MissingWrites finds an acknowledged write that is missing or holds
// another value, and a definitely failed one that is present, and ignores
// keys the model says nothing about.
func TestMissingWrites(t *testing.T) {
	have := kvs("a=1", "b=2", "extra=?")
	for _, tc := range []struct {
		name string
		want map[string][]byte
		diff []string
	}{
		{"all reflected", map[string][]byte{"a": []byte("1"), "b": []byte("2")}, nil},
		{"nothing acknowledged", nil, nil},
		{"failed write absent", map[string][]byte{"a": []byte("1"), "gone": nil}, nil},
		{"acknowledged write missing", map[string][]byte{"a": []byte("1"), "c": []byte("3")},
			[]string{`"c" missing, want "3"`, "1 acknowledged writes"}},
		{"acknowledged write overwritten", map[string][]byte{"b": []byte("20")},
			[]string{`"b" holds "2", want "20"`}},
		{"failed write present", map[string][]byte{"a": nil},
			[]string{`"a" deleted but holds "1"`}},
		{"several", map[string][]byte{"a": nil, "b": []byte("X"), "c": []byte("3")},
			[]string{"3 acknowledged writes", `"a" deleted`, `"b" holds`, `"c" missing`}},
	} {
		t.Run(tc.name, func(t *testing.T) { wantDiff(t, MissingWrites(have, tc.want), tc.diff...) })
	}
	wantDiff(t, MissingWrites(nil, map[string][]byte{"a": []byte("1")}), `"a" missing`)
}

// compareContents compares every member that was read with the first one
// read, skips the members that were not (nil), and counts what it compared.
func TestCompareContents(t *testing.T) {
	id := func(i int) string { return fmt.Sprintf("n%d", i+1) }
	same := func() []client.KV { return kvs("a=1", "b=2") }
	for _, tc := range []struct {
		name          string
		contents      [][]client.KV
		members, keys int
		diff          []string
	}{
		{"identical", [][]client.KV{same(), same(), same()}, 3, 2, nil},
		{"identical and empty", [][]client.KV{{}, {}, {}}, 3, 0, nil},
		{"member not read", [][]client.KV{same(), nil, same()}, 2, 2, nil},
		{"first member not read", [][]client.KV{nil, same(), same()}, 2, 2, nil},
		{"key missing on one member", [][]client.KV{same(), same(), kvs("a=1")}, 3, 2,
			[]string{`n1 vs n3: 2 keys vs 1 keys: - "b"="2"`}},
		{"value differs on one member", [][]client.KV{same(), kvs("a=1", "b=3"), same()}, 3, 2,
			[]string{`n1 vs n2: 2 keys vs 2 keys: ~ "b": "2" -> "3"`}},
		{"extra key on one member", [][]client.KV{same(), same(), kvs("a=1", "b=2", "c=3")}, 3, 2,
			[]string{`n1 vs n3`, `+ "c"="3"`}},
		{"one member empty", [][]client.KV{same(), {}, same()}, 3, 2,
			[]string{`n1 vs n2: 2 keys vs 0 keys`}},
		{"the first member differs", [][]client.KV{kvs("a=1", "c=2"), same(), same()}, 3, 2,
			[]string{`n1 vs n2`, `n1 vs n3`, `+ "b"="2"`}},
		{"differs behind a member not read", [][]client.KV{nil, same(), kvs("a=1", "b=9")}, 2, 2,
			[]string{`n2 vs n3`, `~ "b"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			members, keys, diff := compareContents(id, tc.contents)
			if members != tc.members || keys != tc.keys {
				t.Errorf("compared %d members holding %d keys, want %d and %d", members, keys, tc.members, tc.keys)
			}
			wantDiff(t, diff, tc.diff...)
		})
	}
}
