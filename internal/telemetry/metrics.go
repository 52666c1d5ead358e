package telemetry

import (
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
)

// Metric label values are bounded: function ids come from the registry
// (registered functions only), the other labels from fixed enumerations.

// LatencyBuckets span a loopback invoke (~100 µs) to a slow game handler
// (tens of seconds); every latency histogram uses them.
var LatencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Metrics are the application metrics. A nil *Metrics records nothing.
type Metrics struct {
	invokeSeconds *prometheus.HistogramVec

	tunnelInFlight *prometheus.GaugeVec
	tunnelQueued   *prometheus.GaugeVec
	tunnelConnects *prometheus.CounterVec
	tunnelCalls    *prometheus.CounterVec
	tunnelBeats    *prometheus.CounterVec

	jobEvents *prometheus.CounterVec
	// jobEventsDropped counts events acknowledged but not stored (a job
	// over its event budget).
	jobEventsDropped prometheus.Counter

	auditCommitSeconds prometheus.Histogram
	auditBatchRows     prometheus.Histogram
	auditFailures      prometheus.Counter

	rateLimited *prometheus.CounterVec
}

// NewMetrics creates the application metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		invokeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "croupier_invoke_duration_seconds", Help: "Time to run InvokeFunction from admission to response, by function, routing mode and outcome code.",
			Buckets: LatencyBuckets,
		}, []string{"game", "env", "function", "routing_mode", "code"}),
		tunnelInFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "croupier_tunnel_requests_in_flight", Help: "Tunnel requests sent to a client and not yet answered.",
		}, []string{"tunnel"}),
		tunnelQueued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "croupier_tunnel_queue_depth", Help: "Tunnel requests waiting for a free slot or for the connection's writer.",
		}, []string{"tunnel"}),
		tunnelConnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "croupier_tunnel_connections_total", Help: "Tunnel connections accepted (connect) and ended (disconnect).",
		}, []string{"tunnel", "event"}),
		tunnelCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "croupier_tunnel_calls_total", Help: "Calls over the tunnel by outcome code.",
		}, []string{"tunnel", "code"}),
		tunnelBeats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "croupier_tunnel_heartbeats_total", Help: "Client pings the server counted as the client's heartbeat.",
		}, []string{"tunnel"}),
		jobEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "croupier_job_events_total", Help: "Job events recorded, by event type.",
		}, []string{"type"}),
		jobEventsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "croupier_job_events_dropped_total", Help: "Job events acknowledged but not stored: their job was over its event budget (job_max_event_bytes).",
		}),
		auditCommitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "croupier_audit_commit_duration_seconds", Help: "Time to write one audit group-commit batch.",
			Buckets: LatencyBuckets,
		}),
		auditBatchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "croupier_audit_batch_rows", Help: "Rows written per audit group-commit batch.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "croupier_audit_commit_failures_total", Help: "Audit batches that failed to commit (their rows are lost and their calls fail).",
		}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "croupier_ratelimit_refusals_total", Help: "Calls refused by the rate limiter, by the bucket that refused (user or function).",
		}, []string{"limit"}),
	}
	// Series of known label values exist from the start (at 0), so rates
	// and dashboards work before the first event.
	for _, name := range croupierv1.EventType_name {
		m.jobEvents.WithLabelValues(name)
	}
	m.rateLimited.WithLabelValues("user")
	m.rateLimited.WithLabelValues("function")
	if reg != nil {
		reg.MustRegister(m.invokeSeconds, m.tunnelInFlight, m.tunnelQueued, m.tunnelConnects, m.tunnelCalls, m.tunnelBeats,
			m.jobEvents, m.jobEventsDropped, m.auditCommitSeconds, m.auditBatchRows, m.auditFailures, m.rateLimited)
	}
	return m
}

// ObserveInvoke records one InvokeFunction call.
func (m *Metrics) ObserveInvoke(game, env, function, mode, code string, d time.Duration) {
	if m == nil {
		return
	}
	m.invokeSeconds.WithLabelValues(game, env, function, mode, code).Observe(d.Seconds())
}

// Tunnel returns the gauges and counters of one tunnel ("agents" on the
// server, "sdk" on an agent). Its methods are safe on a nil *Metrics.
func (m *Metrics) Tunnel(name string) *TunnelMetrics {
	if m == nil {
		return nil
	}
	t := &TunnelMetrics{
		InFlight:    m.tunnelInFlight.WithLabelValues(name),
		Queued:      m.tunnelQueued.WithLabelValues(name),
		connects:    m.tunnelConnects.WithLabelValues(name, "connect"),
		disconnects: m.tunnelConnects.WithLabelValues(name, "disconnect"),
		heartbeats:  m.tunnelBeats.WithLabelValues(name),
	}
	// One series per gRPC code, resolved now: the call path only indexes.
	for c := range t.calls {
		t.calls[c] = m.tunnelCalls.WithLabelValues(name, codes.Code(c).String())
	}
	return t
}

// TunnelMetrics are one tunnel's pre-resolved metrics. A nil *TunnelMetrics
// records nothing.
type TunnelMetrics struct {
	InFlight, Queued      prometheus.Gauge
	connects, disconnects prometheus.Counter
	heartbeats            prometheus.Counter
	calls                 [codes.Unauthenticated + 1]prometheus.Counter
}

// Connected records an accepted connection.
func (t *TunnelMetrics) Connected() {
	if t != nil {
		t.connects.Inc()
	}
}

// Disconnected records an ended connection.
func (t *TunnelMetrics) Disconnected() {
	if t != nil {
		t.disconnects.Inc()
	}
}

// Heartbeat records a client ping counted as the client's heartbeat.
func (t *TunnelMetrics) Heartbeat() {
	if t != nil {
		t.heartbeats.Inc()
	}
}

// AddInFlight moves the in-flight gauge by d.
func (t *TunnelMetrics) AddInFlight(d float64) {
	if t != nil {
		t.InFlight.Add(d)
	}
}

// AddQueued moves the queue-depth gauge by d.
func (t *TunnelMetrics) AddQueued(d float64) {
	if t != nil {
		t.Queued.Add(d)
	}
}

// Call records one finished call with its gRPC code.
func (t *TunnelMetrics) Call(code codes.Code) {
	if t == nil {
		return
	}
	if int(code) >= len(t.calls) {
		code = codes.Unknown
	}
	t.calls[code].Inc()
}

// JobEvent records one job event of the given type (STARTED, PROGRESS, ...).
func (m *Metrics) JobEvent(typ string) {
	if m != nil {
		m.jobEvents.WithLabelValues(typ).Inc()
	}
}

// JobEventsDropped records n job events acknowledged but not stored.
func (m *Metrics) JobEventsDropped(n int) {
	if m != nil && n > 0 {
		m.jobEventsDropped.Add(float64(n))
	}
}

// AuditCommit records one audit batch of rows that took d; failed batches
// count separately.
func (m *Metrics) AuditCommit(rows int, d time.Duration, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.auditFailures.Inc()
		return
	}
	m.auditCommitSeconds.Observe(d.Seconds())
	m.auditBatchRows.Observe(float64(rows))
}

// RateLimited records a refusal by the named bucket ("user" or "function").
func (m *Metrics) RateLimited(limit string) {
	if m != nil {
		m.rateLimited.WithLabelValues(limit).Inc()
	}
}
