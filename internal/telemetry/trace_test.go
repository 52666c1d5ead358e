package telemetry_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/agent"
	"github.com/croupier/croupier/internal/config"
	"github.com/croupier/croupier/internal/server"
	"github.com/croupier/croupier/internal/telemetry"
	"github.com/croupier/croupier/sdk"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// waitFor polls cond every few milliseconds until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stack is a real server, agent and SDK game server on loopback, all in this
// process, plus an operator connection.
type stack struct {
	srv  *server.Server
	conn *grpc.ClientConn
}

// startStack brings the three up, each with its own tracer provider over
// the one exporter (as three processes would, each exporting to the same
// collector), and registers an "echo" function whose handler runs fn.
func startStack(t *testing.T, tp func(service string) trace.TracerProvider, fn sdk.Handler) *stack {
	t.Helper()
	cfg := config.DefaultServer()
	cfg.DataDir, cfg.Insecure = t.TempDir(), true
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.TunnelHTTPAddr = "127.0.0.1:0", "127.0.0.1:0", ""
	cfg.Scopes = []string{"demo/dev"}
	cfg.HeartbeatInterval = 200 * time.Millisecond
	var sopts []server.Option
	if tp != nil {
		sopts = append(sopts, server.WithTracerProvider(tp("croupier-server")))
	}
	srv, err := server.New(cfg, quietLog(), sopts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})

	acfg := config.DefaultAgent()
	acfg.ID, acfg.Game, acfg.Env, acfg.DataDir = "agent-1", "demo", "dev", t.TempDir()
	acfg.Insecure, acfg.Server, acfg.SDKAddr, acfg.GSEAddr = true, srv.GRPCAddr(), "127.0.0.1:0", ""
	acfg.ReconnectMax = 200 * time.Millisecond
	var aopts []agent.Option
	if tp != nil {
		aopts = append(aopts, agent.WithTracerProvider(tp("croupier-agent")))
	}
	a, err := agent.New(acfg, quietLog(), aopts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	})

	gopts := sdk.Options{AgentAddr: a.SDKAddr(), InstanceID: "gs-1", Logger: quietLog()}
	if tp != nil {
		gopts.TracerProvider = tp("game-server")
	}
	gs := sdk.New(gopts)
	if err := gs.Register(&croupierv1.FunctionDescriptor{Id: "echo"}, fn); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- gs.Serve(ctx) }()
	t.Cleanup(func() {
		stop()
		<-served
	})

	var copts []grpc.DialOption
	copts = append(copts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if tp != nil {
		copts = append(copts, grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(tp("operator")), otelgrpc.WithPropagators(telemetry.Propagator()))))
	}
	conn, err := grpc.NewClient(srv.GRPCAddr(), copts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	st := &stack{srv: srv, conn: conn}
	waitFor(t, 20*time.Second, "echo to be callable", func() bool {
		_, err := st.tryInvoke()
		return err == nil
	})
	return st
}

func (s *stack) tryInvoke() (*croupierv1.InvokeFunctionResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	payload, _ := structpb.NewStruct(map[string]any{"x": "y"})
	resp, err := croupierv1.NewFunctionServiceClient(s.conn).InvokeFunction(ctx, &croupierv1.InvokeFunctionRequest{
		GameId: "demo", Env: "dev", FunctionId: "echo", Payload: payload})
	if err == nil && !resp.GetSuccess() {
		err = fmt.Errorf("function failed: %s", resp.GetError())
	}
	return resp, err
}

func (s *stack) invoke(t *testing.T) *croupierv1.InvokeFunctionResponse {
	t.Helper()
	resp, err := s.tryInvoke()
	if err != nil {
		t.Fatalf("InvokeFunction = %v, %v", resp, err)
	}
	return resp
}

// TestTraceCrossesTheTunnel: one trace runs from the operator's
// InvokeFunction through the server, over the agent tunnel, through the
// agent and over the SDK tunnel into the game server's handler, whose ctx
// carries it so the handler's own span joins it.
func TestTraceCrossesTheTunnel(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := func(service string) trace.TracerProvider {
		p := telemetry.NewTracerProvider(service, 1, sdktrace.WithSyncer(exp))
		t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
		return p
	}
	handlerTP := tp("game-handler")
	st := startStack(t, tp, func(ctx context.Context, inv *sdk.Invocation) (*structpb.Struct, error) {
		_, span := handlerTP.Tracer("game").Start(ctx, "game.echo")
		span.End()
		return inv.Payload, nil
	})
	exp.Reset() // forget the spans of the readiness polls
	st.invoke(t)
	checkChain(t, exp, "croupier.v1.FunctionService/InvokeFunction", trace.SpanKindClient, []hop{
		{"croupier.v1.FunctionService/InvokeFunction", trace.SpanKindServer, "croupier-server"},
		{"croupier.v1.FunctionService/InvokeFunction", trace.SpanKindClient, "operator"},
	})

	// The same over REST: the operator's traceparent header is continued.
	exp.Reset()
	ctx, root := tp("operator").Tracer("operator").Start(context.Background(), "operator.rest")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+st.srv.HTTPAddr()+"/api/v1/functions/echo:invoke",
		strings.NewReader(`{"game_id":"demo","env":"dev","payload":{"x":"y"}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	telemetry.Propagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	root.End()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("REST invoke: %s", resp.Status)
	}
	checkChain(t, exp, "operator.rest", trace.SpanKindInternal, []hop{
		{"POST /api/v1/functions/{function_id=*}:invoke", trace.SpanKindServer, "croupier-server"},
		{"operator.rest", trace.SpanKindInternal, "operator"},
	})
}

type hop struct {
	name string
	kind trace.SpanKind
	svc  string
}

// checkChain walks from the game handler's span up through its parents: the
// tunnel hops, then the edge hops in edge, ending at the root span rootName.
func checkChain(t *testing.T, exp *tracetest.InMemoryExporter, rootName string, rootKind trace.SpanKind, edge []hop) {
	t.Helper()
	want := append([]hop{
		{"game.echo", trace.SpanKindInternal, "game-handler"},
		{"croupier.tunnel/croupier.agent.v1.InvokeRequest", trace.SpanKindServer, "game-server"},
		{"croupier.tunnel/croupier.agent.v1.InvokeRequest", trace.SpanKindClient, "croupier-agent"},
		{"croupier.tunnel/croupier.agent.v1.InvokeRequest", trace.SpanKindServer, "croupier-agent"},
		{"croupier.tunnel/croupier.agent.v1.InvokeRequest", trace.SpanKindClient, "croupier-server"},
	}, edge...)
	// A server span ends just after its response is written, so the chain
	// may complete a moment after the call returned: poll until it does.
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for err = walkChain(exp.GetSpans(), rootName, rootKind, want); err != nil; err = walkChain(exp.GetSpans(), rootName, rootKind, want) {
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// walkChain checks that the parents of the handler's span are the hops in
// want, all in the root span's trace, ending at the root.
func walkChain(spans tracetest.SpanStubs, rootName string, rootKind trace.SpanKind, want []hop) error {
	byID := map[trace.SpanID]tracetest.SpanStub{}
	var handler, root tracetest.SpanStub
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
		if s.Name == want[0].name {
			handler = s
		}
		if s.Name == rootName && s.SpanKind == rootKind {
			root = s
		}
	}
	if !handler.SpanContext.IsValid() || !root.SpanContext.IsValid() {
		return fmt.Errorf("no handler span or no root span %q among %v", rootName, names(spans))
	}
	s := handler
	for i, w := range want {
		svc, _ := s.Resource.Set().Value("service.name")
		if s.Name != w.name || s.SpanKind != w.kind || svc.AsString() != w.svc {
			return fmt.Errorf("hop %d: span %q (%s, %s), want %q (%s, %s); spans: %v", i, s.Name, s.SpanKind, svc.AsString(), w.name, w.kind, w.svc, names(spans))
		}
		if s.SpanContext.TraceID() != root.SpanContext.TraceID() {
			return fmt.Errorf("hop %d (%s) is in trace %s, want the operator's %s", i, w.name, s.SpanContext.TraceID(), root.SpanContext.TraceID())
		}
		if i == len(want)-1 {
			break
		}
		parent, ok := byID[s.Parent.SpanID()]
		if !ok {
			return fmt.Errorf("hop %d (%s): parent %s not exported; spans: %v", i, w.name, s.Parent.SpanID(), names(spans))
		}
		s = parent
	}
	if s.SpanContext.SpanID() != root.SpanContext.SpanID() || s.Parent.IsValid() {
		return fmt.Errorf("the chain ends at %q, not at the operator's root span", s.Name)
	}
	return nil
}

// TestHandlerCtxWithoutTracing: with tracing off everywhere the call still
// works and the handler's ctx carries no span.
func TestHandlerCtxWithoutTracing(t *testing.T) {
	got := make(chan trace.SpanContext, 1)
	st := startStack(t, nil, func(ctx context.Context, inv *sdk.Invocation) (*structpb.Struct, error) {
		select {
		case got <- trace.SpanContextFromContext(ctx):
		default:
		}
		return inv.Payload, nil
	})
	st.invoke(t)
	if sc := <-got; sc.IsValid() {
		t.Fatalf("handler ctx has span context %v with tracing off", sc)
	}
}

func names(spans tracetest.SpanStubs) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name + "/" + s.SpanKind.String()
	}
	return out
}
