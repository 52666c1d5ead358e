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
// registration alive with tunnel pings the server counts; they make no
// Heartbeat RPC while the server counts their pings (docs/api.md).
func testTunnelHeartbeats(t *testing.T, c *cluster) {
	hc := restClient(t, c.certs, false)
	before := heartbeatRPCs(t, hc, c.http)
	reg := croupierv1.NewRegistryServiceClient(c.conn)
	beats := map[string]map[int64]bool{"agent-a": {}, "agent-b": {}}
	// The server's heartbeat interval is 1 s: wait for three new beats of
	// each agent (the first value seen may predate the window).
	waitFor(t, 30*time.Second, "three heartbeats of each agent", func() bool {
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
		return len(beats["agent-a"]) >= 4 && len(beats["agent-b"]) >= 4
	})
	// Had the pings not counted, each agent would have called Heartbeat
	// once per beat (6 or more); one late pong may cost an agent one call.
	if n := heartbeatRPCs(t, hc, c.http) - before; n > 2 {
		t.Fatalf("%d Heartbeat RPCs during 3 beats of 2 agents; want their tunnel pings to carry the heartbeat", n)
	}
}

// heartbeatRPCs reads the server's count of ControlService.Heartbeat calls
// from /metrics.
func heartbeatRPCs(t *testing.T, hc *http.Client, addr string) int {
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
		if !strings.HasPrefix(line, "grpc_server_handled_total{") || !strings.Contains(line, `grpc_method="Heartbeat"`) ||
			!strings.Contains(line, `grpc_service="croupier.v1.ControlService"`) {
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
