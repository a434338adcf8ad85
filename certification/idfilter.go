package certification

import (
	"hash/maphash"
	"math"

	"github.com/dgraph-io/ristretto/v2/z"
)

// idFilter says when an id is surely not among those ordered in the window,
// so certification can skip the storage lookup that deduplication would
// otherwise make for every write-set: nearly every id is new.
//
// It is a run of Bloom filters, one per span of seqnos (a quarter of the
// window), dropped whole once their span has left the window. It holds every
// id ordered above floor; a "no" is only trusted when floor is at or below
// the window's start. A false "maybe" costs a storage lookup, never a
// different decision, so the filter needs no agreement between members: its
// hash seed is random.
type idFilter struct {
	window uint64
	span   uint64
	gens   []idGen // oldest first, spans ascending
	floor  uint64  // ids ordered at or below floor may be missing; MaxUint64: unknown
	seed   maphash.Seed
}

type idGen struct {
	start uint64 // first seqno of the span
	bloom *z.Bloom
}

// idFilterFalsePositives is the target rate of "maybe" for an id never seen.
const idFilterFalsePositives = 0.01

func newIDFilter(window uint64) *idFilter {
	return &idFilter{window: window, span: max(window/4, 1), floor: math.MaxUint64, seed: maphash.MakeSeed()}
}

// resume declares that every id ordered after applied will be added.
func (f *idFilter) resume(applied uint64) {
	if len(f.gens) == 0 {
		f.floor = applied
	}
}

// add records id as ordered at seqno; seqnos never decrease across calls.
func (f *idFilter) add(id []byte, seqno uint64) {
	if n := len(f.gens); n == 0 || seqno >= f.gens[n-1].start+f.span {
		f.rotate(seqno)
	}
	f.gens[len(f.gens)-1].bloom.Add(maphash.Bytes(f.seed, id))
}

// rotate starts the span holding seqno and drops spans the window has left.
func (f *idFilter) rotate(seqno uint64) {
	keep := f.gens[:0]
	var spare *z.Bloom
	for _, g := range f.gens {
		if seqno >= f.window && g.start+f.span <= seqno-f.window+1 {
			spare = g.bloom // no id in it can be a duplicate any more
			continue
		}
		keep = append(keep, g)
	}
	if spare == nil {
		spare = z.NewBloomFilter(float64(f.span), idFilterFalsePositives)
	} else {
		spare.Clear()
	}
	f.gens = append(keep, idGen{start: seqno - seqno%f.span, bloom: spare})
}

// absent reports whether id was surely not ordered in the window of a
// write-set ordered at seqno, that is above seqno-window.
func (f *idFilter) absent(id []byte, seqno uint64) bool {
	if seqno <= f.window {
		if f.floor > 0 {
			return false // the window reaches back past what was added
		}
	} else if f.floor > seqno-f.window {
		return false
	}
	h := maphash.Bytes(f.seed, id)
	for _, g := range f.gens {
		if g.bloom.Has(h) {
			return false
		}
	}
	return true
}
