package node_test

import (
	"net"
	"strings"
	"testing"

	"github.com/galenadb/galena/api"
	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/api/writesetpb"
	"github.com/galenadb/galena/node"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// What only a real member shows about bad input (node/rpc's malformed_test.go
// covers each refusal of the KV service; TestBadInputChangesNothing the
// commit refusals on a 3-member cluster): the Galena reason survives the
// wire, a request over the gRPC message limit is refused by gRPC itself, and
// none of it changes the applied state.
func TestBadInputOverTheWire(t *testing.T) {
	c := cluster(t, 1)
	ctx := ctxT(t)
	kv := rawKV(t, c.Endpoints()[0])
	if _, err := kv.Commit(ctx, &galenapb.CommitRequest{WriteSet: &writesetpb.WriteSet{Id: id(), Origin: 1, Writes: []*writesetpb.Write{{Key: []byte("ok")}}}}); err != nil {
		t.Fatal(err)
	}
	before, _ := c.Nodes[0].Digest()
	key := []byte(strings.Repeat("k", 4<<10+1))
	// The member accepts messages up to MaxWriteSetSize (16 MiB) plus 1 MiB.
	huge := &writesetpb.WriteSet{Id: id(), Origin: 1, Writes: []*writesetpb.Write{{Key: []byte("k"), Value: make([]byte, 17<<20+1)}}}
	cases := []struct {
		name   string
		call   func() error
		code   codes.Code
		reason string
	}{
		{"Get: empty key", func() error { _, err := kv.Get(ctx, &galenapb.GetRequest{}); return err }, codes.InvalidArgument, api.ReasonInvalidKey},
		{"Get: key over 4 KiB", func() error { _, err := kv.Get(ctx, &galenapb.GetRequest{Key: key}); return err }, codes.InvalidArgument, api.ReasonTooLarge},
		{"Scan: bound over 4 KiB", func() error { _, err := kv.Scan(ctx, &galenapb.ScanRequest{Start: key}); return err }, codes.InvalidArgument, api.ReasonTooLarge},
		{"Scan: start after end", func() error {
			_, err := kv.Scan(ctx, &galenapb.ScanRequest{Start: []byte("b"), End: []byte("a")})
			return err
		}, codes.InvalidArgument, ""},
		{"Commit: id over 64 bytes", func() error {
			_, err := kv.Commit(ctx, &galenapb.CommitRequest{WriteSet: &writesetpb.WriteSet{Id: make([]byte, 65), Writes: []*writesetpb.Write{{Key: []byte("k")}}}})
			return err
		}, codes.InvalidArgument, api.ReasonInvalidWriteSet},
		{"Commit: over the gRPC message limit", func() error {
			_, err := kv.Commit(ctx, &galenapb.CommitRequest{WriteSet: huge})
			return err
		}, codes.ResourceExhausted, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var reason string
			for _, d := range status.Convert(err).Details() {
				if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == api.ErrorDomain {
					reason = info.GetReason()
				}
			}
			if status.Code(err) != tc.code || reason != tc.reason {
				t.Fatalf("got %v %q (%v), want %v %q", status.Code(err), reason, err, tc.code, tc.reason)
			}
		})
	}
	if after, _ := c.Nodes[0].Digest(); after != before {
		t.Fatal("bad input changed the applied state")
	}
}

// New closes the listener it is given on every error, a configuration it
// refuses included: the port is free again.
func TestNewClosesListenerItRefuses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := node.DefaultConfig()
	cfg.Listener, cfg.DataDir = ln, t.TempDir() // no ID: refused
	if _, err := node.New(cfg); err == nil {
		t.Fatal("New accepted a configuration without an ID")
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		ln.Close()
		t.Fatal("the listener New refused is still open")
	}
}
