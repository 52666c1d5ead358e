package server

import (
	"context"

	tunnelv1 "github.com/croupier/croupier/api/croupier/tunnel/v1"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/telemetry"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/stats"
)

// observability is what the server exports: the /metrics registry, the
// application and RPC metrics, and the tracer provider (nil: tracing off).
type observability struct {
	registry *prometheus.Registry
	app      *telemetry.Metrics
	rpc      *grpcprom.ServerMetrics
	http     *telemetry.HTTPMetrics
	tracing  *telemetry.Tracing
}

// openTelemetry creates the metrics registry and, when configured, the
// trace exporter. It runs before the components that report to them.
func (s *Server) openTelemetry(ctx context.Context) error {
	tr, err := telemetry.NewTracing(ctx, telemetry.TracingConfig{Endpoint: s.cfg.OTLPEndpoint, Insecure: s.cfg.OTLPInsecure,
		SampleRatio: s.cfg.TraceSampleRatio, ServiceName: "croupier-server"})
	if err != nil {
		return err
	}
	if s.tracerProvider != nil { // set by tests
		tr = &telemetry.Tracing{Provider: s.tracerProvider}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rpc := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramBuckets(telemetry.LatencyBuckets)))
	reg.MustRegister(rpc)
	s.obs = &observability{registry: reg, app: telemetry.NewMetrics(reg), rpc: rpc, http: telemetry.NewHTTPMetrics(reg), tracing: tr}
	s.metrics = reg
	return nil
}

// registerStateMetrics exports the gauges read at scrape time; it runs once
// the store and the tunnel exist.
func (s *Server) registerStateMetrics() {
	count := func(t store.StatusCounted) telemetry.CountFunc {
		return func(ctx context.Context) (map[string]int64, error) { return s.store.CountByStatus(ctx, t) }
	}
	log := s.log.With("component", "metrics")
	s.obs.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "croupier_tunnel_clients", Help: "Agents with an open tunnel."},
			func() float64 { return float64(len(s.tunnel.Clients())) }),
		telemetry.NewStateCollector("croupier_jobs", "Jobs by state (read from the store at scrape time).",
			[]string{store.JobPending, store.JobRunning, store.JobCompleted, store.JobFailed, store.JobCanceled}, count(store.CountJobs), log),
		telemetry.NewStateCollector("croupier_fleet_processes", "Game-server processes by state (read from the store at scrape time).",
			[]string{"LAUNCHING", "ACTIVE", "TERMINATING", "TERMINATED", "CRASHED"}, count(store.CountProcesses), log),
		telemetry.NewStateCollector("croupier_fleet_sessions", "Game-server sessions by state (read from the store at scrape time).",
			[]string{"ACTIVATING", "ACTIVE", "TERMINATING", "TERMINATED", "ERROR"}, count(store.CountSessions), log),
	)
}

// telemetryOptions are the gRPC server options for RPC metrics (every
// method: count, latency, code) and tracing. They go first in the chain so
// calls refused by authentication are counted too.
func (s *Server) telemetryOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.obs.rpc.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(s.obs.rpc.StreamServerInterceptor()),
	}
	if tp := s.obs.tracing.Provider; tp != nil {
		opts = append(opts, grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(telemetry.Propagator()),
			otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()), // RPC metrics come from Prometheus above
			otelgrpc.WithFilter(func(info *stats.RPCTagInfo) bool {
				// A tunnel stream lives as long as the agent: a span per
				// call inside it is what matters (internal/tunnel). Health
				// probes are noise.
				return info.FullMethodName != tunnelv1.TunnelService_Connect_FullMethodName &&
					info.FullMethodName != healthpb.Health_Check_FullMethodName
			}))))
	}
	return opts
}

// inprocTracing carries the REST request's trace into the in-process gRPC
// hop, so the REST span is the parent of the service's span.
func (s *Server) inprocTracing() []grpc.DialOption {
	tp := s.obs.tracing.Provider
	if tp == nil {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(telemetry.Propagator()),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider())))}
}
