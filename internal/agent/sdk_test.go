package agent

import (
	"context"
	"net"
	"testing"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/config"
	"github.com/croupier/croupier/sdk"
	"google.golang.org/protobuf/types/known/structpb"
)

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	return addr
}

// startSDKAgent starts a real agent on loopback whose server is
// unreachable (only its SDK side matters) and shuts it down when the test
// ends.
func startSDKAgent(t *testing.T) *Agent {
	t.Helper()
	cfg := config.DefaultAgent()
	cfg.ID, cfg.Game, cfg.Env, cfg.DataDir = "edge-1", "demo", "dev", t.TempDir()
	cfg.Insecure, cfg.Server, cfg.SDKAddr, cfg.ReconnectMax = true, closedAddr(t), "127.0.0.1:0", 200*time.Millisecond
	cfg.GSEAddr = "127.0.0.1:0"
	a, err := New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return a
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestAgentServesSDKInstances starts a real agent (its server unreachable:
// only the SDK side matters here) and a real SDK game server on loopback:
// the instance registers, the agent routes calls and job commands to it, and
// its departure is recorded with its incarnation.
func TestAgentServesSDKInstances(t *testing.T) {
	t.Parallel()
	a := startSDKAgent(t)
	gs := sdk.New(sdk.Options{AgentAddr: a.SDKAddr(), InstanceID: "gs-1", Logger: quietLog()})
	if err := gs.Register(&croupierv1.FunctionDescriptor{Id: "echo"}, func(_ context.Context, inv *sdk.Invocation) (*structpb.Struct, error) {
		return inv.Payload, nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- gs.Serve(ctx) }()
	defer func() {
		stop()
		<-served
	}()
	waitFor(t, 10*time.Second, "the instance to register", func() bool {
		_, ok := a.instances.pick("", "echo")
		return ok
	})

	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	payload, _ := structpb.NewStruct(map[string]any{"x": "y"})
	resp, err := a.handleInvoke(cctx, &agentv1.InvokeRequest{FunctionId: "echo", Payload: payload})
	if err != nil || !resp.GetSuccess() || resp.GetInstanceId() != "gs-1" || resp.GetResult().GetFields()["x"].GetStringValue() != "y" {
		t.Fatalf("invoke through the agent = %v, %v", resp, err)
	}
	// An instance the call names but that does not exist is refused.
	if _, err := a.handleInvoke(cctx, &agentv1.InvokeRequest{FunctionId: "echo", InstanceId: "gs-2"}); err == nil {
		t.Fatal("a call to an unknown instance succeeded")
	}
	sj, err := a.handleStartJob(cctx, &agentv1.StartJobRequest{JobId: "job_1",
		Invocation: &agentv1.InvokeRequest{InvocationId: "job_1", FunctionId: "echo", InstanceId: "gs-1"}})
	if err != nil || sj.GetInstanceId() != "gs-1" || sj.GetIncarnation() == "" {
		t.Fatalf("start job through the agent = %v, %v", sj, err)
	}
	cj, err := a.handleCancelJob(cctx, &agentv1.CancelJobRequest{JobId: "job_unknown", InstanceId: "gs-1"})
	if err != nil || cj.GetFound() {
		t.Fatalf("cancel of an unknown job = %v, %v", cj, err)
	}

	_, _, infos, _ := a.instances.snapshot()
	if len(infos) != 1 || infos[0].GetIncarnation() != sj.GetIncarnation() {
		t.Fatalf("instance table %v; want gs-1 with incarnation %s", infos, sj.GetIncarnation())
	}
	stop()
	<-served
	served <- nil // for the deferred cleanup
	waitFor(t, 10*time.Second, "the instance's departure", func() bool {
		_, _, infos, departed := a.instances.snapshot()
		return len(infos) == 0 && len(departed) == 1 && departed[0].GetIncarnation() == sj.GetIncarnation()
	})
	if a.Registered() {
		t.Fatal("registered although the server was never reachable")
	}
}
