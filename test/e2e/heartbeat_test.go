package e2e

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// testTunnelHeartbeats: real agents (one per tunnel transport) keep their
// registration alive with tunnel pings the server counts (docs/api.md).
//
// The check is the server's own count of pings it took as heartbeats
// (croupier_tunnel_heartbeats_total), which does not depend on timing: a
// server that does not count pings never moves it, and the wait fails. The
// Heartbeat RPCs are only logged: an agent calls one after any pong later
// than its 1 s interval, so their number depends on the machine's load.
func testTunnelHeartbeats(t *testing.T, c *cluster) {
	hc := restClient(t, c.certs, false)
	rpcs, pings := metric(t, hc, c.http, heartbeatRPC), metric(t, hc, c.http, tunnelHeartbeats)
	reg := croupierv1.NewRegistryServiceClient(c.conn)
	beats := map[string]map[int64]bool{"agent-a": {}, "agent-b": {}}
	// The server's heartbeat interval is 1 s: wait for three new beats of
	// each agent (the first value seen may predate the window) and six
	// counted pings.
	waitFor(t, 30*time.Second, "three heartbeats of each agent and six counted tunnel pings", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := reg.ListAgents(ctx, &croupierv1.ListAgentsRequest{GameId: "demo", Env: "dev"})
		if err != nil {
			return false
		}
		for _, a := range resp.GetAgents() {
			if seen, ok := beats[a.GetAgentId()]; ok {
				seen[a.GetLastHeartbeat()] = true
			}
		}
		return len(beats["agent-a"]) >= 4 && len(beats["agent-b"]) >= 4 && metric(t, hc, c.http, tunnelHeartbeats)-pings >= 6
	})
	t.Logf("%d pings counted as heartbeats, %d Heartbeat RPCs (after late pongs)",
		metric(t, hc, c.http, tunnelHeartbeats)-pings, metric(t, hc, c.http, heartbeatRPC)-rpcs)
}

// heartbeatRPC matches the server's count of ControlService.Heartbeat calls;
// tunnelHeartbeats its count of tunnel pings taken as heartbeats.
func heartbeatRPC(line string) bool {
	return strings.HasPrefix(line, "grpc_server_handled_total{") && strings.Contains(line, `grpc_method="Heartbeat"`) &&
		strings.Contains(line, `grpc_service="croupier.v1.ControlService"`)
}

func tunnelHeartbeats(line string) bool {
	return strings.HasPrefix(line, `croupier_tunnel_heartbeats_total{tunnel="agents"}`)
}

// metric sums the values of the server's /metrics lines that match.
func metric(t *testing.T, hc *http.Client, addr string, match func(line string) bool) int {
	t.Helper()
	resp, err := hc.Get("https://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !match(line) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		n += int(v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}
