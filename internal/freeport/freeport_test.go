package freeport_test

import (
	"net"
	"strconv"
	"testing"

	"github.com/croupier/croupier/internal/freeport"
)

// TestTake: the ports are distinct, below the ephemeral range (which
// starts at 32768 or above here) and free to listen on.
func TestTake(t *testing.T) {
	ports, err := freeport.Take(20)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p < 10000 || p >= 32768 || seen[p] {
			t.Fatalf("port %d: want distinct ports in [10000, 32768)", p)
		}
		seen[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		_ = l.Close()
	}
	more, err := freeport.Take(5)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range more {
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
	}
}
