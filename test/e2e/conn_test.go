package e2e

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// An agent with the default transport (auto) takes the conn transport (the
// tunnel's frames straight on a TLS connection to the server's gRPC port),
// serves calls, and its tunnel comes back when the server restarts on the
// same port. (`--transport conn` is covered by the cluster test.)
func TestAgentConnTransport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := newControlPlane(t)
	c.issueAgent("agent-c")
	// The server by name and no --tls-server-name: the tunnel's TLS checks
	// the name gRPC checks (localhost).
	_, port, _ := net.SplitHostPort(c.grpc)
	p := start(t, "agent-c", bins.croupier, "agent", "--log-format", "json", "--agent-id", "agent-c", "--game-id", "demo", "--env", "dev",
		"--server", "localhost:"+port, "--sdk-addr", "127.0.0.1:0", "--gse-addr", "127.0.0.1:0",
		"--data-dir", c.dir, "--reconnect-max", "1s", "--tls-ca", filepath.Join(c.certs, "ca.crt"),
		"--tls-cert", filepath.Join(c.certs, "agent-c.crt"), "--tls-key", filepath.Join(c.certs, "agent-c.key"))
	ev := p.waitLog("croupier agent started", 30*time.Second)
	if tr := ev["transport"]; tr != "auto" {
		t.Fatalf("agent started with transport %v, want the default, auto", tr)
	}
	c.agents["agent-c"], c.sdk["agent-c"] = p, ev["sdk"].(string)
	c.startGame("gs-c1", "agent-c", "player.get,game.stats")
	c.waitInstances("game.stats", 1)
	targeted := &croupierv1.InvokeOptions{RoutingMode: "targeted", TargetAgent: "agent-c"}
	for range 5 {
		if got := servedBy(c.mustInvoke("game.stats", nil, targeted).GetResult()); got != "gs-c1" {
			t.Fatalf("served by %q, want gs-c1", got)
		}
	}
	// The tunnel is not a gRPC stream: the server started none.
	streams := func(line string) bool {
		return strings.HasPrefix(line, "grpc_server_started_total{") && strings.Contains(line, `grpc_method="Connect"`)
	}
	if n := metric(t, restClient(t, c.certs, false), c.http, streams); n != 0 {
		t.Fatalf("the server started %d TunnelService/Connect streams; the agent should take the conn transport", n)
	}

	grpcAddr, httpAddr, tunnelAddr := c.grpc, c.http, c.tunnel
	c.server.stop()
	c.startServer(grpcAddr, httpAddr, tunnelAddr)
	c.waitInstances("game.stats", 1)
	if got := servedBy(c.mustInvoke("game.stats", nil, targeted).GetResult()); got != "gs-c1" {
		t.Fatalf("after the server's restart served by %q, want gs-c1", got)
	}
	// A restart is no reason to leave the conn transport.
	if n := metric(t, restClient(t, c.certs, false), c.http, streams); n != 0 {
		t.Fatalf("after the restart the server started %d TunnelService/Connect streams; the agent should stay on the conn transport", n)
	}
}
