package rooms

import (
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the rooms system's Prometheus metrics (docs/observability.md).
// Label values are fixed enumerations.
type metrics struct {
	streams     prometheus.Gauge
	liveRooms   prometheus.Gauge
	events      *prometheus.CounterVec
	eventKinds  map[string]prometheus.Counter
	deliveries  prometheus.Counter
	slow        prometheus.Counter
	rateLimited *prometheus.CounterVec
	logins      *prometheus.CounterVec
	conflicts   prometheus.Counter
	// playlistReads counts playlists read to fill a playlist change
	// delivered from the cluster's log (playlistNews).
	playlistReads prometheus.Counter
}

// eventKinds are the ServerMessage payloads that are room events.
var eventKinds = []string{"room_state", "chat", "danmaku", "member", "playlist", "room", "live"}

// newMetrics creates the metrics and registers them on reg (nil: they are
// kept but not exported).
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		streams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "croupier_rooms_streams",
			Help: "MessageStreams open on this node (gRPC/Connect and WebSocket)."}),
		liveRooms: prometheus.NewGauge(prometheus.GaugeOpts{Name: "croupier_rooms_live",
			Help: "Rooms loaded on this node: with a stream open or an operation in flight."}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "croupier_rooms_events_total",
			Help: "Room events published by this node, by kind."}, []string{"kind"}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{Name: "croupier_rooms_deliveries_total",
			Help: "Room events queued to members' streams on this node (one per event and member)."}),
		slow: prometheus.NewCounter(prometheus.CounterOpts{Name: "croupier_rooms_slow_consumers_total",
			Help: "Streams cut off because their queue was full (SLOW_CONSUMER)."}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "croupier_rooms_rate_limited_total",
			Help: "Chat and danmaku messages refused by the per-user rate limits."}, []string{"limit"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "croupier_rooms_logins_total",
			Help: "Player logins by result: ok, invalid (wrong username or password), throttled, error."}, []string{"result"}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "croupier_rooms_playback_conflicts_total",
			Help: "Playback changes refused because another change came first (PLAYBACK_VERSION_MISMATCH)."}),
		playlistReads: prometheus.NewCounter(prometheus.CounterOpts{Name: "croupier_rooms_playlist_reads_total",
			Help: "Playlists read from the database for playlist changes delivered from the cluster's log (one per burst of changes)."}),
	}
	m.eventKinds = make(map[string]prometheus.Counter, len(eventKinds))
	for _, k := range eventKinds {
		m.eventKinds[k] = m.events.WithLabelValues(k)
	}
	for k := range limitKinds {
		m.rateLimited.WithLabelValues(k.String())
	}
	for _, r := range []string{"ok", "invalid", "throttled", "error"} {
		m.logins.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.streams, m.liveRooms, m.events, m.deliveries, m.slow, m.rateLimited, m.logins, m.conflicts, m.playlistReads)
	}
	return m
}

// published counts one room event.
func (m *metrics) published(msg *clientv1.ServerMessage) {
	if c := m.eventKinds[eventKind(msg)]; c != nil {
		c.Inc()
	}
}

func eventKind(msg *clientv1.ServerMessage) string {
	switch msg.GetPayload().(type) {
	case *clientv1.ServerMessage_RoomState:
		return "room_state"
	case *clientv1.ServerMessage_Chat:
		return "chat"
	case *clientv1.ServerMessage_Danmaku:
		return "danmaku"
	case *clientv1.ServerMessage_Member:
		return "member"
	case *clientv1.ServerMessage_Playlist:
		return "playlist"
	case *clientv1.ServerMessage_Room:
		return "room"
	case *clientv1.ServerMessage_Live:
		return "live"
	}
	return ""
}
