package rpc

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/galenadb/galena/api"
	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/api/writesetpb"
	"github.com/galenadb/galena/certification"
	"github.com/galenadb/galena/storage"
	"github.com/galenadb/galena/txn"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// The KV service against malformed requests: each is refused with its exact
// code and Galena reason, and changes nothing. (That a refused commit leaves
// no waiter behind is txn's to test.)

// The fixture member: it has applied seqno kvApplied, holds versions from
// kvMinReadable up (older ones were not transferred: it was imported), and
// certifies within kvWindow seqnos.
const (
	kvMinReadable = 10
	kvApplied     = 20
	kvWindow      = 8
)

// kvLimits are small, so that every limit is cheap to cross.
var kvLimits = txn.Limits{MaxKeySize: 16, MaxValueSize: 32, MaxWriteSetSize: 256, MaxScanBatch: 4, MaxReadSetSize: 64}

// stubOrderer is a member at a fixed applied seqno. Its Broadcast records the
// entry and reports the configured verdict without applying anything, so the
// store never changes; a wait for a seqno it has not applied times out at
// once, as CausalWait would.
type stubOrderer struct {
	svc     *txn.Service
	verdict certification.Verdict
	cutOff  bool // not primary: Serving refuses unless stale

	mu   sync.Mutex
	sent [][]byte
}

func (o *stubOrderer) Broadcast(_ context.Context, data []byte) (uint64, error) {
	var ws writesetpb.WriteSet
	if err := certification.DecodeEntry(data, &ws); err != nil {
		return 0, err
	}
	o.mu.Lock()
	o.sent = append(o.sent, bytes.Clone(data))
	o.mu.Unlock()
	o.svc.OnOutcome(ws.GetId(), certification.Outcome{Seqno: kvApplied + 1, Verdict: o.verdict})
	return kvApplied + 1, nil
}

func (o *stubOrderer) WaitApplied(_ context.Context, s uint64) error {
	if s > kvApplied {
		return fmt.Errorf("waiting for seqno %d: %w", s, context.DeadlineExceeded)
	}
	return nil
}

func (o *stubOrderer) Applied() uint64                           { return kvApplied }
func (o *stubOrderer) ReadIndex(context.Context) (uint64, error) { return kvApplied, nil }
func (o *stubOrderer) WaitIndex(ctx context.Context, idx uint64) (uint64, error) {
	return kvApplied, o.WaitApplied(ctx, idx)
}

func (o *stubOrderer) Serving(stale bool) error {
	if o.cutOff && !stale {
		return fmt.Errorf("%w: no leader", txn.ErrNotPrimary)
	}
	return nil
}

func (o *stubOrderer) broadcasts() [][]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.sent
}

// kvStore opens the fixture member's store: keys k00..k09 written at seqnos
// 1..10 on another member and imported (MinReadable 10), then k10..k19 and a
// delete of k00 applied at 11..20.
func kvStore(tb testing.TB) *storage.Store {
	tb.Helper()
	open := func() *storage.Store {
		st, err := storage.Open(storage.Config{InMemory: true})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { st.Close() })
		return st
	}
	apply := func(st *storage.Store, from, to uint64) {
		var recs []storage.Record
		for s := from; s <= to; s++ {
			w := storage.Write{Key: []byte(fmt.Sprintf("k%02d", s-1)), Value: []byte(fmt.Sprint("v", s))}
			recs = append(recs, storage.Record{Seqno: s, ID: []byte(fmt.Sprint("id", s)), Writes: []storage.Write{w}})
		}
		if to == kvApplied {
			recs[len(recs)-1].Writes = append(recs[len(recs)-1].Writes, storage.Write{Key: []byte("k00"), Delete: true})
		}
		if err := st.ApplyBatch(recs, storage.AppliedState{Seqno: to}); err != nil {
			tb.Fatal(err)
		}
	}
	src, st := open(), open()
	apply(src, 1, kvMinReadable)
	sn, err := src.Snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	defer sn.Release()
	var stream bytes.Buffer
	if _, err := sn.WriteTo(&stream); err != nil {
		tb.Fatal(err)
	}
	if _, err := st.Import(&stream); err != nil {
		tb.Fatal(err)
	}
	apply(st, kvMinReadable+1, kvApplied)
	return st
}

// kvState is the fixture member's store as the txn service reads it. No
// stored outcome is ever read: stubOrderer reports every verdict at once.
type kvState struct{ *storage.Store }

func (kvState) Outcome([]byte) (certification.Outcome, bool, error) {
	return certification.Outcome{}, false, nil
}

// kvServer is the KV service of the fixture member over st.
func kvServer(tb testing.TB, st *storage.Store) (*KV, *stubOrderer) {
	tb.Helper()
	cfg := txn.DefaultConfig()
	cfg.Limits, cfg.Window = kvLimits, kvWindow
	o := &stubOrderer{verdict: certification.Commit}
	svc, err := txn.New(cfg, kvState{st}, o)
	if err != nil {
		tb.Fatal(err)
	}
	o.svc = svc
	return NewKV(svc, func() *galenapb.StatusResponse { return &galenapb.StatusResponse{} }), o
}

// storeDump renders the applied state and every live key at every readable
// seqno.
func storeDump(tb testing.TB, st *storage.Store) string {
	tb.Helper()
	var b strings.Builder
	a := st.Applied()
	fmt.Fprintf(&b, "%d %d %x\n", a.Seqno, a.MinReadable, a.Meta)
	for at := a.MinReadable; at <= a.Seqno; at++ {
		kvs, err := st.Scan(nil, nil, 0, at)
		if err != nil {
			tb.Fatal(err)
		}
		for _, kv := range kvs {
			fmt.Fprintf(&b, "%s=%s ", kv.Key, kv.Value)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// reasonOf is the Galena reason an error's status carries, or "".
func reasonOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == api.ErrorDomain {
			return info.GetReason()
		}
	}
	return ""
}

// ws1 is a write-set read at snap; one that read nothing (snap 0) has the
// member's applied seqno as its origin.
func ws1(id string, snap uint64, w ...*writesetpb.Write) *writesetpb.WriteSet {
	ws := &writesetpb.WriteSet{Id: []byte(id), Snapshot: snap, Writes: w}
	if snap == 0 {
		ws.Origin = kvApplied
	}
	return ws
}

// blind is a write-set that read nothing, with origin.
func blind(origin uint64, w ...*writesetpb.Write) *writesetpb.WriteSet {
	return &writesetpb.WriteSet{Id: []byte("id"), Origin: origin, Writes: w}
}

func put(k string, v int) *writesetpb.Write {
	return &writesetpb.Write{Key: []byte(k), Value: bytes.Repeat([]byte("v"), v)}
}

func commitReq(ws *writesetpb.WriteSet) *galenapb.CommitRequest {
	return &galenapb.CommitRequest{WriteSet: ws}
}

func TestMalformedRequestsChangeNothing(t *testing.T) {
	st := kvStore(t)
	before := storeDump(t, st)
	ctx := context.Background()
	long := strings.Repeat("k", kvLimits.MaxKeySize+1)
	manyWrites := func() []*writesetpb.Write { // within every other limit, over the write-set's
		var ws []*writesetpb.Write
		for i := 0; i < 10; i++ {
			ws = append(ws, put(fmt.Sprint("key", i), kvLimits.MaxValueSize))
		}
		return ws
	}
	type call func(*KV, *stubOrderer) error
	get := func(r *galenapb.GetRequest) call {
		return func(s *KV, _ *stubOrderer) error { _, err := s.Get(ctx, r); return err }
	}
	scan := func(r *galenapb.ScanRequest) call {
		return func(s *KV, _ *stubOrderer) error { _, err := s.Scan(ctx, r); return err }
	}
	commit := func(r *galenapb.CommitRequest) call {
		return func(s *KV, _ *stubOrderer) error { _, err := s.Commit(ctx, r); return err }
	}
	cutOff := func(c call) call {
		return func(s *KV, o *stubOrderer) error { o.cutOff = true; return c(s, o) }
	}
	const (
		invalid = codes.InvalidArgument
		precond = codes.FailedPrecondition
		unavail = codes.Unavailable
	)
	cases := []struct {
		name   string
		call   call
		code   codes.Code
		reason string
	}{
		{"Get: nil request", get(nil), invalid, api.ReasonInvalidKey},
		{"Get: empty key", get(&galenapb.GetRequest{Key: []byte{}}), invalid, api.ReasonInvalidKey},
		{"Get: key over the limit", get(&galenapb.GetRequest{Key: []byte(long)}), invalid, api.ReasonTooLarge},
		{"Get: empty key and a future snapshot", get(&galenapb.GetRequest{Snapshot: kvApplied + 1}), invalid, api.ReasonInvalidKey},
		{"Get: snapshot in the future", get(&galenapb.GetRequest{Key: []byte("k"), Snapshot: kvApplied + 1}), precond, api.ReasonSnapshotUnavailable},
		{"Get: snapshot at the end of time", get(&galenapb.GetRequest{Key: []byte("k"), Snapshot: math.MaxUint64}), precond, api.ReasonSnapshotUnavailable},
		{"Get: min_seqno in the future", get(&galenapb.GetRequest{Key: []byte("k"), MinSeqno: kvApplied + 1}), precond, api.ReasonSnapshotUnavailable},
		{"Get: snapshot below what the member holds", get(&galenapb.GetRequest{Key: []byte("k"), Snapshot: kvMinReadable - 1}), precond, api.ReasonSnapshotTooOld},
		{"Get: not primary", cutOff(get(&galenapb.GetRequest{Key: []byte("k")})), unavail, api.ReasonNotPrimary},
		{"Get: not primary, linearizable", cutOff(get(&galenapb.GetRequest{Key: []byte("k"), Linearizable: true})), unavail, api.ReasonNotPrimary},

		{"Scan: start after end", scan(&galenapb.ScanRequest{Start: []byte("b"), End: []byte("a")}), invalid, ""},
		{"Scan: start equals end", scan(&galenapb.ScanRequest{Start: []byte("a"), End: []byte("a")}), invalid, ""},
		{"Scan: start over the limit", scan(&galenapb.ScanRequest{Start: []byte(long)}), invalid, api.ReasonTooLarge},
		{"Scan: end over the limit", scan(&galenapb.ScanRequest{End: []byte(long)}), invalid, api.ReasonTooLarge},
		{"Scan: snapshot in the future", scan(&galenapb.ScanRequest{Snapshot: kvApplied + 1}), precond, api.ReasonSnapshotUnavailable},
		{"Scan: min_seqno in the future", scan(&galenapb.ScanRequest{MinSeqno: math.MaxUint64}), precond, api.ReasonSnapshotUnavailable},
		{"Scan: snapshot below what the member holds", scan(&galenapb.ScanRequest{Snapshot: 1}), precond, api.ReasonSnapshotTooOld},
		{"Scan: not primary", cutOff(scan(&galenapb.ScanRequest{})), unavail, api.ReasonNotPrimary},
		{"Scan: negative limit (Go API)", func(s *KV, _ *stubOrderer) error {
			_, _, _, err := s.svc.Scan(ctx, nil, nil, -1, txn.ReadAt{})
			return toStatus(err)
		}, invalid, ""},

		{"Commit: nil request", commit(nil), invalid, api.ReasonInvalidWriteSet},
		{"Commit: nil write-set", commit(&galenapb.CommitRequest{MinSeqno: 1}), invalid, api.ReasonInvalidWriteSet},
		{"Commit: empty id", commit(commitReq(ws1("", 0, put("k", 1)))), invalid, api.ReasonInvalidWriteSet},
		{"Commit: id over 64 bytes", commit(commitReq(ws1(strings.Repeat("i", 65), 0, put("k", 1)))), invalid, api.ReasonInvalidWriteSet},
		{"Commit: no writes", commit(commitReq(ws1("id", 0))), invalid, api.ReasonInvalidWriteSet},
		{"Commit: an empty list of writes", commit(commitReq(&writesetpb.WriteSet{Id: []byte("id"), Writes: []*writesetpb.Write{}})), invalid, api.ReasonInvalidWriteSet},
		{"Commit: empty key", commit(commitReq(ws1("id", 0, put("", 1)))), invalid, api.ReasonInvalidKey},
		{"Commit: a nil write (Go API)", commit(commitReq(ws1("id", 0, put("k", 1), nil))), invalid, api.ReasonInvalidKey},
		{"Commit: empty key after a good one", commit(commitReq(ws1("id", 0, put("k", 1), &writesetpb.Write{Delete: true}))), invalid, api.ReasonInvalidKey},
		{"Commit: key over the limit", commit(commitReq(ws1("id", 0, put(long, 1)))), invalid, api.ReasonTooLarge},
		{"Commit: value over the limit", commit(commitReq(ws1("id", 0, put("k", kvLimits.MaxValueSize+1)))), invalid, api.ReasonTooLarge},
		{"Commit: delete carrying a value over the limit", commit(commitReq(ws1("id", 0,
			&writesetpb.Write{Key: []byte("k"), Value: make([]byte, kvLimits.MaxValueSize+1), Delete: true}))), invalid, api.ReasonTooLarge},
		{"Commit: write-set over the limit", commit(commitReq(ws1("id", 0, manyWrites()...))), invalid, api.ReasonTooLarge},
		{"Commit: snapshot in the future", commit(commitReq(ws1("id", kvApplied+1, put("k", 1)))), precond, api.ReasonSnapshotUnavailable},
		{"Commit: snapshot at the end of time", commit(commitReq(ws1("id", math.MaxUint64, put("k", 1)))), precond, api.ReasonSnapshotUnavailable},
		{"Commit: min_seqno in the future", commit(&galenapb.CommitRequest{WriteSet: ws1("id", 0, put("k", 1)), MinSeqno: kvApplied + 1}), precond, api.ReasonSnapshotUnavailable},
		{"Commit: snapshot below the certification window", commit(commitReq(ws1("id", kvApplied-kvWindow-1, put("k", 1)))), precond, api.ReasonSnapshotTooOld},
		{"Commit: snapshot 1", commit(commitReq(ws1("id", 1, put("k", 1)))), precond, api.ReasonSnapshotTooOld},
		{"Commit: snapshot 0 without an origin", commit(commitReq(blind(0, put("k", 1)))), invalid, api.ReasonInvalidWriteSet},
		{"Commit: origin below the certification window", commit(commitReq(blind(kvApplied-kvWindow-1, put("k", 1)))), precond, api.ReasonSnapshotTooOld},
		{"Commit: origin in the future", commit(commitReq(blind(kvApplied+1, put("k", 1)))), precond, api.ReasonSnapshotUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, o := kvServer(t, st)
			err := tc.call(srv, o)
			if got := status.Code(err); got != tc.code || reasonOf(err) != tc.reason {
				t.Fatalf("got %v %q (%v), want %v %q", got, reasonOf(err), err, tc.code, tc.reason)
			}
			if n := len(o.broadcasts()); n != 0 {
				t.Fatalf("%d entries broadcast", n)
			}
			if after := storeDump(t, st); after != before {
				t.Fatalf("the store changed:\n%s\nwant\n%s", after, before)
			}
		})
	}
}

// The limits are inclusive, snapshot 0 (which proto3 cannot tell from a
// missing one) means "this member's applied seqno", and a huge scan limit is
// capped: each is served, and a commit is broadcast exactly once, with its
// snapshot resolved.
func TestBoundaryRequestsAreServed(t *testing.T) {
	st := kvStore(t)
	ctx := context.Background()
	key := strings.Repeat("k", kvLimits.MaxKeySize)
	if a, b := mustMarshal(t, &galenapb.GetRequest{Key: []byte("k"), Snapshot: 0}), mustMarshal(t, &galenapb.GetRequest{Key: []byte("k")}); !bytes.Equal(a, b) {
		t.Fatalf("snapshot 0 and no snapshot differ on the wire: %x %x", a, b)
	}
	t.Run("Get: snapshot 0 reads at the applied seqno", func(t *testing.T) {
		srv, _ := kvServer(t, st)
		r, err := srv.Get(ctx, &galenapb.GetRequest{Key: []byte("k15")})
		if err != nil || r.GetSnapshot() != kvApplied || !r.GetFound() || string(r.GetValue()) != "v16" {
			t.Fatalf("got %v, %v", r, err)
		}
	})
	t.Run("Get: key at the limit, at the oldest readable snapshot", func(t *testing.T) {
		srv, _ := kvServer(t, st)
		r, err := srv.Get(ctx, &galenapb.GetRequest{Key: []byte(key), Snapshot: kvMinReadable})
		if err != nil || r.GetSnapshot() != kvMinReadable || r.GetFound() {
			t.Fatalf("got %v, %v", r, err)
		}
	})
	t.Run("Scan: the largest limit is capped at MaxScanBatch", func(t *testing.T) {
		srv, _ := kvServer(t, st)
		r, err := srv.Scan(ctx, &galenapb.ScanRequest{Limit: math.MaxUint32, End: []byte(key)})
		if err != nil || len(r.GetKvs()) != kvLimits.MaxScanBatch || !r.GetMore() || r.GetSnapshot() != kvApplied {
			t.Fatalf("got %v, %v", r, err)
		}
	})
	t.Run("Scan: not primary, stale allowed", func(t *testing.T) {
		srv, o := kvServer(t, st)
		o.cutOff = true
		r, err := srv.Scan(ctx, &galenapb.ScanRequest{Start: []byte("k1"), Limit: 2, AllowStale: true})
		if err != nil || len(r.GetKvs()) != 2 || r.GetMore() || string(r.GetKvs()[0].GetKey()) != "k10" {
			t.Fatalf("got %v, %v", r, err)
		}
	})
	for _, tc := range []struct {
		name string
		ws   *writesetpb.WriteSet
		snap uint64 // the snapshot the broadcast write-set carries
	}{
		{"Commit: snapshot 0", ws1("id", 0, put("k", 1)), kvApplied},
		{"Commit: id of 64 bytes, key and value at the limits", ws1(strings.Repeat("i", 64), kvApplied, put(key, kvLimits.MaxValueSize)), kvApplied},
		{"Commit: the oldest snapshot in the window", ws1("id", kvApplied-kvWindow, put("k", 0)), kvApplied - kvWindow},
		{"Commit: the oldest origin in the window", blind(kvApplied-kvWindow, put("k", 0)), kvApplied},
		{"Commit: a key written twice", ws1("id", 0, put("k", 1), &writesetpb.Write{Key: []byte("k"), Delete: true}), kvApplied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, o := kvServer(t, st)
			r, err := srv.Commit(ctx, commitReq(tc.ws))
			if err != nil || r.GetOutcome() != galenapb.Outcome_OUTCOME_COMMITTED || r.GetSeqno() != kvApplied+1 {
				t.Fatalf("got %v, %v", r, err)
			}
			sent := o.broadcasts()
			if len(sent) != 1 {
				t.Fatalf("%d entries broadcast, want 1", len(sent))
			}
			want := proto.Clone(tc.ws).(*writesetpb.WriteSet)
			want.Snapshot = tc.snap
			var got writesetpb.WriteSet
			if err := certification.DecodeEntry(sent[0], &got); err != nil || !proto.Equal(&got, want) {
				t.Fatalf("broadcast %v, %v; want %v", &got, err, want)
			}
		})
	}
}

// Every verdict the apply loop can report maps to one answer.
func TestCommitVerdicts(t *testing.T) {
	st := kvStore(t)
	for _, tc := range []struct {
		verdict certification.Verdict
		outcome galenapb.Outcome
		code    codes.Code
		reason  string
	}{
		{certification.Commit, galenapb.Outcome_OUTCOME_COMMITTED, codes.OK, ""},
		{certification.Conflict, galenapb.Outcome_OUTCOME_CONFLICT, codes.OK, ""},
		{certification.TooOld, 0, codes.FailedPrecondition, api.ReasonSnapshotTooOld},
		{certification.InvalidSnapshot, 0, codes.InvalidArgument, api.ReasonInvalidWriteSet},
		{certification.InvalidWriteSet, 0, codes.InvalidArgument, api.ReasonInvalidWriteSet},
	} {
		t.Run(tc.verdict.String(), func(t *testing.T) {
			srv, o := kvServer(t, st)
			o.verdict = tc.verdict
			r, err := srv.Commit(context.Background(), commitReq(ws1("id", 0, put("k", 1))))
			if status.Code(err) != tc.code || reasonOf(err) != tc.reason || r.GetOutcome() != tc.outcome {
				t.Fatalf("got %v, %v %q (%v); want %v, %v %q", r.GetOutcome(), status.Code(err), reasonOf(err), err, tc.outcome, tc.code, tc.reason)
			}
		})
	}
}

func mustMarshal(tb testing.TB, m proto.Message) []byte {
	tb.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
