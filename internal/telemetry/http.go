package telemetry

import (
	"context"
	"net/http"
	"strconv"
	"time"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
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
			Buckets: latencyBuckets,
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
// matches counts as "unmatched".
func (m *HTTPMetrics) Middleware(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		_, pattern := mux.Handler(r)
		rt := &route{pattern: pattern}
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		mux.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), routeKey{}, rt)))
		name := rt.pattern
		if name == "" {
			name = "unmatched"
		}
		m.requests.WithLabelValues(r.Method, name, strconv.Itoa(rec.code)).Inc()
		m.seconds.WithLabelValues(r.Method, name).Observe(time.Since(began).Seconds())
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
