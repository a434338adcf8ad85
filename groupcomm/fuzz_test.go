package groupcomm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// Fuzz targets for the apply loop's seam with raft: what fsm does with
// committed entries a Deliverer cannot use, and with snapshot streams. Their
// seed corpora (testdata/fuzz/<name>/) run with every `go test`; `go test
// -fuzz` explores further. See .ci/fuzz.

var errUndecodable = errors.New("strict deliverer: undecodable entry")

// strictDeliverer stands in for apply's Applier, which groupcomm
// cannot import: it refuses an entry it cannot decode (here, one that does
// not start with 'w') and records any breach of the Deliverer contract by
// the fsm. Its snapshot stream is 'w' and the applied index (8 bytes); it
// restores the seqno snapshotSeqnoOffset above the index, so that a test
// sees the fsm take the Deliverer's seqno rather than the index.
type strictDeliverer struct {
	applied  Position
	calls    int // Deliver calls
	got      []Entry
	breach   string
	restores int
}

const snapshotSeqnoOffset = 100

func (d *strictDeliverer) Deliver(entries []Entry, last Position) error {
	d.calls++
	prev := d.applied
	for _, e := range entries {
		if e.Index <= d.applied.Index || e.Index < prev.Index || e.Index > last.Index ||
			e.Seqno <= prev.Seqno || e.Seqno > last.Seqno || e.Seqno-e.Index < prev.Seqno-prev.Index {
			d.breach = fmt.Sprintf("entry %+v delivered after %+v, through %+v", e, prev, last)
		}
		prev = Position{Index: e.Index, Seqno: e.Seqno}
		if len(e.Data) == 0 || e.Data[0] != 'w' {
			return fmt.Errorf("%w at index %d", errUndecodable, e.Index)
		}
	}
	for _, e := range entries {
		d.got = append(d.got, Entry{Index: e.Index, Seqno: e.Seqno, Data: bytes.Clone(e.Data)})
	}
	d.applied = last
	return nil
}

func (d *strictDeliverer) Applied() Position { return d.applied }

func (d *strictDeliverer) Snapshot() (Snapshot, error) {
	return arbitratorSnapshot(d.applied.Index), nil
}

func (d *strictDeliverer) Restore(r io.Reader, _ uint64) error {
	d.restores++
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if len(b) != 9 || b[0] != 'w' {
		return fmt.Errorf("%w: snapshot of %d bytes", errUndecodable, len(b))
	}
	idx := binary.BigEndian.Uint64(b[1:])
	d.applied = Position{Index: idx, Seqno: idx + snapshotSeqnoOffset}
	return nil
}

// fatalRecorder is the fatal callback of an fsm under test.
type fatalRecorder struct{ errs []error }

func (r *fatalRecorder) fatal(err error) { r.errs = append(r.errs, err) }

// fuzzBatches reads raft log batches from b, two bytes and a payload per log:
// t's low 2 bits pick the type (command, no-op, barrier, configuration), the
// next 2 a gap before its index, bit 4 ends the batch after it, and bit 5
// makes a command a group commit's entry whose commands are the payload's
// bytes, each after a 'w' (one of 0x00 is empty, which the fsm must
// refuse); n&31 is the payload length.
// It also returns the commands each batched entry was made of.
func fuzzBatches(b []byte) ([][]*raft.Log, map[*raft.Log][][]byte) {
	types := [4]raft.LogType{raft.LogCommand, raft.LogNoop, raft.LogBarrier, raft.LogConfiguration}
	var (
		batches [][]*raft.Log
		cur     []*raft.Log
		idx     uint64
	)
	batched := map[*raft.Log][][]byte{}
	for len(b) >= 2 {
		t, n := b[0], min(int(b[1]&31), len(b)-2)
		idx += 1 + uint64(t>>2&3)
		l := &raft.Log{Index: idx, Type: types[t&3], Data: b[2 : 2+n]}
		if t&0x20 != 0 {
			var cmds [][]byte
			var calls []*appendCall
			for _, c := range l.Data {
				cmd := []byte{'w', c}
				if c == 0 {
					cmd = nil
				}
				cmds, calls = append(cmds, cmd), append(calls, &appendCall{data: cmd})
			}
			l.Data, l.Extensions = encodeBatch(calls), batchExtension
			batched[l] = cmds
		}
		cur = append(cur, l)
		b = b[2+n:]
		if t&0x10 != 0 {
			batches, cur = append(batches, cur), nil
		}
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	return batches, batched
}

// FuzzFSMApplyBatch feeds batches of raft logs to the fsm over a strict
// Deliverer. The fsm never panics; it hands the Deliverer the commands alone,
// in order, a batched entry's one by one, each with the seqno Position
// defines; and the first entry the Deliverer refuses, or a batched entry
// that does not decode, stops it loudly: the fatal callback runs once with
// that error, the applied index stays where it was, waiters and snapshots
// get ErrStopped, and nothing more is delivered.
func FuzzFSMApplyBatch(f *testing.F) {
	f.Add([]byte("\x00\x02w1\x00\x02w2\x10\x02w3"))            // commands in two batches
	f.Add([]byte("\x01\x00\x03\x01x\x05\x02w1\x12\x00"))       // noop, configuration, gap, barrier
	f.Add([]byte("\x10\x02w1\x00\x03bad\x10\x02w3\x10\x02w4")) // refused in the second batch
	f.Add([]byte("\x00\x00"))                                  // an empty command
	f.Add([]byte("\x0c\x01w\x1c\x01w\x0c\x01w\x1c\x05wwwww"))  // wide gaps
	f.Add([]byte("\x00\x02w1\x20\x03abc\x10\x02w2\x30\x02de")) // batched entries
	f.Add([]byte("\x20\x01a\x10\x02w2"))                       // a batch of one: malformed
	f.Add([]byte("\x20\x02a\x00\x10\x02w2"))                   // an empty command in a batch
	f.Fuzz(func(t *testing.T, b []byte) {
		d := &strictDeliverer{}
		var fr fatalRecorder
		fs := newFSM(d, zap.NewNop(), fr.fatal)
		var want []Entry
		var at Position
		stopped := false
		batches, batched := fuzzBatches(b)
		for _, batch := range batches {
			calls, before := d.calls, fs.position().Index
			if resp := fs.ApplyBatch(batch); len(resp) != len(batch) {
				t.Fatalf("%d responses for %d logs", len(resp), len(batch))
			}
			if stopped {
				if d.calls != calls || fs.position().Index != before || len(fr.errs) != 1 {
					t.Fatalf("a stopped fsm delivered again (%d calls, applied %d, %d fatal errors)", d.calls-calls, fs.position().Index, len(fr.errs))
				}
				continue
			}
			// The model: every log moves the seqno on by its index's
			// distance from the previous one, and a batched entry by one
			// more for each command after its first.
			refused, malformed := false, false
			var cmds []Entry
			next := at
			for _, l := range batch {
				seqno := next.Seqno + l.Index - next.Index
				if l.Type == raft.LogCommand {
					data, ok := batched[l]
					if ok {
						malformed = malformed || len(data) < 2 || slices.ContainsFunc(data, func(c []byte) bool { return len(c) == 0 })
					} else {
						data = [][]byte{l.Data}
						refused = refused || len(l.Data) == 0 || l.Data[0] != 'w'
					}
					for i, c := range data {
						cmds = append(cmds, Entry{Index: l.Index, Seqno: seqno + uint64(i), Data: c})
					}
					seqno += uint64(max(len(data), 1) - 1)
				}
				next = Position{Index: l.Index, Seqno: seqno}
			}
			if !refused && !malformed {
				want, at = append(want, cmds...), next
				if got := fs.position().Index; got != next.Index || fs.position().Seqno != next.Seqno || len(fr.errs) != 0 {
					t.Fatalf("applied %d (seqno %d) after a good batch through %+v (fatal: %v)", got, fs.position().Seqno, next, fr.errs)
				}
				continue
			}
			stopped = true
			want := errUndecodable
			if malformed {
				want = errMalformedBatch
			}
			if len(fr.errs) != 1 || !errors.Is(fr.errs[0], want) {
				t.Fatalf("a refused entry gave fatal errors %v; want one wrapping %v", fr.errs, want)
			}
			if fs.position().Index != before {
				t.Fatalf("applied moved from %d to %d on a refused batch", before, fs.position().Index)
			}
			if _, err := fs.waitIndex(context.Background(), before+1, nil); !errors.Is(err, ErrStopped) {
				t.Fatalf("waitIndex on a stopped fsm = %v, want ErrStopped", err)
			}
			if _, err := fs.Snapshot(); !errors.Is(err, ErrStopped) {
				t.Fatalf("Snapshot of a stopped fsm = %v, want ErrStopped", err)
			}
		}
		if d.breach != "" {
			t.Fatal(d.breach)
		}
		if fmt.Sprint(d.got) != fmt.Sprint(want) {
			t.Fatalf("delivered %v, want the commands %v", d.got, want)
		}
	})
}

// FuzzFSMRestore hands fsm.Restore arbitrary streams, on a data member and
// on an arbitrator whose applied index is given. Restore never panics. A
// stream too short for the header, or of another magic, is an error that
// changes nothing; a snapshot at or below the applied index is skipped; an
// arbitrator's snapshot is refused by a data member without stopping it;
// otherwise the Deliverer restores, and a stream it refuses, or one that
// restores another index than its header names, stops the fsm.
func FuzzFSMRestore(f *testing.F) {
	body := append([]byte{'w'}, binary.BigEndian.AppendUint64(nil, 9)...)
	f.Add(uint64(0), append(snapshotHeader(snapshotMagic, 9), body...))
	f.Add(uint64(9), append(snapshotHeader(snapshotMagic, 9), body...))      // already reflected
	f.Add(uint64(0), append(snapshotHeader(snapshotMagic, 9), "garbage"...)) // refused by the Deliverer
	f.Add(uint64(0), snapshotHeader(arbitratorMagic, 5))
	f.Add(uint64(0), snapshotHeader("GLNSNAP2", 5))
	f.Add(uint64(0), []byte(snapshotMagic))
	f.Fuzz(func(t *testing.T, applied uint64, stream []byte) {
		d := &strictDeliverer{applied: Position{Index: applied, Seqno: applied}}
		checkRestore(t, d, false, applied, stream)
		a := &arbitratorState{}
		a.applied.Store(&Position{Index: applied, Seqno: applied})
		checkRestore(t, a, true, applied, stream)
	})
}

func checkRestore(t *testing.T, d Deliverer, arb bool, applied uint64, stream []byte) {
	t.Helper()
	var fr fatalRecorder
	fs := newFSM(d, zap.NewNop(), fr.fatal)
	err := fs.Restore(io.NopCloser(bytes.NewReader(stream)))
	strict, _ := d.(*strictDeliverer)
	unchanged := func(what string) {
		t.Helper()
		if len(fr.errs) != 0 || fs.failed.Load() != nil || fs.position().Index != applied || d.Applied().Index != applied {
			t.Fatalf("%s (arbitrator=%v): fatal %v, applied %d → %d", what, arb, fr.errs, applied, fs.position().Index)
		}
		if strict != nil && strict.restores != 0 {
			t.Fatalf("%s: the Deliverer restored", what)
		}
	}
	hdr := len(snapshotMagic) + 8
	if len(stream) < hdr {
		if err == nil {
			t.Fatal("a stream shorter than the header was accepted")
		}
		unchanged("short stream")
		return
	}
	magic, idx := string(stream[:len(snapshotMagic)]), binary.BigEndian.Uint64(stream[len(snapshotMagic):])
	switch {
	case magic != snapshotMagic && magic != arbitratorMagic:
		if err == nil {
			t.Fatalf("a stream with magic %q was accepted", magic)
		}
		unchanged("bad magic")
	case idx <= applied:
		if err != nil {
			t.Fatalf("a snapshot at %d with %d applied: %v", idx, applied, err)
		}
		unchanged("snapshot already reflected")
	case magic == arbitratorMagic && !arb:
		if !errors.Is(err, errArbitratorSnapshot) {
			t.Fatalf("a data member restoring an arbitrator's snapshot: %v", err)
		}
		unchanged("arbitrator's snapshot")
	case err != nil:
		if strict == nil || !(errors.Is(err, errUndecodable) || errors.Is(err, errSnapshotIndex)) || len(fr.errs) != 1 || fs.failed.Load() == nil {
			t.Fatalf("a failed restore: %v; fatal %v", err, fr.errs)
		}
	default:
		if got := d.Applied(); len(fr.errs) != 0 || fs.position().Index != got.Index || fs.position().Seqno != got.Seqno || got.Index != idx {
			t.Fatalf("after a restore at %d: applied %d (seqno %d), Deliverer's %+v, fatal %v", idx, fs.position().Index, fs.position().Seqno, got, fr.errs)
		}
	}
}

// An arbitrator restoring a snapshot takes its index (arbitratorState.Restore
// says it takes it from the header fsm.Restore read): its applied index, which
// WaitApplied and its own snapshots use, covers the snapshot.
func TestArbitratorRestoreTakesTheIndex(t *testing.T) {
	for _, magic := range []string{snapshotMagic, arbitratorMagic} {
		a := &arbitratorState{}
		fs := newFSM(a, zap.NewNop(), nil)
		if err := fs.Restore(io.NopCloser(bytes.NewReader(append(snapshotHeader(magic, 42), "data"...)))); err != nil {
			t.Fatal(err)
		}
		if a.Applied().Index != 42 || fs.position().Index != 42 {
			t.Fatalf("%s: arbitrator applied %d, fsm applied %d after restoring a snapshot at 42", magic, a.Applied(), fs.position().Index)
		}
	}
}

// FuzzDecodeBatch feeds raw bytes to decodeBatch, as a corrupt log entry
// would: it never panics, and what it accepts is two or more non-empty
// commands, which encodeBatch encodes to bytes that decode to the same.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatch([]*appendCall{{data: []byte("a")}, {data: []byte("bc")}}))
	f.Add([]byte{0x80})            // a varint cut short
	f.Add([]byte{0x05, 'a'})       // a length past the end
	f.Add([]byte{0x00, 0x01, 'a'}) // an empty command
	f.Add([]byte{0x01, 'a'})       // one command
	f.Fuzz(func(t *testing.T, b []byte) {
		var cmds []*appendCall
		err := decodeBatch(b, func(cmd []byte) { cmds = append(cmds, &appendCall{data: cmd}) })
		if err != nil {
			if !errors.Is(err, errMalformedBatch) {
				t.Fatalf("error %v does not wrap errMalformedBatch", err)
			}
			return
		}
		if len(cmds) < 2 || slices.ContainsFunc(cmds, func(c *appendCall) bool { return len(c.data) == 0 }) {
			t.Fatalf("accepted %d commands, some empty, from %x", len(cmds), b)
		}
		var again [][]byte
		if err := decodeBatch(encodeBatch(cmds), func(cmd []byte) { again = append(again, cmd) }); err != nil {
			t.Fatalf("the commands decoded from %x encode to an entry that does not decode: %v", b, err)
		}
		if !slices.EqualFunc(again, cmds, func(x []byte, c *appendCall) bool { return bytes.Equal(x, c.data) }) {
			t.Fatalf("decoded %x, which encodes to other commands", b)
		}
	})
}
