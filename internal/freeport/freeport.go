// Package freeport picks loopback TCP ports for servers in tests and
// benches that must be told their port before they start (a NATS cluster's
// routes name each other's addresses).
//
// The usual trick, listening on 127.0.0.1:0 and closing, returns a port of
// the kernel's ephemeral range: between the close and the server's bind the
// kernel may hand the same port to any process's outgoing connection, and
// the server then cannot listen (seen in CI: a NATS server of a test
// cluster never became ready, its route port taken, while the whole suite
// ran in parallel). Ports below the ephemeral range are never handed out by
// the kernel; only an explicit bind can take them. Take picks its ports
// there, at random, and checks each by listening on it.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// lowest is the lowest port Take hands out.
const lowest = 10000

var (
	mu    sync.Mutex
	given = map[int]bool{} // handed out by this process
)

// Take returns n distinct loopback TCP ports that were free a moment ago,
// outside the kernel's ephemeral range.
func Take(n int) ([]int, error) {
	hi := ephemeralLow()
	if hi-lowest < 1000 {
		return nil, fmt.Errorf("freeport: the ephemeral port range starts at %d; too few ports below it", hi)
	}
	mu.Lock()
	defer mu.Unlock()
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			return nil, errors.New("freeport: no free port below the ephemeral range after 1000 tries")
		}
		p := lowest + rand.IntN(hi-lowest)
		if given[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // in use
		}
		_ = l.Close()
		given[p] = true
		ports = append(ports, p)
	}
	return ports, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return lo
}
