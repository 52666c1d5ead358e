package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/tlsconf"
	"github.com/croupier/croupier/sdk/gateway"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// gatewayNode is one `croupier gateway` process with its agent.
type gatewayNode struct {
	proc               *proc
	agent              string
	ws, path, business string
}

// startGatewayNode runs a gateway whose agent (named agentID, certificate
// issued for demo/dev) registers the gateway.* functions with c's server.
func (c *cluster) startGatewayNode(agentID string, serverID int) *gatewayNode {
	c.t.Helper()
	c.issueAgent(agentID)
	conf := filepath.Join(c.dir, agentID+".yaml")
	writeFile(c.t, conf, fmt.Sprintf("agent_id: %s\ngame_id: demo\nenv: dev\nserver: %s\ntls_ca: %s\ntls_cert: %s\ntls_key: %s\ntls_server_name: localhost\nreconnect_max: 1s\n",
		agentID, c.grpc, filepath.Join(c.certs, "ca.crt"), filepath.Join(c.certs, agentID+".crt"), filepath.Join(c.certs, agentID+".key")))
	p := start(c.t, agentID, bins.croupier, "gateway", "--log-format", "json", "--server-id", fmt.Sprint(serverID),
		"--client-addr", "127.0.0.1:0", "--business-addr", "127.0.0.1:0", "--agent-config", conf,
		"--rooms-addr=") // no rooms listener (and so no RTMP ingest): this test is about the netsvr side
	ev := p.waitLog("gateway started", 30*time.Second)
	ws := strings.TrimPrefix(ev["client_addr"].(string), "ws://")
	i := strings.Index(ws, "/")
	return &gatewayNode{proc: p, agent: agentID, ws: ws[:i], path: ws[i:], business: ev["business_addr"].(string)}
}

// newControlPlane is a server only (no agents or game servers).
func newControlPlane(t *testing.T) *cluster {
	c := &cluster{t: t, dir: t.TempDir(), agents: map[string]*proc{}, sdk: map[string]string{}, games: map[string]*proc{}}
	c.certs = filepath.Join(c.dir, "certs")
	if out, code := run(t, nil, "certs", "init", "--dir", c.certs); code != 0 {
		t.Fatalf("certs init: %s", out)
	}
	c.startServer("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
	c.profile = filepath.Join(c.dir, "client.yaml")
	writeFile(t, c.profile, fmt.Sprintf("address: %s\nca: certs/ca.crt\ncert: certs/client.crt\nkey: certs/client.key\nserver_name: localhost\n", c.grpc))
	return c
}

// readUntilClosed reads frames until the gateway closes the connection and
// returns the data frames' payloads and the close code (0 if none came).
func (c *wsConn) readUntilClosed(timeout time.Duration) (data []string, closeCode int) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.r, h[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return data, closeCode
			}
			c.t.Fatalf("waiting for the close: %v", err)
		}
		p := make([]byte, h[1]&0x7F) // the gateway's frames here are short
		if _, err := io.ReadFull(c.r, p); err != nil {
			c.t.Fatal(err)
		}
		if h[0]&0x0F == 0x8 {
			if len(p) >= 2 {
				closeCode = int(p[0])<<8 | int(p[1])
			}
			continue
		}
		data = append(data, string(p))
	}
}

// TestGatewayNodeFunctions runs a server and two gateway nodes, each with
// its agent, holds WebSocket clients on both, and invokes the gateway's
// built-in functions with every routing mode over gRPC and the CLI.
func TestGatewayNodeFunctions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := newControlPlane(t)
	gw1, gw2 := c.startGatewayNode("gw-1", 1), c.startGatewayNode("gw-2", 2)
	c.waitInstances("gateway.stats", 2)
	if got, _ := c.instances("gateway.kick"); !slices.Equal(got, []string{"gw-1/gateway-1", "gw-2/gateway-2"}) {
		t.Fatalf("gateway.kick served by %v", got)
	}

	// A business on gw-1 learns the clients' uniqIds: a1 connects first.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	biz, err := gateway.New(gateway.Config{Addr: gw1.business, WorkerID: 1, ServerID: 1})
	if err != nil {
		t.Fatal(err)
	}
	bctx, bstop := context.WithCancel(context.Background())
	bdone := make(chan error, 1)
	go func() { bdone <- biz.Run(bctx) }()
	t.Cleanup(func() { bstop(); <-bdone })
	if err := biz.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	online := func(n int) []string {
		var ids []string
		waitFor(t, 10*time.Second, fmt.Sprintf("%d clients on gw-1", n), func() bool {
			l, err := biz.UniqIDList(ctx)
			ids = l.GetUniqIds()
			return err == nil && len(ids) == n
		})
		return ids
	}
	a1 := dialWS(t, gw1.ws, gw1.path)
	a1ID := online(1)[0]
	a2 := dialWS(t, gw1.ws, gw1.path)
	var a2ID string
	for _, id := range online(2) {
		if id != a1ID {
			a2ID = id
		}
	}
	b1 := dialWS(t, gw2.ws, gw2.path)
	if err := biz.TopicSubscribe(a1ID, []string{"news"}, []byte("joined")); err != nil {
		t.Fatal(err)
	}
	if got := a1.read(); got != "joined" {
		t.Fatalf("a1 got %q", got)
	}

	t.Run("stats, broadcast routing: both nodes answer", func(t *testing.T) {
		var online map[string]float64
		waitFor(t, 10*time.Second, "online 2 on gw-1 and 1 on gw-2", func() bool {
			resp := c.mustInvoke("gateway.stats", nil, &croupierv1.InvokeOptions{RoutingMode: "broadcast"})
			online = map[string]float64{}
			for _, r := range resp.GetResults() {
				f := r.GetResult().GetFields()
				online[f["served_by"].GetStringValue()] = f["online"].GetNumberValue()
				if f["metrics"].GetStructValue().GetFields()["conn_open"] == nil {
					t.Fatalf("stats without metrics: %v", r.GetResult())
				}
			}
			return online["gateway-1"] == 2 && online["gateway-2"] == 1
		})
	})

	t.Run("broadcast over the CLI with broadcast routing reaches clients of both nodes", func(t *testing.T) {
		env := []string{"CROUPIER_PROFILE=" + c.profile}
		out, code := run(t, env, "invoke", "gateway.broadcast", "--game", "demo", "--env", "dev", "--route", "broadcast",
			"--payload", `{"data":"maintenance at noon"}`, "-o", "json")
		var resp struct {
			Success bool `json:"success"`
			Results []struct {
				Result struct {
					Recipients int `json:"recipients"`
				} `json:"result"`
			} `json:"results"`
		}
		if err := json.Unmarshal([]byte(out), &resp); code != 0 || err != nil || len(resp.Results) != 2 ||
			resp.Results[0].Result.Recipients+resp.Results[1].Result.Recipients != 3 {
			t.Fatalf("invoke gateway.broadcast: exit %d\n%s", code, out)
		}
		for _, ws := range []*wsConn{a1, a2, b1} {
			if got := ws.read(); got != "maintenance at noon" {
				t.Fatalf("client got %q", got)
			}
		}
	})

	t.Run("publish (targeted), online (hash), stats (lb)", func(t *testing.T) {
		resp := c.mustInvoke("gateway.publish", map[string]any{"topics": []any{"news"}, "data": "extra!"},
			&croupierv1.InvokeOptions{RoutingMode: "targeted", TargetAgent: "gw-1/gateway-1"})
		if n := resp.GetResult().GetFields()["recipients"].GetNumberValue(); n != 1 {
			t.Fatalf("publish recipients %v", n)
		}
		if got := a1.read(); got != "extra!" {
			t.Fatalf("a1 got %q", got)
		}
		resp = c.mustInvoke("gateway.online", map[string]any{"uniq_ids": []any{a1ID, a2ID, "nobody"}},
			&croupierv1.InvokeOptions{RoutingMode: "targeted", TargetAgent: "gw-1"})
		var got []string
		for _, v := range resp.GetResult().GetFields()["online"].GetListValue().GetValues() {
			got = append(got, v.GetStringValue())
		}
		slices.Sort(got)
		want := []string{a1ID, a2ID}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("online %v, want %v", got, want)
		}
		resp = c.mustInvoke("gateway.online", map[string]any{"uniq_ids": []any{a1ID}}, &croupierv1.InvokeOptions{RoutingMode: "hash", HashKey: a1ID})
		if resp.GetInstance() == "" {
			t.Fatalf("hash routing answered by no instance: %v", resp)
		}
		if resp := c.mustInvoke("gateway.stats", nil, nil); resp.GetInstance() == "" {
			t.Fatalf("lb routing answered by no instance: %v", resp)
		}
	})

	t.Run("bad parameters are refused before the gateway", func(t *testing.T) {
		_, err := c.invoke("gateway.kick", map[string]any{"uniq_ids": []any{}, "reason": "x"}, nil)
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("kick without uniq_ids: %v", err)
		}
		_, err = c.invoke("gateway.broadcast", map[string]any{"data": strings.Repeat("x", 65537)}, nil)
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("broadcast of 64 KiB + 1: %v", err)
		}
	})

	t.Run("kick sends the reason, then closes the client", func(t *testing.T) {
		start := time.Now()
		resp := c.mustInvoke("gateway.kick", map[string]any{"uniq_ids": []any{a2ID, "nobody"}, "reason": "cheating"},
			&croupierv1.InvokeOptions{RoutingMode: "targeted", TargetAgent: "gw-1/gateway-1"})
		if k := resp.GetResult().GetFields()["kicked"].GetListValue().GetValues(); len(k) != 1 || k[0].GetStringValue() != a2ID {
			t.Fatalf("kicked %v", k)
		}
		data, code := a2.readUntilClosed(15 * time.Second)
		if !slices.Equal(data, []string{"cheating"}) || code != 1000 {
			t.Fatalf("kicked client got %q then close %d", data, code)
		}
		if d := time.Since(start); d < 2*time.Second {
			t.Fatalf("closed %s after the kick; ForceOffline closes 3 s after the data", d)
		}
		// The gateway drops a client from its index once the socket has
		// closed, a moment after the client saw the close.
		var (
			on  []string
			err error
		)
		waitFor(t, 10*time.Second, "the kicked client to be offline", func() bool {
			on, err = biz.CheckOnline(ctx, []string{a1ID, a2ID})
			return err != nil || !slices.Contains(on, a2ID)
		})
		if err != nil || !slices.Equal(on, []string{a1ID}) {
			t.Fatalf("online after the kick: %v %v", on, err)
		}
	})

	t.Run("calls are audited with their actor", func(t *testing.T) {
		auditc := croupierv1.NewAuditServiceClient(c.conn)
		for _, fn := range []string{"gateway.stats", "gateway.broadcast", "gateway.publish", "gateway.online", "gateway.kick"} {
			list, err := auditc.ListAudit(context.Background(), &croupierv1.ListAuditRequest{FunctionId: fn, PageSize: 50})
			if err != nil || len(list.GetEntries()) == 0 {
				t.Fatalf("audit rows of %s: %v %v", fn, len(list.GetEntries()), err)
			}
			if a := list.GetEntries()[0].GetActor(); !strings.Contains(a, "operator") {
				t.Fatalf("audit actor of %s: %q", fn, a)
			}
		}
	})

	t.Run("a business certificate cannot call the server's APIs", func(t *testing.T) {
		if out, code := run(t, nil, "certs", "issue", "business", "--name", "chat-1", "--ca-dir", c.certs); code != 0 {
			t.Fatalf("certs issue business: %s", out)
		}
		cfg, err := tlsconf.ClientConfig(filepath.Join(c.certs, "ca.crt"), filepath.Join(c.certs, "business-chat-1.crt"), filepath.Join(c.certs, "business-chat-1.key"), "localhost")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(c.grpc, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = croupierv1.NewRegistryServiceClient(conn).GetRegistrations(ctx, &croupierv1.GetRegistrationsRequest{GameId: "demo", Env: "dev"})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "business certificate") {
			t.Fatalf("registry with a business certificate: %v", err)
		}
	})

	t.Run("a gateway node stopped by SIGTERM exits cleanly and leaves the registry", func(t *testing.T) {
		_ = gw2.proc.cmd.Process.Signal(syscall.SIGTERM)
		if code := gw2.proc.exitCode(15 * time.Second); code != 0 {
			t.Fatalf("gateway exited %d after SIGTERM", code)
		}
		c.waitInstances("gateway.stats", 1)
	})

	t.Run("a viewer cannot invoke gateway functions", func(t *testing.T) {
		users := croupierv1.NewUserServiceClient(c.conn)
		if _, err := users.CreateUser(context.Background(), &croupierv1.CreateUserRequest{Username: "viewer1", Password: "viewer1-password"}); err != nil {
			t.Fatal(err)
		}
		if _, err := users.GrantRole(context.Background(), &croupierv1.GrantRoleRequest{Username: "viewer1", Role: "viewer", Scope: "*"}); err != nil {
			t.Fatal(err)
		}
		tc := tokenConn(t, c)
		r, err := croupierv1.NewAuthServiceClient(tc).Login(context.Background(), &croupierv1.LoginRequest{Username: "viewer1", Password: "viewer1-password"})
		if err != nil {
			t.Fatal(err)
		}
		fn := croupierv1.NewFunctionServiceClient(tc)
		for id, payload := range map[string]map[string]any{"gateway.stats": {}, "gateway.kick": {"uniq_ids": []any{a1ID}, "reason": "x"}} {
			_, err := fn.InvokeFunction(bearer(r.GetAccessToken()), &croupierv1.InvokeFunctionRequest{GameId: "demo", Env: "dev", FunctionId: id,
				Payload: mustStruct(t, payload)})
			if status.Code(err) != codes.PermissionDenied {
				t.Fatalf("viewer invokes %s: %v", id, err)
			}
		}
	})
}
