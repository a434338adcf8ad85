package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"testing"

	"go.uber.org/zap"
)

// Fuzz targets for Import, which reads what another member sends. Their seed
// corpora (testdata/fuzz/<name>/) run with every `go test`; `go test -fuzz`
// explores further. See .ci/fuzz.
//
// What a failed Import promises (Import's doc comment): a stream whose header
// is invalid changes nothing; any later failure leaves the store empty with
// Applied().Seqno == 0. Either way the error is ErrBadSnapshot (a
// bytes.Reader never fails) and the store stays usable.

// importFixture is one small in-memory store kept across execs, brought back
// to the baseline (history() applied) whenever an exec changed it.
type importFixture struct {
	s    *Store
	good []byte // a valid stream: history() exported at seqno 8
	base string // dump of the baseline
}

// goodHeader is the length of the good stream's header.
const goodHeader = len(streamMagic) + 4 + 8 + 8 + 1 + len("meta-8")

func newImportFixture(tb testing.TB) *importFixture {
	tb.Helper()
	// Fuzz targets may not log through tb: the stores log nowhere. A small
	// memtable keeps the DropAll of a failed import cheap.
	src := openCfg(tb, Config{InMemory: true, Logger: zap.NewNop()})
	history(tb, src)
	s := openCfg(tb, Config{InMemory: true, Logger: zap.NewNop(), memTableSize: 1 << 16})
	fx := &importFixture{s: s, good: exportBytes(tb, src)}
	fx.reset(tb)
	fx.base = fx.dump(tb)
	return fx
}

// reset brings the store back to the baseline. Only a failed import empties
// a store down to the zero applied state, so one is used to empty it.
func (fx *importFixture) reset(tb testing.TB) {
	tb.Helper()
	if fx.s.Applied().Seqno != 0 {
		if _, err := fx.s.Import(bytes.NewReader(fx.good[:goodHeader])); !errors.Is(err, ErrBadSnapshot) {
			tb.Fatalf("Import(header only) = %v", err)
		}
	}
	history(tb, fx.s)
}

// dump renders everything a reader can see: the applied state, the live keys
// at every seqno of history() and the ids' outcomes.
func (fx *importFixture) dump(tb testing.TB) string {
	tb.Helper()
	var b bytes.Buffer
	st := fx.s.Applied()
	fmt.Fprintf(&b, "%s\n", stateString(st))
	for _, at := range []uint64{st.MinReadable, st.Seqno, math.MaxUint64} {
		kvs, err := fx.s.Scan(nil, nil, 0, at)
		if err != nil {
			tb.Fatalf("Scan at %d: %v", at, err)
		}
		fmt.Fprintf(&b, "@%d: %s\n", at, scanString(kvs))
	}
	for _, id := range []string{"w1", "w3", "w4", "w5"} {
		o, seq, ok, err := fx.s.LookupID([]byte(id), math.MaxUint64)
		if err != nil {
			tb.Fatalf("LookupID(%s): %v", id, err)
		}
		fmt.Fprintf(&b, "%s=%q@%d,%v\n", id, o, seq, ok)
	}
	return b.String()
}

// header parses a stream header as the package comment describes it; ok is
// false when Import must refuse the stream without changing anything.
func header(b []byte) (st AppliedState, ok bool) {
	const fixed = len(streamMagic) + 4 + 8 + 8
	if len(b) < fixed || string(b[:len(streamMagic)]) != streamMagic ||
		binary.BigEndian.Uint32(b[len(streamMagic):]) != streamFormat {
		return st, false
	}
	st.Seqno = binary.BigEndian.Uint64(b[fixed-16:])
	st.MinReadable = st.Seqno // Import's rule
	n, k := binary.Uvarint(b[fixed:])
	if k <= 0 || n > maxMetaSize || n > uint64(len(b)-fixed-k) {
		return st, false
	}
	if n > 0 {
		st.Meta = b[fixed+k : fixed+k+int(n)]
	}
	return st, true
}

// checkImport imports b into the fixture and checks the outcome against
// Import's contract. It reports whether the import succeeded.
func (fx *importFixture) checkImport(t *testing.T, b []byte) bool {
	t.Helper()
	got, err := fx.s.Import(bytes.NewReader(b))
	want, hdrOK := header(b)
	if err == nil {
		if !hdrOK {
			t.Fatalf("Import accepted a stream with an invalid header")
		}
		if stateString(got) != stateString(want) || stateString(fx.s.Applied()) != stateString(want) {
			t.Fatalf("Import = %s, Applied = %s; want %s", stateString(got), stateString(fx.s.Applied()), stateString(want))
		}
		fx.dump(t) // readable
		exportBytes(t, fx.s)
		fx.reset(t)
		return true
	}
	if !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("Import of a malformed stream = %v, want ErrBadSnapshot", err)
	}
	if !hdrOK {
		if d := fx.dump(t); d != fx.base {
			t.Fatalf("a stream refused at its header changed the store:\n%s\nwant\n%s", d, fx.base)
		}
		return false
	}
	if st := fx.s.Applied(); st.Seqno != 0 || st.MinReadable != 0 || st.Meta != nil {
		t.Fatalf("after a failed import Applied = %s, want the zero state", stateString(st))
	}
	for _, at := range []uint64{0, 8, math.MaxUint64} {
		if kvs, err := fx.s.Scan(nil, nil, 0, at); err != nil || len(kvs) != 0 {
			t.Fatalf("after a failed import Scan@%d = %q, %v; want an empty, readable store", at, scanString(kvs), err)
		}
	}
	for _, id := range []string{"w1", "w4"} {
		if _, _, ok, err := fx.s.LookupID([]byte(id), math.MaxUint64); ok || err != nil {
			t.Fatalf("after a failed import LookupID(%s) = %v, %v", id, ok, err)
		}
	}
	fx.reset(t)
	return false
}

// FuzzImport imports arbitrary bytes (seeded with a real export and damaged
// copies of it): never a panic; a failure is ErrBadSnapshot and leaves the
// store as Import documents; a success installs the header's state.
func FuzzImport(f *testing.F) {
	fx := newImportFixture(f)
	good := fx.good
	f.Add(good)
	f.Add(good[:goodHeader])
	f.Add(good[:len(good)-1])
	f.Add(append(bytes.Clone(good), 0))
	f.Add([]byte(streamMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		fx.checkImport(t, b)
	})
}

// FuzzImportCorrupted damages a real export (one byte xor-ed, then the tail
// cut): every damaged stream is refused — the checksum and the trailer catch
// what the parser does not — and the store is left as Import documents.
func FuzzImportCorrupted(f *testing.F) {
	fx := newImportFixture(f)
	f.Add(uint16(0), byte(0x40), uint16(0))                          // magic
	f.Add(uint16(len(streamMagic)+3), byte(1), uint16(0))            // format
	f.Add(uint16(len(streamMagic)+4), byte(0xff), uint16(0))         // seqno
	f.Add(uint16(goodHeader-len("meta-8")-1), byte(0x7f), uint16(0)) // meta length
	f.Add(uint16(goodHeader+2), byte(0x80), uint16(0))               // an entry's key
	f.Add(uint16(len(fx.good)-5), byte(1), uint16(0))                // the entry count
	f.Add(uint16(0), byte(0), uint16(1))                             // checksum cut
	f.Add(uint16(0), byte(0), uint16(len(fx.good)-goodHeader))       // just the header
	f.Fuzz(func(t *testing.T, at uint16, xor byte, cut uint16) {
		b := bytes.Clone(fx.good)
		b[int(at)%len(b)] ^= xor
		b = b[:len(b)-int(cut)%len(b)]
		if bytes.Equal(b, fx.good) {
			if !fx.checkImport(t, b) {
				t.Fatal("the intact stream was refused")
			}
			return
		}
		if fx.checkImport(t, b) {
			t.Fatalf("a damaged stream (byte %d ^ %#x, %d bytes cut) was imported", int(at)%len(fx.good), xor, int(cut)%len(fx.good))
		}
	})
}
