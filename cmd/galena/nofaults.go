//go:build !faults

package main

import (
	"github.com/galenadb/galena/node"
	"github.com/spf13/pflag"
)

func addFaultFlags(*pflag.FlagSet, *startFlags) {}

func applyFaults(startFlags, *node.Config) error { return nil }
