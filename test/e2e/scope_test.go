package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/sdk"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestScopesAssignmentsAndRegisterFunction(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := newCluster(t)
	env := []string{"CROUPIER_PROFILE=" + c.profile}

	t.Run("a disabled function is refused with FAILED_PRECONDITION", func(t *testing.T) {
		out, code := run(t, env, "function", "disable", "player.get", "--game", "demo", "--env", "dev")
		if code != 0 {
			t.Fatalf("disable: %s", out)
		}
		_, err := c.invoke("player.get", map[string]any{"player_id": "p1"}, nil)
		if status.Code(err) != codes.FailedPrecondition || apierr.Info(err).GetCode() != apierr.CodeFunctionDisabled {
			t.Fatalf("invoke disabled: %v", err)
		}
		out, _ = run(t, env, "registry", "list", "--function", "player.get")
		if !strings.Contains(out, "false") {
			t.Fatalf("registry does not show player.get disabled:\n%s", out)
		}
		if out, code := run(t, env, "function", "enable", "player.get", "--game", "demo", "--env", "dev", "--config", "motd=hi"); code != 0 {
			t.Fatalf("enable: %s", out)
		}
		// The server applies the change at once; each agent learns it at its
		// next assignment refresh (heartbeat), so poll every instance (broadcast)
		// instead of racing them.
		waitFor(t, 15*time.Second, "player.get enabled on every agent", func() bool {
			resp, err := c.invoke("player.get", map[string]any{"player_id": "p1"}, &croupierv1.InvokeOptions{RoutingMode: "broadcast"})
			if err != nil || len(resp.GetResults()) == 0 {
				return false
			}
			for _, r := range resp.GetResults() {
				if !r.GetSuccess() {
					return false
				}
			}
			return true
		})
	})

	t.Run("an agent cannot register outside its certificate's scope", func(t *testing.T) {
		if out, code := run(t, nil, "certs", "issue", "agent", "--name", "agent-x", "--game", "demo", "--env", "dev",
			"--ca-dir", c.certs, "--out", filepath.Join(c.certs, "agent-x")); code != 0 {
			t.Fatal(out)
		}
		p := start(t, "agent-x", bins.croupier, "agent", "--log-format", "json", "--agent-id", "agent-x", "--game-id", "other", "--env", "prod",
			"--server", c.grpc, "--sdk-addr", "127.0.0.1:0", "--gse-addr", "", "--reconnect-max", "1s",
			"--tls-ca", filepath.Join(c.certs, "ca.crt"), "--tls-cert", filepath.Join(c.certs, "agent-x.crt"),
			"--tls-key", filepath.Join(c.certs, "agent-x.key"), "--tls-server-name", "localhost")
		ev := p.waitLog("register with server failed; retrying", 15*time.Second)
		if !strings.Contains(ev["err"].(string), "PermissionDenied") {
			t.Fatalf("registration error: %v", ev["err"])
		}
		p.kill()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		agents, err := c.reg.ListAgents(ctx, &croupierv1.ListAgentsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range agents.GetAgents() {
			if a.GetAgentId() == "agent-x" {
				t.Fatalf("agent-x registered: %v", a)
			}
		}
	})

	t.Run("scopes do not leak", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		regs, err := c.reg.GetRegistrations(ctx, &croupierv1.GetRegistrationsRequest{GameId: "other", Env: "prod"})
		if err != nil || len(regs.GetRegistrations()) != 0 {
			t.Fatalf("other/prod registrations: %v %v", regs, err)
		}
		_, err = c.invoke("player.get", map[string]any{"player_id": "p1"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		pl := map[string]any{"player_id": "p1"}
		_, err = c.fn.InvokeFunction(ctx, &croupierv1.InvokeFunctionRequest{GameId: "other", Env: "prod", FunctionId: "player.get", Payload: mustStruct(t, pl)})
		if status.Code(err) != codes.NotFound || apierr.Info(err).GetCode() != apierr.CodeUnknownScope {
			t.Fatalf("invoke in an undeclared scope: %v", err)
		}
	})

	t.Run("RegisterFunction stores a descriptor that survives a restart", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		bad := &croupierv1.FunctionDescriptor{Id: "guild.rename", ParamsSchema: sdk.MustSchema(`{"type":"object","properties":{"name":{"type":"strin"}}}`)}
		_, err := c.fn.RegisterFunction(ctx, &croupierv1.RegisterFunctionRequest{GameId: "demo", Env: "dev", Descriptor_: bad})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "guild.rename") {
			t.Fatalf("bad schema: %v", err)
		}
		good := &croupierv1.FunctionDescriptor{Id: "guild.rename", Name: "Rename guild",
			ParamsSchema: sdk.MustSchema(`{"type":"object","required":["name"],"properties":{"name":{"type":"string"}}}`)}
		if _, err := c.fn.RegisterFunction(ctx, &croupierv1.RegisterFunctionRequest{GameId: "demo", Env: "dev", Descriptor_: good}); err != nil {
			t.Fatal(err)
		}
		c.server.stop()
		c.startServer(c.grpc, c.http, c.tunnel)
		c.waitInstances("game.stats", 3)
		ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel2()
		regs, err := c.reg.GetRegistrations(ctx2, &croupierv1.GetRegistrationsRequest{GameId: "demo", Env: "dev", FunctionId: "guild.rename"})
		if err != nil || len(regs.GetRegistrations()) != 1 || regs.GetRegistrations()[0].GetDescriptor_().GetName() != "Rename guild" {
			t.Fatalf("after restart: %v %v", regs, err)
		}
		// Registered but served by nobody: validated, then UNAVAILABLE.
		_, err = c.fn.InvokeFunction(ctx2, &croupierv1.InvokeFunctionRequest{GameId: "demo", Env: "dev", FunctionId: "guild.rename", Payload: mustStruct(t, map[string]any{})})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("payload missing name: %v", err)
		}
		_, err = c.fn.InvokeFunction(ctx2, &croupierv1.InvokeFunctionRequest{GameId: "demo", Env: "dev", FunctionId: "guild.rename", Payload: mustStruct(t, map[string]any{"name": "x"})})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("nobody serves it: %v", err)
		}
	})
}
