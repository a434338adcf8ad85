package groupcomm

import (
	"io"

	"github.com/hashicorp/go-hclog"
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
	if level < hclog.Info {
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
