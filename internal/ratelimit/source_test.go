package ratelimit_test

import (
	"testing"

	"github.com/croupier/croupier/internal/ratelimit"
)

// TestSource: the throttles' address of a client — the host, an IPv6 host
// as its /64, so rotating addresses within one prefix does not reset them
// (the rooms' throttles and the gateway's connect limit count by it).
func TestSource(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:5000":             "127.0.0.1",
		"[2001:db8:1:2:aaaa::1]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:bbbb::9]:80":  "2001:db8:1:2::/64",
		"[::ffff:10.0.0.1]:80":       "::ffff:10.0.0.1",
		"not an address":             "not an address",
		"2001:db8:1:2:cccc::1":       "2001:db8:1:2::/64",
	} {
		if got := ratelimit.Source(addr); got != want {
			t.Errorf("Source(%q) = %q, want %q", addr, got, want)
		}
	}
}
