package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/galenadb/galena/node"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// startFlags are the flags of `galena start`.
type startFlags struct {
	id, addr, data, initialCluster string
	logLevel, logFormat            string
	heartbeatTimeout               time.Duration
	electionTimeout                time.Duration
	peerRoute                      string // fault builds only
}

func newStartCmd() *cobra.Command {
	var f startFlags
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Run a cluster member until SIGINT or SIGTERM",
		Long: `Run a cluster member until SIGINT or SIGTERM.

Every member listed in --initial-cluster bootstraps the same configuration on
its first start; restarting with the same --data resumes from its stored state.`,
		Example: `  galena start --id n1 --addr 127.0.0.1:7001 --data /var/lib/galena/n1 \
    --initial-cluster n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.id, "id", "", "unique member id, e.g. n1 (required)")
	fl.StringVar(&f.addr, "addr", "127.0.0.1:7001", "host:port to listen on and advertise to peers and clients")
	fl.StringVar(&f.data, "data", "", "data directory, created if absent (required)")
	fl.StringVar(&f.initialCluster, "initial-cluster", "", "every voting member of a new cluster: id=host:port,... (required)")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.logFormat, "log-format", "console", "console or json")
	d := node.DefaultConfig()
	fl.DurationVar(&f.heartbeatTimeout, "heartbeat-timeout", d.HeartbeatTimeout, "Raft heartbeat timeout")
	fl.DurationVar(&f.electionTimeout, "election-timeout", d.ElectionTimeout, "Raft election timeout")
	addFaultFlags(fl, &f)
	return cmd
}

// config validates the flags and builds the member's configuration. It
// touches nothing on disk; every error is a usage error.
func (f startFlags) config(logOut io.Writer) (node.Config, error) {
	cfg := node.DefaultConfig()
	cfg.ID, cfg.Addr, cfg.DataDir = f.id, f.addr, f.data
	switch {
	case f.id == "":
		return cfg, usagef("--id is required")
	case f.data == "":
		return cfg, usagef("--data is required")
	case f.initialCluster == "":
		return cfg, usagef("--initial-cluster is required (e.g. %s=%s for a single member)", f.id, f.addr)
	}
	var err error
	if cfg.InitialCluster, err = node.ParseInitialCluster(f.initialCluster); err != nil {
		return cfg, usagef("--initial-cluster: %w", err)
	}
	if err := f.timeouts(&cfg); err != nil {
		return cfg, err
	}
	if err := applyFaults(f, &cfg); err != nil {
		return cfg, usageError{err}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usageError{err}
	}
	lvl, err := zapcore.ParseLevel(f.logLevel)
	if err != nil {
		return cfg, usagef("--log-level: %w", err)
	}
	if cfg.Logger, err = newLogger(lvl, f.logFormat, logOut); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// timeouts sets the Raft timeouts from the flags. The leader lease is
// shortened to half the heartbeat timeout when it would exceed it.
func (f startFlags) timeouts(cfg *node.Config) error {
	switch {
	case f.heartbeatTimeout <= 0:
		return usagef("--heartbeat-timeout must be positive, got %v", f.heartbeatTimeout)
	case f.electionTimeout <= 0:
		return usagef("--election-timeout must be positive, got %v", f.electionTimeout)
	}
	cfg.HeartbeatTimeout, cfg.ElectionTimeout = f.heartbeatTimeout, f.electionTimeout
	if cfg.LeaderLeaseTimeout > cfg.HeartbeatTimeout {
		cfg.LeaderLeaseTimeout = cfg.HeartbeatTimeout / 2
	}
	return nil
}

// newLogger builds the zap logger of a member, writing to w in format
// console or json.
func newLogger(lvl zapcore.LevelEnabler, format string, w io.Writer) (*zap.Logger, error) {
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch format {
	case "console":
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	case "json":
		enc = zapcore.NewJSONEncoder(ec)
	default:
		return nil, usagef("--log-format must be console or json, got %q", format)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)), nil
}

// serve runs a member until ctx is done (exit 0) or its apply loop fails
// (exit 1).
func serve(ctx context.Context, cfg node.Config) error {
	lg := cfg.Logger
	defer lg.Sync()
	n, err := node.New(cfg)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		lg.Info("signal received, stopping")
		if err := n.Close(); err != nil {
			return fmt.Errorf("stop: %w", err)
		}
		return nil
	case ferr := <-n.Fatal():
		lg.Error("apply loop failed, stopping", zap.Error(ferr))
		return errors.Join(fmt.Errorf("member failed: %w", ferr), n.Close())
	}
}
