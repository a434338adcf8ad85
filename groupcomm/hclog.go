package groupcomm

import (
	"errors"
	"fmt"
	"io"

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
	il.RegisterSink(zapSink{lg: lg})
	return il
}

// zapSink receives every hclog line and forwards those at Info and above.
type zapSink struct{ lg *zap.Logger }

func (s zapSink) Accept(name string, level hclog.Level, msg string, args ...interface{}) {
	if level = demote(level, msg, args); level < hclog.Info {
		return
	}
	fields := make([]zap.Field, 0, len(args)/2+1)
	fields = append(fields, zap.String("component", name))
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok {
			fields = append(fields, zap.Any(k, args[i+1]))
		}
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

// demote lowers raft lines that are routine here: errors caused by our own
// shutdown, the first election of a new cluster, which raft reports as a
// missed heartbeat from no leader, and a leader stepping down for a newer
// term, which every leadership transfer ends with.
func demote(level hclog.Level, msg string, args []interface{}) hclog.Level {
	if msg == "peer has newer term, stopping replication" {
		return hclog.Info
	}
	for i := 1; i < len(args); i += 2 {
		if err, ok := args[i].(error); ok && errors.Is(err, raft.ErrTransportShutdown) {
			return hclog.Debug
		}
		if k, _ := args[i-1].(string); k == "last-leader-id" && fmt.Sprint(args[i]) == "" && level == hclog.Warn {
			return hclog.Info
		}
	}
	return level
}
