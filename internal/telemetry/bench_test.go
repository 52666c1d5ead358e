package telemetry_test

import (
	"testing"
	"time"

	"github.com/croupier/croupier/internal/telemetry"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
)

// BenchmarkInvokePathMetrics is what one invoke over one tunnel hop costs in
// metrics: the invoke histogram and the tunnel's gauges and call counter.
func BenchmarkInvokePathMetrics(b *testing.B) {
	m := telemetry.NewMetrics(prometheus.NewRegistry())
	tm := m.Tunnel("agents")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tm.AddQueued(1)
			tm.AddQueued(-1)
			tm.AddInFlight(1)
			tm.AddInFlight(-1)
			tm.Call(codes.OK)
			m.ObserveInvoke("demo", "dev", "player.ban", "lb", "OK", 120*time.Microsecond)
		}
	})
}

// BenchmarkNilMetrics is the same with metrics off.
func BenchmarkNilMetrics(b *testing.B) {
	var m *telemetry.Metrics
	tm := m.Tunnel("agents")
	b.ReportAllocs()
	for b.Loop() {
		tm.AddQueued(1)
		tm.AddInFlight(1)
		tm.Call(codes.OK)
		m.ObserveInvoke("demo", "dev", "player.ban", "lb", "OK", time.Microsecond)
	}
}
