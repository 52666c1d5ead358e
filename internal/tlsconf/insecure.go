package tlsconf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// ErrInsecureNotLoopback is returned (wrapped) by CheckInsecureAllowed.
var ErrInsecureNotLoopback = errors.New("plaintext is only allowed on loopback addresses")

// CheckInsecureAllowed refuses plaintext (insecure is true) unless addr is
// a loopback address: 127.0.0.0/8, ::1 or "localhost". It serves both
// listen addresses and dial targets. An empty host (":8443") listens on
// every interface and is refused; other host names are refused without
// resolving them, because what a name resolves to can change after the
// check. Unix sockets never leave the host and are allowed.
func CheckInsecureAllowed(addr string, insecure bool) error {
	if !insecure {
		return nil
	}
	if strings.HasPrefix(addr, "unix:") || strings.HasPrefix(addr, "unix-abstract:") {
		return nil
	}
	host := hostOf(addr)
	if isLoopbackHost(host) {
		return nil
	}
	shown := host
	if shown == "" {
		shown = "all interfaces"
	}
	return fmt.Errorf("%w: %q (%s) is not loopback. Either drop the insecure flag and use TLS "+
		"(\"croupier certs init\" creates development certificates), or bind/dial 127.0.0.1 "+
		"(e.g. 127.0.0.1:%s) and reach it through a TLS-terminating proxy or SSH tunnel",
		ErrInsecureNotLoopback, addr, shown, portOr(addr, "8443"))
}

// hostPortOf reduces a gRPC target ("dns:///host:port",
// "passthrough:///host:port", "dns://resolver/host:port") or a URL
// ("http://host:port/path") to its "host:port" (or bare host) part; a plain
// "host:port" is returned unchanged.
func hostPortOf(addr string) string {
	if !strings.Contains(addr, "://") {
		return addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return addr
	}
	switch u.Scheme {
	case "dns", "passthrough":
		// scheme://[resolver-authority]/endpoint: the endpoint is dialled.
		return strings.TrimPrefix(u.Path, "/")
	}
	return u.Host
}

// hostOf extracts the host of hostPortOf(addr), without IPv6 brackets.
func hostOf(addr string) string {
	hp := hostPortOf(addr)
	if h, _, err := net.SplitHostPort(hp); err == nil {
		return h
	}
	// No port: a bare host, possibly a bracketed IPv6 literal.
	return strings.TrimSuffix(strings.TrimPrefix(hp, "["), "]")
}

func portOr(addr, def string) string {
	if _, p, err := net.SplitHostPort(hostPortOf(addr)); err == nil && p != "" {
		return p
	}
	return def
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return ip.WithZone("").Unmap().IsLoopback()
}
