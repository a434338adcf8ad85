package node_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/api/writesetpb"
	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/node"
	"github.com/galenadb/galena/node/nodetest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newClient(t *testing.T, eps ...string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Endpoints: eps})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newProbe returns a client of the member at ep alone that reports the
// member's own refusals instead of waiting for a leader.
func newProbe(t *testing.T, ep string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Endpoints: []string{ep}, NoLeaderWait: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// cluster starts an in-process cluster of n members with a leader.
func cluster(t *testing.T, n int) *nodetest.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	c := nodetest.MakeCluster(t, n)
	c.Leader()
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestWritesOnEveryNodeAreSeenEverywhere(t *testing.T) {
	c := cluster(t, 3)
	ctx := ctxT(t)
	eps := c.Endpoints()
	for i, ep := range eps {
		if err := newClient(t, ep).Put(ctx, []byte(fmt.Sprintf("k%d", i)), []byte(ep)); err != nil {
			t.Fatalf("put through %s: %v", ep, err)
		}
	}
	c.EnsureSame()
	for _, ep := range eps {
		cl := newClient(t, ep)
		for i, want := range eps {
			v, err := cl.Get(ctx, []byte(fmt.Sprintf("k%d", i)))
			if err != nil || string(v) != want {
				t.Fatalf("get k%d on %s = %q, %v; want %q", i, ep, v, err, want)
			}
		}
	}
}

func TestFirstCommitterWinsAcrossNodes(t *testing.T) {
	c := cluster(t, 3)
	ctx := ctxT(t)
	eps := c.Endpoints()
	a, b := newClient(t, eps[0]), newClient(t, eps[1])
	if err := a.Put(ctx, []byte("seed"), []byte("0")); err != nil {
		t.Fatal(err)
	}
	c.EnsureSame()

	begin := func(cl *client.Client, read string) *client.Txn {
		tx, err := cl.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Get(ctx, []byte(read)); err != nil {
			t.Fatal(err)
		}
		return tx
	}
	// Same key, same snapshot, different nodes: exactly one commits.
	t1, t2 := begin(a, "seed"), begin(b, "seed")
	t1.Put([]byte("x"), []byte("from-a"))
	t2.Put([]byte("x"), []byte("from-b"))
	_, err1 := t1.Commit(ctx)
	_, err2 := t2.Commit(ctx)
	if err1 != nil {
		t.Fatalf("first committer failed: %v", err1)
	}
	var ce *client.ConflictError
	if !errors.Is(err2, client.ErrConflict) || !errors.As(err2, &ce) || string(ce.Key) != "x" {
		t.Fatalf("second committer: got %v, want a conflict on x", err2)
	}

	// Disjoint keys from one snapshot: both commit.
	t3, t4 := begin(a, "seed"), begin(b, "seed")
	t3.Put([]byte("y1"), []byte("a"))
	t4.Put([]byte("y2"), []byte("b"))
	if _, err := t3.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := t4.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	// Same node, same key, same snapshot: also first committer wins.
	t5, t6 := begin(a, "seed"), begin(a, "seed")
	t5.Put([]byte("z"), []byte("1"))
	t6.Put([]byte("z"), []byte("2"))
	if _, err := t5.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := t6.Commit(ctx); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("same-node second committer: got %v, want ErrConflict", err)
	}
	c.EnsureSame()
	v, err := newClient(t, eps[2]).Get(ctx, []byte("x"))
	if err != nil || string(v) != "from-a" {
		t.Fatalf("x on the third node = %q, %v", v, err)
	}
}

func rawKV(t *testing.T, ep string) galenapb.KVClient {
	t.Helper()
	conn, err := grpc.NewClient(ep, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return galenapb.NewKVClient(conn)
}

func id() []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return b
}

func TestBadInputChangesNothing(t *testing.T) {
	c := cluster(t, 3)
	ctx := ctxT(t)
	kv := rawKV(t, c.Endpoints()[0])
	if _, err := kv.Commit(ctx, &galenapb.CommitRequest{WriteSet: &writesetpb.WriteSet{Id: id(), Origin: 1, Writes: []*writesetpb.Write{{Key: []byte("ok")}}}}); err != nil {
		t.Fatal(err)
	}
	c.EnsureSame()
	before, _ := c.Nodes[0].Digest()
	w := func(k string, v int) *writesetpb.Write {
		return &writesetpb.Write{Key: []byte(k), Value: make([]byte, v)}
	}
	cases := []struct {
		name string
		ws   *writesetpb.WriteSet
		code codes.Code
		msg  string
	}{
		{"no write-set", nil, codes.InvalidArgument, "missing write-set"},
		{"no id", &writesetpb.WriteSet{Writes: []*writesetpb.Write{w("k", 1)}}, codes.InvalidArgument, "id"},
		{"no writes", &writesetpb.WriteSet{Id: id()}, codes.InvalidArgument, "no writes"},
		{"empty key", &writesetpb.WriteSet{Id: id(), Origin: 1, Writes: []*writesetpb.Write{w("", 1)}}, codes.InvalidArgument, "empty key"},
		{"key over 4 KiB", &writesetpb.WriteSet{Id: id(), Origin: 1, Writes: []*writesetpb.Write{w(strings.Repeat("k", 4<<10+1), 1)}}, codes.InvalidArgument, "4096-byte limit"},
		{"value over 1 MiB", &writesetpb.WriteSet{Id: id(), Origin: 1, Writes: []*writesetpb.Write{w("k", 1<<20+1)}}, codes.InvalidArgument, "1048576-byte limit"},
		{"write-set over 16 MiB", &writesetpb.WriteSet{Id: id(), Origin: 1, Writes: func() []*writesetpb.Write {
			var ws []*writesetpb.Write
			for i := 0; i < 16; i++ { // 16 MiB of values plus keys: just over the limit
				ws = append(ws, w(fmt.Sprint("k", i), 1<<20))
			}
			return ws
		}()}, codes.InvalidArgument, "16777216-byte limit"},
		{"snapshot newer than the node has", &writesetpb.WriteSet{Id: id(), Snapshot: 1 << 40, Writes: []*writesetpb.Write{w("k", 1)}}, codes.FailedPrecondition, "not yet applied"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			_, err := kv.Commit(cctx, &galenapb.CommitRequest{WriteSet: tc.ws})
			st, _ := status.FromError(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.msg) {
				t.Fatalf("got %v, want %v containing %q", err, tc.code, tc.msg)
			}
		})
	}
	if _, err := kv.Get(ctx, &galenapb.GetRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("get of empty key: %v", err)
	}
	if _, err := kv.Get(ctx, &galenapb.GetRequest{Key: []byte("k"), Snapshot: 1 << 40}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("get at a future snapshot: %v", err)
	}
	if _, err := kv.Scan(ctx, &galenapb.ScanRequest{Start: []byte("b"), End: []byte("a")}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("scan with start after end: %v", err)
	}
	if after, _ := c.Nodes[0].Digest(); after != before {
		t.Fatal("bad input changed the applied state")
	}
}

func TestGarbageOnThePortIsDropped(t *testing.T) {
	c := cluster(t, 1)
	ep := c.Endpoints()[0]
	// Bytes no protocol on the port recognises: the node closes the connection.
	for _, junk := range []string{"\x00\x01garbage\r\n\r\n", strings.Repeat("x", 70000)} {
		conn, err := net.Dial("tcp", ep)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte(junk))
		conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		// EOF or a reset both mean the node closed it; a timeout means it did not.
		if _, err := io.ReadAll(conn); errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("node did not close a connection carrying %q...: %v", junk[:4], err)
		}
		conn.Close()
	}
	// Garbage behind a valid Raft or forwarding prefix: the node may hold the
	// connection until the peer goes away, but keeps serving.
	for _, junk := range []string{"\xa1not raft at all", "\xa2\x00\x00", "\xa2" + strings.Repeat("\xff", 20)} {
		conn, err := net.Dial("tcp", ep)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte(junk))
		conn.Close()
	}
	if err := newClient(t, ep).Put(ctxT(t), []byte("still"), []byte("alive")); err != nil {
		t.Fatalf("node stopped serving after garbage: %v", err)
	}
}

func TestLeaderLossAndRestartCatchUp(t *testing.T) {
	c := cluster(t, 3)
	ld := c.Leader()
	ctx := ctxT(t)
	eps := c.Endpoints()
	for i := 0; i < 20; i++ {
		if err := newClient(t, eps...).Put(ctx, []byte(fmt.Sprintf("before/%02d", i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	c.Stop(ld)
	var survivors []string
	for i, ep := range eps {
		if i != ld {
			survivors = append(survivors, ep)
		}
	}
	cl := newClient(t, survivors...)
	for i := 0; i < 20; i++ {
		if err := cl.Put(ctx, []byte(fmt.Sprintf("after/%02d", i)), []byte("v")); err != nil {
			t.Fatalf("survivors stopped committing: %v", err)
		}
	}
	c.Start(ld)
	c.EnsureSame()
	kvs := scanAll(t, newClient(t, eps[ld]))
	if len(kvs) != 40 {
		t.Fatalf("restarted node has %d keys, want 40", len(kvs))
	}
}

func scanAll(t *testing.T, cl *client.Client) []client.KV {
	t.Helper()
	var kvs []client.KV
	err := cl.View(ctxT(t), func(tx *client.Txn) (err error) {
		kvs, err = tx.Scan(ctxT(t), nil, nil, 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return kvs
}

func TestConfigValidation(t *testing.T) {
	base := node.DefaultConfig()
	base.ID, base.Addr, base.DataDir = "n1", "127.0.0.1:7001", t.TempDir()
	cases := []struct {
		name string
		edit func(*node.Config)
		want string
	}{
		{"no id", func(c *node.Config) { c.ID = "" }, "id is required"},
		{"bad address", func(c *node.Config) { c.Addr = "nope" }, "address"},
		{"no data dir", func(c *node.Config) { c.DataDir = "" }, "data directory"},
		{"cluster without self", func(c *node.Config) {
			c.InitialCluster, _ = node.ParseInitialCluster("n2=127.0.0.1:7002,n3=127.0.0.1:7003")
		}, "does not list this member"},
		{"self at another address", func(c *node.Config) {
			c.InitialCluster, _ = node.ParseInitialCluster("n1=127.0.0.1:9999")
		}, "but this member's address"},
		{"a part's own setting", func(c *node.Config) { c.Group.LeaderLeaseTimeout = 2 * c.Group.HeartbeatTimeout }, "node: Group: groupcomm: LeaderLeaseTimeout"},
		{"a part's own limit", func(c *node.Config) { c.Txn.MaxInflightBytes = c.Txn.Limits.MaxWriteSetSize - 1 }, "node: Txn: txn: MaxInflightBytes"},
		{"certification's rule", func(c *node.Config) { c.Apply.Certification.IndexSize = 0 }, "node: Apply: certification: IndexSize"},
		{"what the member sets", func(c *node.Config) { c.Group.ID = "n2" }, "Group.ID is set by the member itself, from ID"},
		{"a second data directory", func(c *node.Config) { c.Storage.Dir = "/elsewhere" }, "Storage.Dir is set by the member itself, from DataDir"},
		{"storage in memory", func(c *node.Config) { c.Storage.InMemory = true }, "Storage.InMemory is not supported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.edit(&cfg)
			if _, err := node.New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "n1", "n1=", "=127.0.0.1:1", "n1=nohostport"} {
		if _, err := node.ParseInitialCluster(bad); err == nil {
			t.Fatalf("ParseInitialCluster(%q) accepted it", bad)
		}
	}
}

// A linearizable read on another member, by a client with no session, sees
// every write acknowledged before it began.
func TestLinearizableReadOnAnotherMember(t *testing.T) {
	c := cluster(t, 3)
	ctx := ctxT(t)
	eps := c.Endpoints()
	for i := 0; i < 30; i++ {
		w, r := eps[i%3], eps[(i+1)%3]
		val := []byte(fmt.Sprint(i))
		if err := newClient(t, w).Put(ctx, []byte("reg"), val); err != nil {
			t.Fatal(err)
		}
		reader := newClient(t, r) // a fresh session: no causal hint
		got, err := reader.Get(ctx, []byte("reg"), client.Linearizable())
		if err != nil || string(got) != string(val) {
			t.Fatalf("round %d: linearizable read on %s = %q, %v; want %q written through %s", i, r, got, err, val, w)
		}
		reader.Close()
	}
}

// A member that fails to start says why (New's error) and logs nothing of
// stopping: it never started.
func TestFailedStartLogsNoStop(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	core, logs := observer.New(zapcore.InfoLevel)
	cfg := nodetest.Config(t, "n1", t.TempDir())
	cfg.Addr, cfg.Logger = busy.Addr().String(), zap.New(core)
	cfg.InitialCluster = []node.Peer{{ID: "n1", Addr: cfg.Addr}}
	if n, err := node.New(cfg); err == nil {
		n.Close()
		t.Fatal("a member started on an address in use")
	}
	if logs.FilterMessage("member stopped").Len() != 0 || logs.FilterMessage("member started").Len() != 0 {
		t.Fatalf("a member that failed to start logged %v", logs.All())
	}
}
