//go:build faults

package main

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/galenadb/galena/node"
	"github.com/spf13/pflag"
)

// Fault builds (go build -tags faults) add --peer-route, which sends this
// member's connections to chosen peers through other addresses: the fault
// tests put a controllable proxy on every link between members; and
// --fault-diverge-at, which makes the member certify wrongly from a seqno on,
// as a bug would, to show that divergence is detected. Release builds have no
// such flags.

func addFaultFlags(fl *pflag.FlagSet, f *startFlags) {
	fl.StringVar(&f.peerRoute, "peer-route", "", "fault tests: dial peer addresses through others: peer=via,...")
	fl.Uint64Var(&f.divergeAt, "fault-diverge-at", 0, "fault tests: from this seqno on, record commits as conflicts (0: never)")
}

func applyFaults(f startFlags, cfg *node.Config) error {
	cfg.Apply.Faults.DivergeAt = f.divergeAt
	if f.peerRoute == "" {
		return nil
	}
	routes := map[string]string{}
	for _, part := range strings.Split(f.peerRoute, ",") {
		peer, via, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || peer == "" || via == "" {
			return fmt.Errorf("--peer-route entry %q is not peer=via", part)
		}
		routes[peer] = via
	}
	cfg.PeerDial = func(addr string, timeout time.Duration) (net.Conn, error) {
		if via, ok := routes[addr]; ok {
			addr = via
		}
		return net.DialTimeout("tcp", addr, timeout)
	}
	return nil
}
