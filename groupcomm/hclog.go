package groupcomm

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// newRaftLogger routes hashicorp/raft's hclog output into zap.
func newRaftLogger(lg *zap.Logger) hclog.Logger {
	il := hclog.NewInterceptLogger(&hclog.LoggerOptions{
		Name:   "raft",
		Output: io.Discard,
		Level:  hclog.Info,
	})
	il.RegisterSink(newZapSink(lg, time.Now))
	return il
}

// repeatEvery is how often the same warning or error of raft about the
// same peer is logged while it repeats: during an outage raft retries a
// dead peer many times a second, and elections fail over and over.
const repeatEvery = 30 * time.Second

// zapSink receives every hclog line and forwards those at Info and above,
// rendering hclog.Fmt arguments, and each repeated warning or error at
// most once per repeatEvery, with how many it left out.
type zapSink struct {
	lg  *zap.Logger
	now func() time.Time

	mu      sync.Mutex
	repeats map[string]*repeat // message and peer → when last logged
}

type repeat struct {
	logged  time.Time
	skipped int
}

func newZapSink(lg *zap.Logger, now func() time.Time) *zapSink {
	return &zapSink{lg: lg, now: now, repeats: make(map[string]*repeat)}
}

func (s *zapSink) Accept(name string, level hclog.Level, msg string, args ...interface{}) {
	if level = demote(level, msg, args); level < hclog.Info {
		return
	}
	skipped := 0
	if level >= hclog.Warn {
		var ok bool
		if skipped, ok = s.due(msg, peerOf(args)); !ok {
			return // before the fields are built: most repeats are dropped
		}
	}
	fields := make([]zap.Field, 0, len(args)/2+3)
	fields = append(fields, zap.String("component", name))
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok {
			fields = append(fields, field(k, args[i+1]))
		}
	}
	if skipped > 0 {
		fields = append(fields, zap.Int("repeated", skipped), zap.Duration("over", repeatEvery))
	}
	switch {
	case level >= hclog.Error:
		s.lg.Error(msg, fields...)
	case level == hclog.Warn:
		s.lg.Warn(msg, fields...)
	default:
		s.lg.Info(msg, fields...)
	}
}

// due reports whether msg about peer is to be logged now, and how many
// times it was left out since it last was.
func (s *zapSink) due(msg, peer string) (skipped int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := msg + "\x00" + peer
	now := s.now()
	r := s.repeats[key]
	if r != nil && now.Sub(r.logged) < repeatEvery {
		r.skipped++
		return 0, false
	}
	if r == nil {
		for k, old := range s.repeats { // forget what stopped repeating
			if now.Sub(old.logged) >= repeatEvery && old.skipped == 0 {
				delete(s.repeats, k)
			}
		}
		r = &repeat{}
		s.repeats[key] = r
	}
	skipped, r.logged, r.skipped = r.skipped, now, 0
	return skipped, true
}

// peerOf is the peer a raft line is about, "" when none.
func peerOf(args []interface{}) string {
	for i := 0; i+1 < len(args); i += 2 {
		switch k, _ := args[i].(string); k {
		case "peer", "target", "from", "address", "id":
			if srv, ok := args[i+1].(raft.Server); ok {
				return string(srv.ID)
			}
			return fmt.Sprint(args[i+1])
		}
	}
	return ""
}

// field is one hclog argument as a zap field: hclog.Fmt values (raft's
// "%+v" and "%0.2f%%") rendered, not shown as their format and operands.
func field(k string, v interface{}) zap.Field {
	if f, ok := v.(hclog.Format); ok && len(f) > 0 {
		if format, ok := f[0].(string); ok {
			return zap.String(k, fmt.Sprintf(format, f[1:]...))
		}
	}
	return zap.Any(k, v)
}

// demote lowers raft lines that are routine here: errors caused by our own
// shutdown (a transport or connection closed under raft), the first
// election of a new cluster, which raft reports as a missed heartbeat from
// no leader, and a leader stepping down for a newer term, which every
// leadership transfer ends with.
func demote(level hclog.Level, msg string, args []interface{}) hclog.Level {
	if msg == "peer has newer term, stopping replication" {
		return hclog.Info
	}
	for i := 1; i < len(args); i += 2 {
		if err, ok := args[i].(error); ok && closedUnderRaft(err) {
			return hclog.Debug
		}
		if k, _ := args[i-1].(string); k == "last-leader-id" && fmt.Sprint(args[i]) == "" && level == hclog.Warn {
			return hclog.Info
		}
	}
	return level
}

// closedUnderRaft reports whether err comes of a transport or connection
// this member closed (raft's codec does not always wrap the read error).
func closedUnderRaft(err error) bool {
	return errors.Is(err, raft.ErrTransportShutdown) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(err.Error(), "use of closed network connection")
}
