package telemetry

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// TracingConfig configures trace export. An empty Endpoint means tracing is
// off.
type TracingConfig struct {
	// Endpoint is the OTLP/gRPC collector, host:port.
	Endpoint string
	// Insecure sends spans without TLS.
	Insecure bool
	// SampleRatio is the share of new (parentless) traces kept; a sampled
	// parent is always followed.
	SampleRatio float64
	// ServiceName identifies this process in traces ("croupier-server",
	// "croupier-agent").
	ServiceName string
}

// Tracing is a configured tracer provider; its zero value (tracing off) is
// ready to use.
type Tracing struct {
	// Provider is nil when tracing is off: components then start no spans
	// and install no tracing middleware.
	Provider trace.TracerProvider
	shutdown func(context.Context) error
}

// NewTracing sets up the exporter and provider cfg asks for. It does not
// contact the collector: spans are exported in the background and dropped
// (with the SDK's own error log) while it is unreachable.
func NewTracing(ctx context.Context, cfg TracingConfig) (*Tracing, error) {
	if cfg.Endpoint == "" {
		return &Tracing{}, nil
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.Endpoint)}
	if cfg.Insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w", cfg.Endpoint, err)
	}
	tp := NewTracerProvider(cfg.ServiceName, cfg.SampleRatio, sdktrace.WithBatcher(exp))
	return &Tracing{Provider: tp, shutdown: tp.Shutdown}, nil
}

// NewTracerProvider returns an SDK provider for service with a parent-based
// ratio sampler; tests pass an in-memory exporter with sdktrace.WithSyncer.
func NewTracerProvider(service string, ratio float64, opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	res := resource.NewSchemaless(semconv.ServiceName(service))
	opts = append([]sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	}, opts...)
	return sdktrace.NewTracerProvider(opts...)
}

// Shutdown flushes buffered spans; it is a no-op when tracing is off.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// Propagator is the W3C trace-context propagator used on every hop (gRPC
// metadata and tunnel frames alike).
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }
