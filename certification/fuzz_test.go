package certification

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/galenadb/galena/api/writesetpb"
	"google.golang.org/protobuf/proto"
)

// Fuzz targets for what a member decodes from the log (apply has the one
// for whole batches). Their seed corpora (testdata/fuzz/<name>/) run with
// every `go test`; `go test -fuzz` explores further. See .ci/fuzz.

func mustEncode(tb testing.TB, w *writesetpb.WriteSet) []byte {
	tb.Helper()
	b, err := EncodeEntry(w)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzDecodeEntry feeds arbitrary bytes to every decoder of log entries and
// stored outcomes. None may panic; a write-set that decodes re-encodes to a
// canonical form that decodes to an equal message; a checkpoint that decodes
// re-encodes to the same bytes; and a decoded write-set certifies to a known
// verdict whose stored form round-trips.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(mustEncode(f, ws("id", 3, "k")))
	f.Add(mustEncode(f, &writesetpb.WriteSet{Id: []byte("del"), Snapshot: 1 << 40, Writes: []*writesetpb.Write{{Key: []byte("k"), Delete: true}}}))
	f.Add(mustEncode(f, &writesetpb.WriteSet{}))
	f.Add(EncodeCheckpoint("n1", Checkpoint{Seqno: 4096, Digest: [32]byte{1, 2, 3}}))
	f.Add(EncodeOutcome(Outcome{Seqno: 9, Verdict: Conflict, Key: []byte("k"), KeySeqno: 7}))
	f.Add([]byte{entryWriteSet, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkWriteSetEntry(t, b)
		checkCheckpointEntry(t, b)
		if o, err := DecodeOutcome(b); err == nil {
			checkOutcomeRoundTrip(t, o)
		}
	})
}

func checkWriteSetEntry(t *testing.T, b []byte) {
	var w writesetpb.WriteSet
	if err := DecodeEntry(b, &w); err != nil {
		if !errors.Is(err, ErrMalformedEntry) {
			t.Fatalf("DecodeEntry error %v is not ErrMalformedEntry", err)
		}
		return
	}
	if IsCheckpoint(b) {
		t.Fatalf("%x decodes both as a write-set and as a checkpoint", b)
	}
	again, err := EncodeEntry(&w)
	if err != nil {
		t.Fatalf("EncodeEntry of a decoded write-set: %v", err)
	}
	var w2 writesetpb.WriteSet
	if err := DecodeEntry(again, &w2); err != nil || !proto.Equal(&w, &w2) {
		t.Fatalf("re-encoded write-set decodes to %v, %v; want %v", &w2, err, &w)
	}
	if third, _ := EncodeEntry(&w2); !bytes.Equal(third, again) {
		t.Fatalf("encoding is not deterministic:\n%x\n%x", again, third)
	}
	// Certify at the seqno after its snapshot (the commit path), if there is one.
	seqno := w.GetSnapshot() + 1
	if seqno == 0 {
		seqno = math.MaxUint64
	}
	c, err := NewCertifier(testConfig(64, 4), newMemStore())
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.Certify(&w, seqno)
	if err != nil {
		t.Fatalf("Certify on a store that cannot fail: %v", err)
	}
	if o.Verdict < Commit || o.Verdict > InvalidWriteSet || o.Seqno != seqno {
		t.Fatalf("Certify = %+v", o)
	}
	checkOutcomeRoundTrip(t, o)
}

func checkCheckpointEntry(t *testing.T, b []byte) {
	member, cp, err := DecodeCheckpoint(b)
	if err != nil {
		if !errors.Is(err, ErrMalformedEntry) {
			t.Fatalf("DecodeCheckpoint error %v is not ErrMalformedEntry", err)
		}
		return
	}
	if !IsCheckpoint(b) {
		t.Fatalf("%x decodes as a checkpoint but IsCheckpoint is false", b)
	}
	if again := EncodeCheckpoint(member, cp); !bytes.Equal(again, b) {
		t.Fatalf("checkpoint re-encodes to %x, want %x", again, b)
	}
}

func checkOutcomeRoundTrip(t *testing.T, o Outcome) {
	got, err := DecodeOutcome(EncodeOutcome(o))
	o.Duplicate = false // not part of the stored form
	if err != nil || got.Seqno != o.Seqno || got.Verdict != o.Verdict || !bytes.Equal(got.Key, o.Key) || got.KeySeqno != o.KeySeqno {
		t.Fatalf("outcome %+v round-trips to %+v, %v", o, got, err)
	}
}
