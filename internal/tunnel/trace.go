package tunnel

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
)

// Trace context crosses the tunnel the way it crosses gRPC: as W3C
// traceparent/tracestate entries, here in Request.metadata. The server
// injects the caller's span (or, with a TracerProvider, a client span for
// the call) and the client extracts it into the handler's context, under a
// server span when it has a TracerProvider. So a handler on the far side of
// one or two tunnels (server → agent → SDK) works inside the operator's
// trace. Without a span in the caller's context nothing is added to the
// frame and nothing is allocated.

const (
	tracerName = "github.com/croupier/croupier/internal/tunnel"
	// Bounds on Request.metadata, checked on receipt.
	maxMetadataEntries = 16
	maxMetadataBytes   = 256
)

// traceContext is the W3C propagator; it is stateless.
var traceContext = propagation.TraceContext{}

func newTracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(tracerName)
}

// spanName names a tunnel call by its request type, as otelgrpc names a
// gRPC call by its method.
func spanName(a *anypb.Any) string {
	url := a.GetTypeUrl()
	return "croupier.tunnel/" + url[strings.LastIndexByte(url, '/')+1:]
}

// startCallSpan starts the caller-side span of a call (with a tracer) and
// returns the metadata carrying the context to the client, nil if there is
// no trace to continue.
func startCallSpan(ctx context.Context, t trace.Tracer, client string, payload *anypb.Any) (context.Context, trace.Span, map[string]string) {
	var span trace.Span
	if t != nil {
		ctx, span = t.Start(ctx, spanName(payload), trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("rpc.system", "croupier_tunnel"), attribute.String("croupier.tunnel.client", client)))
	}
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, span, nil
	}
	md := make(map[string]string, 2)
	traceContext.Inject(ctx, propagation.MapCarrier(md))
	return ctx, span, md
}

// startHandlerSpan puts the caller's trace context from md into ctx and,
// with a tracer, starts the handler-side span under it.
func startHandlerSpan(ctx context.Context, t trace.Tracer, name string, payload *anypb.Any, md map[string]string) (context.Context, trace.Span) {
	if len(md) > 0 {
		ctx = traceContext.Extract(ctx, propagation.MapCarrier(md))
	}
	if t == nil {
		return ctx, nil
	}
	return t.Start(ctx, spanName(payload), trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("rpc.system", "croupier_tunnel"), attribute.String("croupier.tunnel.client", name)))
}

// endSpan ends span (if any) with the call's gRPC code; err, if any, gives
// the status message.
func endSpan(span trace.Span, code codes.Code, err error) {
	if span == nil {
		return
	}
	span.SetAttributes(attribute.Int("rpc.grpc.status_code", int(code)))
	if code != codes.OK {
		span.SetStatus(otelcodes.Error, status.Convert(err).Message())
	}
	span.End()
}

func validateMetadata(md map[string]string) error {
	if len(md) > maxMetadataEntries {
		return status.Errorf(codes.Internal, "request metadata has more than %d entries", maxMetadataEntries)
	}
	for k, v := range md {
		if len(k) > maxMetadataBytes || len(v) > maxMetadataBytes {
			return status.Errorf(codes.Internal, "request metadata entry longer than %d bytes", maxMetadataBytes)
		}
	}
	return nil
}
