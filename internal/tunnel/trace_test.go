package tunnel

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/croupier/croupier/internal/telemetry"
)

// TestTraceContextTravelsWithRequest: on both transports the handler's ctx
// continues the caller's trace — with a span of its own under the server's
// call span when both sides trace, and as the caller's remote span context
// when the client has no tracer.
func TestTraceContextTravelsWithRequest(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			e := newEnv(t, tr, ServerOptions{TracerProvider: tp})

			got := make(chan trace.SpanContext, 2)
			handlers := func() *HandlerRegistry {
				reg := NewHandlerRegistry()
				mustRegister(t, reg, func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
					got <- trace.SpanContextFromContext(ctx)
					return req, nil
				})
				return reg
			}
			e.startClient(ClientOptions{Name: "traced", Handlers: handlers(), TracerProvider: tp})
			e.startClient(ClientOptions{Name: "plain", Handlers: handlers()})

			ctx, root := tp.Tracer("test").Start(context.Background(), "operator")
			defer root.End()
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()

			if _, err := Call[*wrapperspb.StringValue](ctx, e.srv, "traced", wrapperspb.String("x")); err != nil {
				t.Fatal(err)
			}
			hsc := <-got
			spans := exp.GetSpans()
			byID := map[trace.SpanID]tracetest.SpanStub{}
			for _, s := range spans {
				byID[s.SpanContext.SpanID()] = s
			}
			handler, ok := byID[hsc.SpanID()]
			if !ok || handler.SpanKind != trace.SpanKindServer || handler.Name != "croupier.tunnel/google.protobuf.StringValue" {
				t.Fatalf("handler ctx span %v is not the client's server span; spans %v", hsc, spans)
			}
			call := byID[handler.Parent.SpanID()]
			if call.SpanKind != trace.SpanKindClient || call.Parent.SpanID() != root.SpanContext().SpanID() {
				t.Fatalf("handler span's parent %q (%s) is not the call span under the operator's", call.Name, call.SpanKind)
			}
			if hsc.TraceID() != root.SpanContext().TraceID() {
				t.Fatalf("handler trace %s, want %s", hsc.TraceID(), root.SpanContext().TraceID())
			}

			exp.Reset()
			if _, err := Call[*wrapperspb.StringValue](ctx, e.srv, "plain", wrapperspb.String("x")); err != nil {
				t.Fatal(err)
			}
			psc := <-got
			if !psc.IsRemote() || psc.TraceID() != root.SpanContext().TraceID() {
				t.Fatalf("untraced client's handler ctx has %v, want the caller's remote span context", psc)
			}
			if call := exp.GetSpans(); len(call) != 1 || call[0].SpanContext.SpanID() != psc.SpanID() {
				t.Fatalf("untraced client's handler does not continue the server's call span: %v vs %v", psc, call)
			}

			// No trace in the caller's ctx: nothing reaches the handler.
			bctx, bcancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer bcancel()
			e2 := newEnv(t, tr, ServerOptions{})
			e2.startClient(ClientOptions{Name: "plain", Handlers: handlers()})
			if _, err := Call[*wrapperspb.StringValue](bctx, e2.srv, "plain", wrapperspb.String("x")); err != nil {
				t.Fatal(err)
			}
			if sc := <-got; sc.IsValid() {
				t.Fatalf("handler ctx has span context %v though the caller had none", sc)
			}
		})
	}
}

// TestTunnelMetrics: in-flight and queue-depth gauges follow a call that
// waits for a busy client's only slot, and return to 0; connections count.
func TestTunnelMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	tm := telemetry.NewMetrics(reg).Tunnel("agents")
	e := newEnv(t, transports[0], ServerOptions{Metrics: tm})
	release := make(chan struct{})
	hung := NewHandlerRegistry()
	mustRegister(t, hung, func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		select {
		case <-release:
			return req, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	e.startClient(ClientOptions{Name: "busy", Handlers: hung, MaxInFlight: 1})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := Call[*wrapperspb.StringValue](ctx, e.srv, "busy", wrapperspb.String("x"))
			done <- err
		}()
	}
	waitFor(t, 5*time.Second, func() bool {
		return testutil.ToFloat64(tm.InFlight) == 1 && testutil.ToFloat64(tm.Queued) == 1
	}, "one call in flight and one queued (in flight %v, queued %v)", testutil.ToFloat64(tm.InFlight), testutil.ToFloat64(tm.Queued))
	close(release)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if f, q := testutil.ToFloat64(tm.InFlight), testutil.ToFloat64(tm.Queued); f != 0 || q != 0 {
		t.Fatalf("after the calls: in flight %v, queued %v; want 0, 0", f, q)
	}
	if n := counterValue(t, reg, "croupier_tunnel_calls_total", "code", "OK"); n != 2 {
		t.Fatalf("croupier_tunnel_calls_total{code=OK} = %v, want 2", n)
	}
	if n := counterValue(t, reg, "croupier_tunnel_connections_total", "event", "connect"); n != 1 {
		t.Fatalf("croupier_tunnel_connections_total{event=connect} = %v, want 1", n)
	}
}

// counterValue reads the counter series of name whose label has value.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("%s{%s=%q} not exported", name, label, value)
	return 0
}
