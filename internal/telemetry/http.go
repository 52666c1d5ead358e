package telemetry

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// HTTPMetrics count REST requests by route template ("POST /api/v1/functions/{function_id=*}:invoke"),
// never by raw path, so the label set stays bounded whatever clients send.
type HTTPMetrics struct {
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

// NewHTTPMetrics creates the HTTP metrics and registers them on reg.
func NewHTTPMetrics(reg prometheus.Registerer) *HTTPMetrics {
	m := &HTTPMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "croupier_http_requests_total", Help: "HTTP requests by method, route template and status code.",
		}, []string{"method", "route", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "croupier_http_request_duration_seconds", Help: "HTTP request latency by method and route template (streams: until they end).",
			Buckets: LatencyBuckets,
		}, []string{"method", "route"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.seconds)
	}
	return m
}

// routeKey keys the *route a request's handlers fill in.
type routeKey struct{}

type route struct{ pattern string }

// Middleware measures every request served by mux. The route is mux's
// pattern for the request, refined by the REST gateway's own template
// (GatewayMiddleware) when the gateway serves it; a request no pattern
// matches counts as "unmatched". With a tracer provider, API requests
// (/api/...) also get a server span named after the route, continuing a
// W3C traceparent header, so a REST call is traced into the game server's
// handler just as a gRPC call is.
func (m *HTTPMetrics) Middleware(mux *http.ServeMux, tp trace.TracerProvider) http.Handler {
	var tracer trace.Tracer
	if tp != nil {
		tracer = tp.Tracer("github.com/croupier/croupier/internal/telemetry")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		_, pattern := mux.Handler(r)
		rt := &route{pattern: pattern}
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		ctx := context.WithValue(r.Context(), routeKey{}, rt)
		var span trace.Span
		if tracer != nil && strings.HasPrefix(r.URL.Path, "/api/") {
			ctx = Propagator().Extract(ctx, propagation.HeaderCarrier(r.Header))
			ctx, span = tracer.Start(ctx, pattern, trace.WithSpanKind(trace.SpanKindServer))
		}
		mux.ServeHTTP(rec, r.WithContext(ctx))
		name := rt.pattern
		if name == "" {
			name = "unmatched"
		}
		m.requests.WithLabelValues(r.Method, name, strconv.Itoa(rec.code)).Inc()
		m.seconds.WithLabelValues(r.Method, name).Observe(time.Since(began).Seconds())
		if span != nil {
			span.SetName(name) // the template, never the raw path
			span.SetAttributes(attribute.Int("http.response.status_code", rec.code))
			if rec.code >= http.StatusInternalServerError {
				span.SetStatus(otelcodes.Error, http.StatusText(rec.code))
			}
			span.End()
		}
	})
}

// GatewayMiddleware records grpc-gateway's route template for the request,
// e.g. "POST /api/v1/functions/{function_id=*}:invoke".
func GatewayMiddleware(next gwruntime.HandlerFunc) gwruntime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if rt, ok := r.Context().Value(routeKey{}).(*route); ok {
			if p, ok := gwruntime.HTTPPattern(r.Context()); ok {
				rt.pattern = r.Method + " " + p.String()
			}
		}
		next(w, r, params)
	}
}

// statusRecorder remembers the status code; it passes Flush through for
// the Server-Sent Event streams.
type statusRecorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.code, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
