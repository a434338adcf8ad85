package txn

import (
	"bytes"
	"strings"
	"testing"

	"github.com/galenadb/galena/api/writesetpb"
	"github.com/galenadb/galena/certification"
	"google.golang.org/protobuf/proto"
)

// Fuzz target for what a forwarding member may send. Its seed corpus
// (testdata/fuzz/FuzzAdmit/) runs with every `go test`; `go test -fuzz`
// explores further. See .ci/fuzz. The KV service's requests are fuzzed in
// node/rpc.

// FuzzAdmit is the leader's check of entries other members forward, which
// anyone reaching the port can send: it never panics, and whatever it admits
// decodes as a checkpoint or a write-set within the limits.
func FuzzAdmit(f *testing.F) {
	e := func(ws *writesetpb.WriteSet) []byte {
		b, err := certification.EncodeEntry(ws)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	one := []*writesetpb.Write{{Key: []byte("k"), Value: []byte("v")}}
	f.Add(e(&writesetpb.WriteSet{Id: []byte("id"), Snapshot: 3, Writes: one}))
	f.Add(e(&writesetpb.WriteSet{Id: []byte(strings.Repeat("i", 65)), Origin: 20, Writes: one}))
	f.Add(e(&writesetpb.WriteSet{Id: []byte("id"), Origin: 20}))
	f.Add(certification.EncodeCheckpoint("n1", certification.Checkpoint{Seqno: 4096}))
	f.Add([]byte{2, 0})
	f.Add([]byte{1, 0xff})
	cfg := DefaultConfig()
	cfg.Limits = Limits{MaxKeySize: 16, MaxValueSize: 32, MaxWriteSetSize: 256, MaxScanBatch: 4, MaxReadSetSize: 64}
	svc, err := New(cfg, nil, nil) // Admit reads no state and orders nothing
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := svc.Admit(b); err != nil {
			return
		}
		if certification.IsCheckpoint(b) {
			// Admitted, it is the one encoding of what it says.
			member, cp, err := certification.DecodeCheckpoint(b)
			if err != nil || !bytes.Equal(certification.EncodeCheckpoint(member, cp), b) {
				t.Fatalf("admitted a checkpoint that is not its own encoding (%v)", err)
			}
			return
		}
		var ws writesetpb.WriteSet
		if err := certification.DecodeEntry(b, &ws); err != nil {
			t.Fatalf("admitted an entry that does not decode: %v", err)
		}
		if svc.validate(&ws) != nil || proto.Size(&ws) > cfg.Limits.MaxWriteSetSize {
			t.Fatalf("admitted an invalid write-set %v", &ws)
		}
	})
}
