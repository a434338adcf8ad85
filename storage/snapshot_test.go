package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// checkSameAt checks that a and b answer every read alike at snapshot seq.
func checkSameAt(t *testing.T, a, b *Store, seq uint64, keys, ids []string) {
	t.Helper()
	ka, err := a.Scan(nil, nil, 0, seq)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := b.Scan(nil, nil, 0, seq)
	if err != nil {
		t.Fatal(err)
	}
	if scanString(ka) != scanString(kb) {
		t.Fatalf("Scan@%d: %q vs %q", seq, scanString(ka), scanString(kb))
	}
	for _, k := range keys {
		va, ea := a.Get([]byte(k), seq)
		vb, eb := b.Get([]byte(k), seq)
		if !bytes.Equal(va, vb) || !errors.Is(eb, ea) {
			t.Fatalf("Get(%s)@%d: %q,%v vs %q,%v", k, seq, va, ea, vb, eb)
		}
		sa, oka, erra := a.LatestVersion([]byte(k), seq+1)
		sb, okb, errb := b.LatestVersion([]byte(k), seq+1)
		if sa != sb || oka != okb || erra != nil || errb != nil {
			t.Fatalf("LatestVersion(%s, %d): %d,%v,%v vs %d,%v,%v", k, seq+1, sa, oka, erra, sb, okb, errb)
		}
	}
	for _, id := range ids {
		oa, sa, oka, erra := a.LookupID([]byte(id), seq+1)
		ob, sb, okb, errb := b.LookupID([]byte(id), seq+1)
		if !bytes.Equal(oa, ob) || sa != sb || oka != okb || erra != nil || errb != nil {
			t.Fatalf("LookupID(%s): %q,%d,%v,%v vs %q,%d,%v,%v", id, oa, sa, oka, erra, ob, sb, okb, errb)
		}
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	src := openMem(t)
	history(t, src)
	sn, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	// Writes after the snapshot are not part of it.
	mustApply(t, src, 9, rec(9, "w9", put("a", "a9"), put("e", "e9")))
	var stream bytes.Buffer
	if _, err := sn.WriteTo(&stream); err != nil {
		t.Fatal(err)
	}

	dst := openMem(t)
	mustApply(t, dst, 20, rec(20, "old", put("gone", "x"))) // replaced entirely
	st, err := dst.Import(bytes.NewReader(stream.Bytes()))
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	want := AppliedState{Seqno: 8, MinReadable: 8, Meta: []byte("meta-8")}
	if stateString(st) != stateString(want) || stateString(dst.Applied()) != stateString(want) {
		t.Fatalf("Import = %s, Applied = %s, want %s", stateString(st), stateString(dst.Applied()), stateString(want))
	}
	keys := []string{"a", "b", "c", "d", "e", "gone"}
	ids := []string{"w1", "w3", "w4", "w5", "w9", "old"}
	checkSameAt(t, src, dst, 8, keys, ids)

	tooOld := map[string]func() error{
		"Get":           func() error { _, err := dst.Get([]byte("a"), 7); return err },
		"Scan":          func() error { _, err := dst.Scan(nil, nil, 0, 0); return err },
		"LatestVersion": func() error { _, _, err := dst.LatestVersion([]byte("a"), 8); return err },
		"LookupID":      func() error { _, _, _, err := dst.LookupID([]byte("w1"), 8); return err },
	}
	for name, call := range tooOld {
		if err := call(); !errors.Is(err, ErrSnapshotTooOld) {
			t.Errorf("%s below MinReadable = %v, want ErrSnapshotTooOld", name, err)
		}
	}

	// The imported store continues from the stream's seqno like the source.
	next := rec(9, "w9", put("a", "a9"), put("e", "e9"))
	mustApply(t, dst, 9, next)
	checkSameAt(t, src, dst, 9, keys, ids)
	if got := dst.Applied(); got.MinReadable != 8 {
		t.Fatalf("MinReadable after apply = %d, want 8", got.MinReadable)
	}
}

func TestImportSurvivesReopen(t *testing.T) {
	src := openMem(t)
	history(t, src)
	stream := exportBytes(t, src)
	dir := t.TempDir()
	dst := openDir(t, dir)
	if _, err := dst.Import(bytes.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	if got := dst.Durable(); got.Seqno != 8 || got.MinReadable != 8 {
		t.Fatalf("Durable after Import = %+v", got)
	}
	crash(t, dst) // Import made its state durable itself
	reboot(t, dir)
	dst = openDir(t, dir)
	if got := dst.Applied(); got.Seqno != 8 || got.MinReadable != 8 {
		t.Fatalf("Applied after reopen = %+v", got)
	}
	checkSameAt(t, src, dst, 8, []string{"a", "b", "c", "d"}, []string{"w1", "w4"})
}

func TestImportEmptyStore(t *testing.T) {
	stream := exportBytes(t, openMem(t))
	dst := openMem(t)
	history(t, dst)
	st, err := dst.Import(bytes.NewReader(stream))
	if err != nil || st.Seqno != 0 || st.MinReadable != 0 {
		t.Fatalf("Import = %+v, %v", st, err)
	}
	if kvs, err := dst.Scan(nil, nil, 0, math.MaxUint64); err != nil || len(kvs) != 0 {
		t.Fatalf("Scan = %q, %v", scanString(kvs), err)
	}
}

func TestImportRejectsBadStreams(t *testing.T) {
	src := openMem(t)
	history(t, src)
	good := exportBytes(t, src)
	body := len(streamMagic) + 4 + 8 + 8 + 1 + len("meta-8") // first byte after the header
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x40
		return b
	}
	tests := []struct {
		name      string
		stream    []byte
		untouched bool // header rejected: the store keeps its contents
	}{
		{"empty", nil, true},
		{"bad magic", flip(0), true},
		{"bad format", flip(len(streamMagic) + 3), true},
		{"truncated in header", good[:body-2], true},
		{"truncated after header", good[:body], false},
		{"truncated in an entry", good[:body+5], false},
		{"truncated in the middle", good[:len(good)/2], false},
		{"truncated before checksum", good[:len(good)-4], false},
		{"truncated in checksum", good[:len(good)-1], false},
		{"corrupt key", flip(body + 3), false},
		{"corrupt value", flip(len(good) / 2), false},
		{"corrupt checksum", flip(len(good) - 1), false},
		{"trailing garbage", append(bytes.Clone(good), 0), false},
		{"doubled", append(bytes.Clone(good), good...), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := openMem(t)
			mustApply(t, dst, 30, rec(30, "mine", put("mine", "v")))
			_, err := dst.Import(bytes.NewReader(tc.stream))
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Import = %v, want ErrBadSnapshot", err)
			}
			kvs, serr := dst.Scan(nil, nil, 0, math.MaxUint64)
			if serr != nil {
				t.Fatal(serr)
			}
			if tc.untouched {
				if dst.Applied().Seqno != 30 || scanString(kvs) != "mine=v" {
					t.Fatalf("store changed: %+v %q", dst.Applied(), scanString(kvs))
				}
				return
			}
			if got := dst.Applied(); got.Seqno != 0 || got.MinReadable != 0 || len(kvs) != 0 {
				t.Fatalf("after failed import: Applied = %+v, data %q", got, scanString(kvs))
			}
			if _, _, ok, err := dst.LookupID([]byte("mine"), math.MaxUint64); err != nil || ok {
				t.Fatalf("id after a failed import: stored %v, %v; want absent", ok, err)
			}
			// A good stream still imports afterwards.
			if _, err := dst.Import(bytes.NewReader(good)); err != nil {
				t.Fatalf("Import(good) after failure: %v", err)
			}
		})
	}
}

type failingReader struct {
	r     io.Reader
	after int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("connection reset")
	}
	if len(p) > f.after {
		p = p[:f.after]
	}
	n, err := f.r.Read(p)
	f.after -= n
	return n, err
}

func TestImportReaderError(t *testing.T) {
	src := openMem(t)
	history(t, src)
	good := exportBytes(t, src)
	dst := openMem(t)
	_, err := dst.Import(&failingReader{r: bytes.NewReader(good), after: len(good) / 2})
	if err == nil || errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("Import = %v, want the reader's error", err)
	}
	if dst.Applied().Seqno != 0 {
		t.Fatalf("Applied = %+v", dst.Applied())
	}
}

// A failed import leaves an empty store whose durable state says so, not
// the replaced store's.
func TestFailedImportRecordsEmptyStore(t *testing.T) {
	dir := t.TempDir()
	dst := openDir(t, dir)
	history(t, dst)
	if err := dst.Sync(); err != nil {
		t.Fatal(err)
	}
	own := exportBytes(t, dst)
	if _, err := dst.Import(bytes.NewReader(own[:len(own)-1])); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("Import of a truncated stream = %v", err)
	}
	crash(t, dst)
	dst = openDir(t, dir)
	if got := dst.Applied().Seqno; got != 0 {
		t.Fatalf("Applied after a failed import and a crash = %d, want 0", got)
	}
}

// TestInterruptedImportEmptiesStore simulates a crash during Import: the
// marker file is present when the store is reopened.
func TestInterruptedImportEmptiesStore(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir)
	history(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, importMarkerName), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s = openDir(t, dir)
	kvs, err := s.Scan(nil, nil, 0, math.MaxUint64)
	if s.Applied().Seqno != 0 || err != nil || len(kvs) != 0 {
		t.Fatalf("after interrupted import: Applied %+v, data %q, %v", s.Applied(), scanString(kvs), err)
	}
	if _, err := os.Stat(filepath.Join(dir, importMarkerName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker still present: %v", err)
	}
}

// TestWriteToConcurrentWithApply streams a snapshot while batches overwrite
// and delete the same keys; the stream must be exactly the pinned state.
func TestWriteToConcurrentWithApply(t *testing.T) {
	s := openMem(t)
	const keys = 2000
	val := bytes.Repeat([]byte("x"), 100)
	recs := make([]Record, 0, keys)
	for i := 0; i < keys; i++ {
		recs = append(recs, Record{Seqno: uint64(i + 1), ID: []byte(fmt.Sprint("id", i)),
			Writes: []Write{{Key: []byte(fmt.Sprintf("k%05d", i)), Value: val}}})
	}
	mustApply(t, s, keys, recs...)
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	var want bytes.Buffer
	if _, err := sn.WriteTo(&want); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	var done atomic.Bool
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer done.Store(true)
		seq := uint64(keys)
		for b := 0; b < 50; b++ {
			batch := make([]Record, 0, 40)
			for i := 0; i < 40; i++ {
				seq++
				w := Write{Key: []byte(fmt.Sprintf("k%05d", (b*40+i)%keys)), Value: []byte("new")}
				w.Delete = i%3 == 0
				batch = append(batch, Record{Seqno: seq, ID: []byte(fmt.Sprint("id", seq)), Writes: []Write{w}})
			}
			if err := s.ApplyBatch(batch, AppliedState{Seqno: seq}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var got bytes.Buffer
	for i := 0; i < 2 || !done.Load(); i++ { // stream for as long as batches are applied
		got.Reset()
		if _, err := sn.WriteTo(&got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("stream %d written during ApplyBatch differs from the pinned state", i)
		}
	}
	wg.Wait()
	if s.Applied().Seqno != keys+50*40 {
		t.Fatalf("Applied = %d", s.Applied().Seqno)
	}
}

func TestSnapshotLifecycle(t *testing.T) {
	s := openMem(t)
	history(t, s)
	stream := exportBytes(t, s)
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if got := sn.State(); got.Seqno != 8 || string(got.Meta) != "meta-8" {
		t.Fatalf("State = %+v", got)
	}
	if _, err := s.Import(bytes.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.WriteTo(io.Discard); !errors.Is(err, ErrSnapshotTooOld) {
		t.Fatalf("WriteTo after Import = %v, want ErrSnapshotTooOld", err)
	}
	sn2, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sn2.Release()
	sn2.Release()
	if _, err := sn2.WriteTo(io.Discard); !errors.Is(err, ErrClosed) {
		t.Fatalf("WriteTo after Release = %v, want ErrClosed", err)
	}
}

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.after {
		n := f.after
		f.after = 0
		return n, errors.New("disk full")
	}
	f.after -= len(p)
	return len(p), nil
}

func TestWriteToWriterError(t *testing.T) {
	s := openMem(t)
	mustApply(t, s, 1, rec(1, "", put("k", string(bytes.Repeat([]byte("v"), 200<<10)))))
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	n, err := sn.WriteTo(&failingWriter{after: 100 << 10})
	if err == nil || n > 100<<10 {
		t.Fatalf("WriteTo = %d, %v; want an error", n, err)
	}
}

// TestImportLargeStream imports a stream bigger than one import chunk, then a
// copy corrupted near its end (after chunks were already written).
func TestImportLargeStream(t *testing.T) {
	src := openMem(t)
	val := bytes.Repeat([]byte("v"), 64<<10)
	var recs []Record
	for i := 1; i <= 100; i++ {
		recs = append(recs, Record{Seqno: uint64(i), Writes: []Write{{Key: []byte(fmt.Sprintf("k%03d", i)), Value: val}}})
	}
	mustApply(t, src, 100, recs...)
	stream := exportBytes(t, src)
	if len(stream) <= importChunk {
		t.Fatalf("stream of %d bytes fits in one import chunk", len(stream))
	}
	dst := openMem(t)
	if _, err := dst.Import(bytes.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	// A re-export differs only in MinReadable (header) and so in the checksum.
	again, skip := exportBytes(t, dst), len(streamMagic)+4+16
	if len(again) != len(stream) || !bytes.Equal(again[skip:len(again)-4], stream[skip:len(stream)-4]) {
		t.Fatal("re-export differs")
	}
	bad := bytes.Clone(stream)
	bad[len(bad)-100] ^= 1
	if _, err := dst.Import(bytes.NewReader(bad)); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("Import(corrupt) = %v", err)
	}
	kvs, err := dst.Scan(nil, nil, 0, math.MaxUint64)
	if err != nil || len(kvs) != 0 || dst.Applied().Seqno != 0 {
		t.Fatalf("after failed import: %d keys, %v, %+v", len(kvs), err, dst.Applied())
	}
}
