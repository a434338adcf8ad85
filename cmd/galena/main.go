package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop) // a second signal kills at once
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWith(ctx, args, os.Stdin, stdout, stderr)
}

// runWith is run, with the standard input commands read from.
func runWith(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "galena: %v\n", err)
	if code := exitCode(err); code != 2 {
		return code
	}
	if cmd, _, ferr := root.Find(args); ferr == nil {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return 2
}

// runError marks an error returned by a command's own work (exit 1). Every
// other error (cobra's flag, argument and unknown-command errors, and
// usageError) is a usage error (exit 2).
type runError struct{ err error }

func (e runError) Error() string { return e.err.Error() }
func (e runError) Unwrap() error { return e.err }

// usageError is a usage problem a command found itself, e.g. conflicting flags.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func exitCode(err error) int {
	var u usageError
	var r runError
	switch {
	case errors.As(err, &u):
		return 2
	case errors.As(err, &r):
		return 1
	}
	return 2
}

// runE adapts a command's work so its errors count as failures, not usage
// errors, unless it returns a usageError.
func runE(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd, args)
		var u usageError
		if err == nil || errors.As(err, &u) {
			return err
		}
		return runError{err}
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "galena",
		Short:         "Galena: a synchronous multi-master key-value cluster",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.Version = version()
	root.SetVersionTemplate("galena {{.Version}}\n")
	g := addGlobalFlags(root)
	root.AddCommand(
		newPutCmd(g), newGetCmd(g), newDelCmd(g), newScanCmd(g), newWatchCmd(g),
		newStatusCmd(g), newMemberCmd(g), newCheckCmd(g), newBenchCmd(g),
		newBackupCmd(g),
	)
	// The client flags are the root's, for `galena --endpoints X get k`;
	// the help of the commands that use none leaves them out.
	for _, cmd := range []*cobra.Command{newStartCmd(), newDemoCmd(), newRestoreCmd(), newCertCmd(), newVersionCmd()} {
		cmd.SetUsageTemplate(withoutGlobalFlags(root.UsageTemplate()))
		root.AddCommand(cmd)
	}
	return root
}

// withoutGlobalFlags is a usage template without its section of inherited
// (global) flags.
func withoutGlobalFlags(tmpl string) string {
	const open = "{{if .HasAvailableInheritedFlags}}"
	i := strings.Index(tmpl, open)
	if i < 0 {
		return tmpl
	}
	j := strings.Index(tmpl[i:], "{{end}}")
	if j < 0 {
		return tmpl
	}
	return tmpl[:i] + tmpl[i+j+len("{{end}}"):]
}
