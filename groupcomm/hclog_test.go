package groupcomm

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// During an outage raft repeats the same warning about the same peer many
// times a second: the sink logs it once per repeatEvery per peer, then says
// how many it left out; hclog.Fmt arguments are rendered; errors of a
// connection this member closed are not errors.
func TestZapSink(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	now := time.Unix(1000, 0)
	s := newZapSink(zap.New(core), func() time.Time { return now })
	dead := raft.Server{ID: "n3", Address: "127.0.0.1:7003"}
	fail := func(peer raft.Server) {
		s.Accept("raft", hclog.Error, "failed to appendEntries to", "peer", peer, "error", errors.New("dial tcp: connection refused"))
	}
	for range 50 {
		fail(dead)
		now = now.Add(100 * time.Millisecond) // 5 s in all
	}
	fail(raft.Server{ID: "n2"}) // another peer is another line
	if got := logs.FilterMessage("failed to appendEntries to").Len(); got != 2 {
		t.Fatalf("%d lines for 51 failures about two peers within 5 s; want 2", got)
	}
	now = now.Add(repeatEvery)
	fail(dead)
	last := logs.All()[logs.Len()-1]
	if last.ContextMap()["repeated"] != int64(49) {
		t.Fatalf("the next line after %v: %v; want repeated=49", repeatEvery, last.ContextMap())
	}

	s.Accept("raft", hclog.Info, "initial configuration", "servers", hclog.Fmt("%+v", []raft.Server{dead}))
	s.Accept("raft", hclog.Info, "snapshot", "percent", hclog.Fmt("%0.2f%%", 42.5))
	m := logs.All()
	if got, want := m[len(m)-2].ContextMap()["servers"], fmt.Sprintf("%+v", []raft.Server{dead}); got != want {
		t.Errorf("servers = %v; want %q", got, want)
	}
	if got := m[len(m)-1].ContextMap()["percent"]; got != "42.50%" {
		t.Errorf("percent = %v; want 42.50%%", got)
	}

	before := logs.Len()
	closed := &net.OpError{Op: "read", Net: "tcp", Err: net.ErrClosed}
	s.Accept("raft.net", hclog.Error, "failed to decode incoming command", "error", closed)
	s.Accept("raft.net", hclog.Error, "failed to decode incoming command", "error", errors.New("read tcp: use of closed network connection"))
	if logs.Len() != before {
		t.Fatalf("errors of a closed connection were logged: %v", logs.All()[before:])
	}
}
