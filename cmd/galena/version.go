package main

import (
	"fmt"

	"github.com/galenadb/galena/node"
	"github.com/spf13/cobra"
)

// version describes this build: the module's version, the commit it was
// built from and the Go version (as galena_build_info labels them).
func version() string {
	b := node.ThisBuild()
	return fmt.Sprintf("%s %s %s", b.Version, b.Revision, b.GoVersion)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print galena's version, the commit it was built from and the Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "galena %s\n", version())
			return err
		},
	}
}
