package ratelimit

import (
	"net"
	"net/netip"
)

// Source is a client's address as the throttles count it: the host of
// addr ("host:port" or a bare host), an IPv6 host as its /64 — one
// subscriber's prefix, whose addresses it can rotate at will.
func Source(addr string) string {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() && !ip.Is4In6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.String()
		}
	}
	return host
}
