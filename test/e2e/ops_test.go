package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// cluster is a server, two agents (one per tunnel transport) and three game
// servers: gs-a1 and gs-a2 behind agent-a (bidi gRPC stream), gs-b1 behind
// agent-b (HTTP/1.1 long-poll). Only gs-b1 serves player.ban.
type cluster struct {
	t       *testing.T
	dir     string
	certs   string
	server  *proc
	grpc    string
	http    string
	tunnel  string
	agents  map[string]*proc
	sdk     map[string]string
	games   map[string]*proc
	mu      sync.Mutex // guards fn for watchers that outlive a server restart
	conn    *grpc.ClientConn
	fn      croupierv1.FunctionServiceClient
	reg     croupierv1.RegistryServiceClient
	profile string
	// serverArgs are extra flags for the server (later ones win).
	serverArgs []string
}

// adminPassword is the password of the e2e clusters' administrator.
const adminPassword = "correct-horse-battery"

func newCluster(t *testing.T, serverArgs ...string) *cluster {
	c := &cluster{t: t, dir: t.TempDir(), agents: map[string]*proc{}, sdk: map[string]string{}, games: map[string]*proc{}, serverArgs: serverArgs}
	c.certs = filepath.Join(c.dir, "certs")
	if out, code := run(t, nil, "certs", "init", "--dir", c.certs); code != 0 {
		t.Fatalf("certs init: %s", out)
	}
	c.issueAgent("agent-a")
	c.issueAgent("agent-b")
	c.startServer("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
	c.startAgent("agent-a", "grpc", "127.0.0.1:0")
	c.startAgent("agent-b", "longpoll", "127.0.0.1:0")
	c.startGame("gs-a1", "agent-a", "player.get,player.grant_item,game.stats,mail.broadcast")
	c.startGame("gs-a2", "agent-a", "player.get,player.grant_item,game.stats,mail.broadcast")
	c.startGame("gs-b1", "agent-b", "")
	c.waitInstances("game.stats", 3)
	c.waitInstances("player.ban", 1)
	c.profile = filepath.Join(c.dir, "client.yaml")
	writeFile(t, c.profile, fmt.Sprintf("address: %s\nca: certs/ca.crt\ncert: certs/client.crt\nkey: certs/client.key\nserver_name: localhost\n", c.grpc))
	return c
}

// issueAgent issues an agent certificate for demo/dev named name
// (certs/name.crt and .key) from the cluster's CA.
func (c *cluster) issueAgent(name string) {
	c.t.Helper()
	if out, code := run(c.t, nil, "certs", "issue", "agent", "--name", name, "--game", "demo", "--env", "dev",
		"--ca-dir", c.certs, "--out", filepath.Join(c.certs, name)); code != 0 {
		c.t.Fatalf("certs issue %s: %s", name, out)
	}
}

func (c *cluster) startServer(grpcAddr, httpAddr, tunnelAddr string) {
	// The operator client certificate acts as user "operator", created as
	// administrator at start.
	args := []string{"server", "--log-format", "json",
		"--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--tunnel-http-addr", tunnelAddr,
		"--data-dir", c.dir, "--tls-ca", filepath.Join(c.certs, "ca.crt"),
		"--tls-cert", filepath.Join(c.certs, "server.crt"), "--tls-key", filepath.Join(c.certs, "server.key"),
		"--scopes", "demo/dev,other/dev", "--heartbeat-interval", "1s", "--rate-user", "0", "--approval-ttl", "4s"}
	c.server = startEnv(c.t, "server", []string{"CROUPIER_ADMIN_USER=operator", "CROUPIER_ADMIN_PASSWORD=" + adminPassword},
		bins.croupier, append(args, c.serverArgs...)...)
	ev := c.server.waitLog("croupier server started", 30*time.Second)
	c.grpc, c.http, c.tunnel = ev["grpc"].(string), ev["http"].(string), ev["tunnel_http"].(string)
	c.conn = operatorConn(c.t, c.certs, c.grpc)
	c.mu.Lock()
	c.fn = croupierv1.NewFunctionServiceClient(c.conn)
	c.mu.Unlock()
	c.reg = croupierv1.NewRegistryServiceClient(c.conn)
}

func (c *cluster) startAgent(name, transport, sdkAddr string) {
	args := []string{"agent", "--log-format", "json", "--agent-id", name, "--game-id", "demo", "--env", "dev",
		"--server", c.grpc, "--transport", transport, "--sdk-addr", sdkAddr, "--gse-addr", "127.0.0.1:0", "--data-dir", c.dir, "--build-dirs", filepath.Dir(bins.gsegame), "--labels", "transport=" + transport, "--reconnect-max", "1s",
		"--tls-ca", filepath.Join(c.certs, "ca.crt"), "--tls-cert", filepath.Join(c.certs, name+".crt"),
		"--tls-key", filepath.Join(c.certs, name+".key"), "--tls-server-name", "localhost"}
	if transport == "longpoll" {
		args = append(args, "--longpoll-url", "https://"+c.tunnel)
	}
	p := start(c.t, name, bins.croupier, args...)
	ev := p.waitLog("croupier agent started", 30*time.Second)
	c.agents[name], c.sdk[name] = p, ev["sdk"].(string)
}

func (c *cluster) startGame(instance, agent, functions string) {
	args := []string{"--agent", c.sdk[agent], "--instance", instance}
	if functions != "" {
		args = append(args, "--functions", functions)
	}
	c.games[instance] = start(c.t, instance, bins.gameserver, args...)
}

// instances lists "agent/instance" serving fn; ok is false when the server
// could not be asked (e.g. while it restarts).
func (c *cluster) instances(fn string) (out []string, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.reg.GetRegistrations(ctx, &croupierv1.GetRegistrationsRequest{GameId: "demo", Env: "dev", FunctionId: fn})
	if err != nil {
		return nil, false
	}
	for _, r := range resp.GetRegistrations() {
		for _, a := range r.GetAgents() {
			for _, in := range a.GetInstances() {
				out = append(out, a.GetAgentId()+"/"+in)
			}
		}
	}
	slices.Sort(out)
	return out, true
}

func (c *cluster) waitInstances(fn string, n int) {
	c.t.Helper()
	waitFor(c.t, 30*time.Second, fmt.Sprintf("%d instances of %s", n, fn), func() bool {
		got, ok := c.instances(fn)
		return ok && len(got) == n
	})
}

func (c *cluster) invoke(fn string, payload map[string]any, opts *croupierv1.InvokeOptions) (*croupierv1.InvokeFunctionResponse, error) {
	pl, err := structpb.NewStruct(payload)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.fn.InvokeFunction(ctx, &croupierv1.InvokeFunctionRequest{GameId: "demo", Env: "dev", FunctionId: fn, Payload: pl, Options: opts})
}

func (c *cluster) mustInvoke(fn string, payload map[string]any, opts *croupierv1.InvokeOptions) *croupierv1.InvokeFunctionResponse {
	c.t.Helper()
	resp, err := c.invoke(fn, payload, opts)
	if err != nil {
		c.t.Fatalf("invoke %s: %v", fn, err)
	}
	if !resp.GetSuccess() {
		c.t.Fatalf("invoke %s: function failed: %s %s", fn, resp.GetErrorCode(), resp.GetError())
	}
	return resp
}

func servedBy(r *structpb.Struct) string { return r.GetFields()["served_by"].GetStringValue() }

// invocations returns each instance's served-call counter (game.stats, broadcast).
func (c *cluster) invocations() map[string]float64 {
	c.t.Helper()
	resp := c.mustInvoke("game.stats", nil, &croupierv1.InvokeOptions{RoutingMode: "broadcast"})
	out := map[string]float64{}
	for _, r := range resp.GetResults() {
		out[servedBy(r.GetResult())] = r.GetResult().GetFields()["invocations"].GetNumberValue()
	}
	return out
}

func TestOpsPlaneEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := newCluster(t)

	t.Run("lb spreads calls over every instance", func(t *testing.T) {
		seen := map[string]int{}
		for i := 0; i < 30; i++ {
			r := c.mustInvoke("game.stats", nil, &croupierv1.InvokeOptions{RoutingMode: "lb"})
			if got, want := servedBy(r.GetResult()), r.GetInstance()[strings.Index(r.GetInstance(), "/")+1:]; got != want {
				t.Fatalf("response says instance %s but %s served it", r.GetInstance(), got)
			}
			seen[servedBy(r.GetResult())]++
		}
		if len(seen) != 3 {
			t.Fatalf("lb used instances %v, want all three", seen)
		}
	})

	t.Run("agents heartbeat with tunnel pings", func(t *testing.T) { testTunnelHeartbeats(t, c) })

	t.Run("broadcast returns one result per instance", func(t *testing.T) {
		r := c.mustInvoke("game.stats", nil, &croupierv1.InvokeOptions{RoutingMode: "broadcast"})
		var got []string
		for _, res := range r.GetResults() {
			if !res.GetSuccess() {
				t.Fatalf("instance %s failed: %s", res.GetInstance(), res.GetError())
			}
			if !strings.HasSuffix(res.GetInstance(), "/"+servedBy(res.GetResult())) {
				t.Fatalf("result of %s was served by %s", res.GetInstance(), servedBy(res.GetResult()))
			}
			got = append(got, res.GetInstance())
		}
		want := []string{"agent-a/gs-a1", "agent-a/gs-a2", "agent-b/gs-b1"}
		if !slices.Equal(got, want) {
			t.Fatalf("broadcast reached %v, want %v", got, want)
		}
	})

	t.Run("targeted reaches the named instance or agent", func(t *testing.T) {
		for i := 0; i < 5; i++ {
			r := c.mustInvoke("game.stats", nil, &croupierv1.InvokeOptions{RoutingMode: "targeted", TargetAgent: "agent-b/gs-b1"})
			if servedBy(r.GetResult()) != "gs-b1" {
				t.Fatalf("targeted agent-b/gs-b1 served by %s", servedBy(r.GetResult()))
			}
			r = c.mustInvoke("game.stats", nil, &croupierv1.InvokeOptions{RoutingMode: "targeted", TargetAgent: "agent-a"})
			if s := servedBy(r.GetResult()); s != "gs-a1" && s != "gs-a2" {
				t.Fatalf("targeted agent-a served by %s", s)
			}
		}
		_, err := c.invoke("game.stats", nil, &croupierv1.InvokeOptions{RoutingMode: "targeted", TargetAgent: "agent-z"})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("absent target: got %v, want NotFound", err)
		}
	})

	t.Run("hash keeps a key on one instance", func(t *testing.T) {
		used := map[string]bool{}
		for i := 0; i < 24; i++ {
			key := fmt.Sprintf("player-%d", i)
			first := servedBy(c.mustInvoke("game.stats", nil, &croupierv1.InvokeOptions{RoutingMode: "hash", HashKey: key}).GetResult())
			for j := 0; j < 3; j++ {
				if again := servedBy(c.mustInvoke("game.stats", nil, &croupierv1.InvokeOptions{RoutingMode: "hash", HashKey: key}).GetResult()); again != first {
					t.Fatalf("key %s went to %s, then %s", key, first, again)
				}
			}
			used[first] = true
		}
		if len(used) < 2 {
			t.Fatalf("24 keys all hashed to %v", used)
		}
	})

	t.Run("invalid payload is rejected before reaching a game server", func(t *testing.T) {
		before := c.invocations()
		_, err := c.invoke("player.get", map[string]any{"player_id": 42.0}, nil)
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("got %v, want InvalidArgument", err)
		}
		info := apierr.Info(err)
		if info == nil || info.GetCode() != apierr.CodeInvalidPayload || info.GetDetails()["pointer"] != "/player_id" {
			t.Fatalf("error info %v, want INVALID_PAYLOAD at /player_id", info)
		}
		out, code := run(t, []string{"CROUPIER_PROFILE=" + c.profile}, "invoke", "player.grant_item", "--game", "demo", "--env", "dev",
			"--payload", `{"player_id":"p1","item_id":"gem","count":0}`)
		if code != 2 || !strings.Contains(out, "InvalidArgument") || !strings.Contains(out, "/count") {
			t.Fatalf("CLI: exit %d, output %q; want exit 2 naming InvalidArgument and /count", code, out)
		}
		if after := c.invocations(); !mapsEqual(before, after) {
			t.Fatalf("game servers ran calls: before %v after %v", before, after)
		}
	})

	grant := map[string]any{"player_id": "p7", "item_id": "sword", "count": 2.0}
	target := &croupierv1.InvokeOptions{RoutingMode: "targeted", TargetAgent: "agent-a/gs-a1"}
	swords := func() float64 {
		r := c.mustInvoke("player.get", map[string]any{"player_id": "p7"}, target)
		return r.GetResult().GetFields()["player"].GetStructValue().GetFields()["inventory"].GetStructValue().GetFields()["sword"].GetNumberValue()
	}
	var firstGrant *croupierv1.InvokeFunctionResponse

	t.Run("idempotency key runs the function once", func(t *testing.T) {
		opts := proto.Clone(target).(*croupierv1.InvokeOptions)
		opts.IdempotencyKey = "grant-p7-sword"
		before := swords()
		firstGrant = c.mustInvoke("player.grant_item", grant, opts)
		again := c.mustInvoke("player.grant_item", grant, opts)
		if !proto.Equal(firstGrant, again) {
			t.Fatalf("repeat returned a different response:\n%v\n%v", firstGrant, again)
		}
		if got := swords(); got != before+2 {
			t.Fatalf("swords %v after two calls with one key, want %v", got, before+2)
		}
		other := map[string]any{"player_id": "p7", "item_id": "sword", "count": 3.0}
		_, err := c.invoke("player.grant_item", other, opts)
		if status.Code(err) != codes.AlreadyExists {
			t.Fatalf("same key, other payload: got %v, want AlreadyExists", err)
		}
	})

	t.Run("killed game server leaves the registry", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stream, err := c.reg.WatchRegistrations(ctx, &croupierv1.WatchRegistrationsRequest{GameId: "demo", Env: "dev"})
		if err != nil {
			t.Fatal(err)
		}
		// A second watcher asks for deltas: the same changes, sized by what
		// changed.
		deltas, err := c.reg.WatchRegistrations(ctx, &croupierv1.WatchRegistrationsRequest{GameId: "demo", Env: "dev", Deltas: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []croupierv1.RegistryService_WatchRegistrationsClient{stream, deltas} {
			for {
				ev, err := s.Recv()
				if err != nil {
					t.Fatal(err)
				}
				if ev.GetType() == croupierv1.RegistrationEventType_SYNCED {
					break
				}
			}
		}
		killed := time.Now()
		c.games["gs-b1"].kill()
		var removed, updated bool
		for !removed || !updated {
			ev, err := stream.Recv()
			if err != nil {
				t.Fatalf("watch ended before REMOVED/UPDATED: %v", err)
			}
			switch {
			case ev.GetType() == croupierv1.RegistrationEventType_REMOVED && ev.GetRegistration().GetFunctionId() == "player.ban":
				removed = true
			case ev.GetType() == croupierv1.RegistrationEventType_UPDATED && ev.GetRegistration().GetFunctionId() == "game.stats":
				updated = true
			}
		}
		// The agent sees the game's tunnel end at once (within its 3 s
		// heartbeat window at worst); 10 s leaves room for a loaded
		// machine and still tells a removal from none.
		if took := time.Since(killed); took > 10*time.Second {
			t.Fatalf("REMOVED arrived after %s, far beyond the 3s heartbeat window", took)
		}
		removed, updated = false, false
		for !removed || !updated {
			ev, err := deltas.Recv()
			if err != nil {
				t.Fatalf("delta watch ended before REMOVED/UPDATED: %v", err)
			}
			d := ev.GetDelta()
			if ev.GetRegistration() != nil || d == nil {
				t.Fatalf("live event of a delta watch = %v, want a delta only", ev)
			}
			switch {
			case ev.GetType() == croupierv1.RegistrationEventType_REMOVED && d.GetFunctionId() == "player.ban":
				removed = true
			case ev.GetType() == croupierv1.RegistrationEventType_UPDATED && d.GetFunctionId() == "game.stats":
				if d.GetReplace() || len(d.GetAgents())+len(d.GetRemovedAgentIds()) != 1 {
					t.Fatalf("game.stats delta = %v, want one agent's entry changed", d)
				}
				updated = true
			}
		}
		if got, _ := c.instances("game.stats"); !slices.Equal(got, []string{"agent-a/gs-a1", "agent-a/gs-a2"}) {
			t.Fatalf("instances after kill: %v", got)
		}
		_, err = c.invoke("player.ban", map[string]any{"player_id": "p1", "reason": "cheating", "duration_seconds": 60.0}, nil)
		if status.Code(err) != codes.NotFound && status.Code(err) != codes.Unavailable {
			t.Fatalf("invoking a function nobody serves: %v", err)
		}
	})

	t.Run("restarted agent re-registers its game servers", func(t *testing.T) {
		sdkAddr := c.sdk["agent-a"]
		c.agents["agent-a"].stop()
		waitFor(t, 5*time.Second, "agent-a to leave the registry", func() bool {
			got, ok := c.instances("game.stats")
			return ok && len(got) == 0
		})
		c.startAgent("agent-a", "grpc", sdkAddr)
		c.waitInstances("game.stats", 2)
	})

	t.Run("idempotency survives a server restart", func(t *testing.T) {
		before := swords()
		grpcAddr, httpAddr, tunnelAddr := c.grpc, c.http, c.tunnel
		c.server.stop()
		c.startServer(grpcAddr, httpAddr, tunnelAddr)
		c.waitInstances("game.stats", 2)
		opts := proto.Clone(target).(*croupierv1.InvokeOptions)
		opts.IdempotencyKey = "grant-p7-sword"
		again := c.mustInvoke("player.grant_item", grant, opts)
		if !proto.Equal(firstGrant, again) {
			t.Fatalf("after restart the key returned a different response:\n%v\n%v", firstGrant, again)
		}
		if got := swords(); got != before {
			t.Fatalf("swords %v after replay across restart, want %v (ran again)", got, before)
		}
	})

	t.Run("concurrent invocations", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for i := 0; i < 64; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := c.invoke("player.get", map[string]any{"player_id": fmt.Sprintf("p%d", 1+i%100)}, nil); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	})
}

func mapsEqual(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
