package certification

import (
	"slices"
	"strings"
)

// index remembers recent committed writes (key → seqno) and the outcomes
// of ids not yet in storage (id → Outcome) so certification rarely reads
// storage. It is a cache: an entry is only dropped once storage holds it
// (seqno <= persisted), so a lookup that misses here and falls back to
// storage gets the same answer. Keys stay while there is room, since most
// write-sets look some up; ids go as soon as storage holds them, since the
// id filter spares nearly every lookup of one.
type index struct {
	max   int
	keys  map[string]uint64
	ids   map[string]Outcome
	order []entry // keys in insertion order, oldest first, for eviction
	head  int     // order[head:] are live
	fresh []entry // ids in insertion order, not yet persisted
}

type entry struct {
	seqno uint64
	key   string
}

func newIndex(max int) *index {
	return &index{max: max, keys: make(map[string]uint64), ids: make(map[string]Outcome)}
}

func (x *index) key(k []byte) (uint64, bool) {
	s, ok := x.keys[string(k)]
	return s, ok
}

func (x *index) id(id []byte) (Outcome, bool) {
	o, ok := x.ids[string(id)]
	return o, ok
}

func (x *index) putKey(k []byte, seqno uint64) {
	ks := string(k) // one copy for the map and the eviction order
	if s, ok := x.keys[ks]; ok && s == seqno {
		return // a write-set that writes a key twice: one entry
	}
	x.keys[ks] = seqno
	x.order = append(x.order, entry{seqno: seqno, key: ks})
}

func (x *index) putID(id []byte, o Outcome) {
	ids := string(id)
	x.ids[ids] = o
	x.fresh = append(x.fresh, entry{seqno: o.Seqno, key: ids})
}

// writtenIn returns the first key in [start, end) (an empty end: no upper
// bound) among the writes after seqno after that the index holds, and the
// seqno of its newest write here. Walking back from the newest write, the
// first time a key is met is its newest write, and entries leave in seqno
// order, so when any write of a key is here its newest is too.
func (x *index) writtenIn(start, end []byte, after uint64) ([]byte, uint64, bool) {
	var first string
	var at uint64
	for i := len(x.order) - 1; i >= x.head && x.order[i].seqno > after; i-- {
		e := x.order[i]
		if e.key < string(start) || (len(end) > 0 && e.key >= string(end)) || (at > 0 && e.key >= first) {
			continue
		}
		first, at = e.key, e.seqno
	}
	if at == 0 {
		return nil, 0, false
	}
	return []byte(first), at, true
}

// recent returns the keys written after seqno after that the index holds,
// each once with the seqno of its newest write here, in key order: for
// write-sets that scanned many ranges, one sort instead of a walk per range.
func (x *index) recent(after uint64) []entry {
	var out []entry
	for i := len(x.order) - 1; i >= x.head && x.order[i].seqno > after; i-- {
		if e := x.order[i]; x.keys[e.key] == e.seqno { // its newest write
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	return out
}

// firstIn is writtenIn over what recent returned.
func firstIn(recent []entry, start, end []byte) ([]byte, uint64, bool) {
	i, _ := slices.BinarySearchFunc(recent, start, func(e entry, k []byte) int { return strings.Compare(e.key, string(k)) })
	if i == len(recent) || (len(end) > 0 && recent[i].key >= string(end)) {
		return nil, 0, false
	}
	return []byte(recent[i].key), recent[i].seqno, true
}

func (x *index) empty() bool { return len(x.order) == x.head && len(x.fresh) == 0 }

// trim evicts the ids at or below persisted, and the oldest keys at or
// below it while the index holds more than max of them. It returns the
// highest seqno of a key it evicted (0 if none).
func (x *index) trim(persisted uint64) (evicted uint64) {
	n := 0
	for _, e := range x.fresh {
		if e.seqno > persisted {
			x.fresh[n] = e
			n++
		} else if o, ok := x.ids[e.key]; ok && o.Seqno == e.seqno {
			delete(x.ids, e.key)
		}
	}
	clear(x.fresh[n:])
	x.fresh = x.fresh[:n]
	for len(x.order)-x.head > x.max && x.order[x.head].seqno <= persisted {
		e := x.order[x.head]
		x.order[x.head] = entry{}
		x.head++
		evicted = max(evicted, e.seqno)
		if s, ok := x.keys[e.key]; ok && s == e.seqno {
			delete(x.keys, e.key)
		}
	}
	if x.head > len(x.order)/2 && x.head > 1024 {
		x.order = append(x.order[:0:0], x.order[x.head:]...)
		x.head = 0
	}
	return evicted
}
