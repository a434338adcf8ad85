package rpc

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/galenadb/galena/api"
	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/api/writesetpb"
	"github.com/galenadb/galena/certification"
	"github.com/galenadb/galena/storage"
	"github.com/galenadb/galena/txn"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Fuzz target for what a client may send. Its seed corpus
// (testdata/fuzz/FuzzKVRequest/) runs with every `go test`; `go test -fuzz`
// explores further. See .ci/fuzz. What a forwarding member may send is
// fuzzed in txn (FuzzAdmit).

// reasonCodes is every Galena reason a request can be refused with, and the
// code it travels with.
var reasonCodes = map[string]codes.Code{
	"":                            codes.InvalidArgument,
	api.ReasonInvalidKey:          codes.InvalidArgument,
	api.ReasonTooLarge:            codes.InvalidArgument,
	api.ReasonInvalidWriteSet:     codes.InvalidArgument,
	api.ReasonSnapshotTooOld:      codes.FailedPrecondition,
	api.ReasonSnapshotUnavailable: codes.FailedPrecondition,
	api.ReasonNotPrimary:          codes.Unavailable,
}

// FuzzKVRequest sends the fixture member a Get, Scan or Commit request (rpc
// mod 3) decoded from arbitrary bytes, the member cut off from the majority
// or not. It never panics; a refusal is InvalidArgument, FailedPrecondition
// or Unavailable with the reason that goes with it, never Internal or
// Unknown, and broadcasts nothing; an answer is consistent with the store; a
// commit is broadcast once, as the write-set asked, and the leader's Admit
// agrees with the member's own validation.
func FuzzKVRequest(f *testing.F) {
	add := func(rpc uint8, m proto.Message, cutOff bool) { f.Add(rpc, mustMarshal(f, m), cutOff) }
	add(0, &galenapb.GetRequest{Key: []byte("k15")}, false)
	add(0, &galenapb.GetRequest{Key: []byte("k05"), Snapshot: kvMinReadable, MinSeqno: 3}, false)
	add(0, &galenapb.GetRequest{Key: []byte("k"), Snapshot: kvApplied + 1, Linearizable: true}, false)
	add(0, &galenapb.GetRequest{Key: []byte("k"), AllowStale: true}, true)
	add(1, &galenapb.ScanRequest{Start: []byte("k1"), End: []byte("k2"), Limit: 3}, false)
	add(1, &galenapb.ScanRequest{Start: []byte("b"), End: []byte("a")}, false)
	add(1, &galenapb.ScanRequest{Snapshot: kvMinReadable - 1, Linearizable: true}, true)
	add(2, commitReq(ws1("id", 0, put("k", 1), &writesetpb.Write{Key: []byte("d"), Delete: true})), false)
	add(2, commitReq(ws1("id", kvApplied-kvWindow-1, put("k", 1))), false)
	add(2, &galenapb.CommitRequest{WriteSet: ws1(strings.Repeat("i", 65), 0, put("", 99)), MinSeqno: 99}, false)
	add(2, &galenapb.CommitRequest{}, false)
	st := kvStore(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, rpc uint8, req []byte, cutOff bool) {
		srv, o := kvServer(t, st)
		o.cutOff = cutOff
		var err error
		switch rpc % 3 {
		case 0:
			var r galenapb.GetRequest
			if proto.Unmarshal(req, &r) != nil {
				return
			}
			var resp *galenapb.GetResponse
			if resp, err = srv.Get(ctx, &r); err == nil {
				checkGet(t, st, &r, resp)
			}
		case 1:
			var r galenapb.ScanRequest
			if proto.Unmarshal(req, &r) != nil {
				return
			}
			var resp *galenapb.ScanResponse
			if resp, err = srv.Scan(ctx, &r); err == nil {
				checkScan(t, &r, resp)
			}
		case 2:
			var r galenapb.CommitRequest
			if proto.Unmarshal(req, &r) != nil {
				return
			}
			var resp *galenapb.CommitResponse
			resp, err = srv.Commit(ctx, &r)
			checkCommit(t, srv, o, &r, resp, err)
		}
		if err == nil {
			return
		}
		reason := reasonOf(err)
		if code, ok := reasonCodes[reason]; !ok || status.Code(err) != code {
			t.Fatalf("refused with %v %q (%v); want one of the codes and reasons of bad input", status.Code(err), reason, err)
		}
		if n := len(o.broadcasts()); n != 0 {
			t.Fatalf("a refused request broadcast %d entries", n)
		}
	})
}

func checkGet(t *testing.T, st *storage.Store, r *galenapb.GetRequest, resp *galenapb.GetResponse) {
	t.Helper()
	at := resp.GetSnapshot()
	if want := r.GetSnapshot(); want != 0 && at != want || want == 0 && at != kvApplied {
		t.Fatalf("Get %v served at %d", r, at)
	}
	v, err := st.Get(r.GetKey(), at)
	if resp.GetFound() != (err == nil) || !bytes.Equal(v, resp.GetValue()) {
		t.Fatalf("Get %v = %v; the store has %q, %v", r, resp, v, err)
	}
}

func checkScan(t *testing.T, r *galenapb.ScanRequest, resp *galenapb.ScanResponse) {
	t.Helper()
	kvs := resp.GetKvs()
	if len(kvs) > kvLimits.MaxScanBatch || r.GetLimit() > 0 && len(kvs) > int(r.GetLimit()) {
		t.Fatalf("Scan %v returned %d keys", r, len(kvs))
	}
	if resp.GetMore() && len(kvs) != kvLimits.MaxScanBatch {
		t.Fatalf("Scan %v: more with %d keys", r, len(kvs))
	}
	prev := r.GetStart()
	for i, kv := range kvs {
		k := kv.GetKey()
		if i > 0 && bytes.Compare(k, prev) <= 0 || bytes.Compare(k, r.GetStart()) < 0 ||
			len(r.GetEnd()) > 0 && bytes.Compare(k, r.GetEnd()) >= 0 {
			t.Fatalf("Scan %v returned %q out of order or range", r, k)
		}
		prev = k
	}
}

func checkCommit(t *testing.T, srv *KV, o *stubOrderer, r *galenapb.CommitRequest, resp *galenapb.CommitResponse, err error) {
	t.Helper()
	ws := r.GetWriteSet()
	if ws != nil {
		// The leader admits forwarded entries with the same rules.
		entry, eerr := certification.EncodeEntry(ws)
		if eerr != nil {
			t.Fatalf("EncodeEntry of a decoded write-set: %v", eerr)
		}
		aerr := srv.svc.Admit(entry)
		if refused := status.Code(err) == codes.InvalidArgument; refused != (aerr != nil) {
			t.Fatalf("Commit = %v but Admit = %v", err, aerr)
		}
		if aerr != nil && !errors.Is(aerr, txn.ErrInvalidWriteSet) && !errors.Is(aerr, txn.ErrInvalidKey) && !errors.Is(aerr, txn.ErrTooLarge) {
			t.Fatalf("Admit refused with %v", aerr)
		}
	}
	if err != nil {
		return
	}
	sent := o.broadcasts()
	if len(sent) != 1 || resp.GetOutcome() != galenapb.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("a commit was broadcast %d times, answered %v", len(sent), resp)
	}
	if srv.svc.Admit(sent[0]) != nil {
		t.Fatal("the leader would refuse what the member broadcast")
	}
	var got writesetpb.WriteSet
	if err := certification.DecodeEntry(sent[0], &got); err != nil {
		t.Fatal(err)
	}
	want := proto.Clone(ws).(*writesetpb.WriteSet)
	if want.Snapshot == 0 {
		// The member fills in its applied seqno, in a new WriteSet that
		// drops the request's unknown fields; with a snapshot given, they
		// are passed on. Either way members ignore them.
		want.Snapshot = kvApplied
		want.ProtoReflect().SetUnknown(nil)
	}
	if !proto.Equal(&got, want) {
		t.Fatalf("broadcast %v, want %v", &got, want)
	}
}
