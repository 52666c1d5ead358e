package live

import "github.com/prometheus/client_golang/prometheus"

// metrics are the live system's Prometheus metrics (docs/live.md).
type metrics struct {
	streams     prometheus.Gauge
	viewers     prometheus.Gauge
	ingestBytes prometheus.Counter
	viewerDrops prometheus.Counter
	refused     *prometheus.CounterVec
	relayPulls  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		streams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "croupier_live_streams",
			Help: "Live streams on this node, published here or relayed."}),
		viewers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "croupier_live_viewers",
			Help: "HTTP-FLV viewers and relay pulls attached to streams on this node."}),
		ingestBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "croupier_live_ingest_bytes_total",
			Help: "FLV tag bytes received from publishers and relays."}),
		viewerDrops: prometheus.NewCounter(prometheus.CounterOpts{Name: "croupier_live_viewer_drops_total",
			Help: "Times a slow viewer's queue overflowed and it was skipped to the next keyframe."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "croupier_live_publish_refused_total",
			Help: "RTMP publishes refused, by reason."}, []string{"reason"}),
		relayPulls: prometheus.NewGauge(prometheus.GaugeOpts{Name: "croupier_live_relay_pulls",
			Help: "Streams this node pulls from another node."}),
	}
	if reg != nil {
		reg.MustRegister(m.streams, m.viewers, m.ingestBytes, m.viewerDrops, m.refused, m.relayPulls)
	}
	return m
}
