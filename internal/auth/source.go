package auth

import (
	"context"
	"net/netip"
	"strings"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// Source names the network address a call came from, for login throttling
// and the audit log: the gRPC peer's IP, or for REST through the in-process
// gateway (which has no peer) the last x-forwarded-for entry, which the
// gateway appends from the HTTP connection's own remote address — entries a
// client sends itself come before it and are ignored, as is x-forwarded-for
// sent as gRPC metadata. IPv6 addresses are reduced to their /64, the
// smallest block one host usually controls. Empty when unknown.
func Source(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return sourceOf(p.Addr.String())
	}
	xff := metadata.ValueFromIncomingContext(ctx, "x-forwarded-for")
	if len(xff) == 0 {
		return ""
	}
	last := xff[len(xff)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	return sourceOf(strings.TrimSpace(last))
}

// sourceOf normalises "ip", "ip:port" or "[ip]:port".
func sourceOf(addr string) string {
	ap, err := netip.ParseAddrPort(addr)
	ip := ap.Addr()
	if err != nil {
		if ip, err = netip.ParseAddr(addr); err != nil {
			return truncate(addr, 64) // not an IP (a unix socket, bufconn): still one source
		}
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
