package harness

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// lowestPort is the bottom of the range freePorts draws from when it can
// stay below the kernel's ephemeral range.
const lowestPort = 10000

// freePorts returns n distinct loopback ports that were free a moment ago.
//
// A member keeps its port across restarts, and while it is down its peers
// keep dialling it. A port inside the kernel's ephemeral range can then be
// taken as the source port of some outgoing connection (even a TCP
// self-connect of a peer's dial), and the restart fails to bind. So, where
// the range is known (Linux), ports are drawn below it, each checked by
// listening on it; elsewhere they come from listening on port 0.
func freePorts(n int) ([]int, error) {
	low, ok := ephemeralLow()
	if !ok || low <= lowestPort+n {
		return kernelPorts(n)
	}
	seen := make(map[int]bool)
	var ports []int
	for tries := 0; len(ports) < n && tries < 1000; tries++ {
		p := lowestPort + rand.IntN(low-lowestPort)
		if seen[p] {
			continue
		}
		seen[p] = true
		if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
			ln.Close()
			ports = append(ports, p)
		}
	}
	if len(ports) < n {
		return kernelPorts(n)
	}
	return ports, nil
}

// kernelPorts lets the kernel pick: listen on port 0, note the port, close.
func kernelPorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("harness: free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ephemeralLow is the lowest port of the kernel's ephemeral range.
func ephemeralLow() (int, bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, false
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return 0, false
	}
	low, err := strconv.Atoi(fields[0])
	return low, err == nil
}

// ClosedAddr returns a loopback address nothing listened on a moment ago.
func ClosedAddr() (string, error) {
	ports, err := freePorts(1)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])), nil
}
