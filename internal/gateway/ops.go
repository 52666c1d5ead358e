package gateway

import (
	"time"
)

// The methods below are the gateway's operator surface: the built-in
// functions of a gateway node (internal/gatewayops) call them. They apply
// the same rules as the business commands of the same name.

// MetricNames names the Metrics items 0–6 (netsvr's numbering).
var MetricNames = [metricItems]string{
	"conn_open", "conn_close", "heartbeat", "transfer_count", "transfer_bytes", "write_count", "write_bytes",
}

// Meter is one Metrics item: its count, mean rate and 1/5/15-minute rates
// (per second) and their maxima.
type Meter struct {
	Count       int64   `json:"count"`
	MeanRate    float64 `json:"mean_rate"`
	MeanRateMax float64 `json:"mean_rate_max"`
	Rate1       float64 `json:"rate1"`
	Rate1Max    float64 `json:"rate1_max"`
	Rate5       float64 `json:"rate5"`
	Rate5Max    float64 `json:"rate5_max"`
	Rate15      float64 `json:"rate15"`
	Rate15Max   float64 `json:"rate15_max"`
}

// Stats is a snapshot of the gateway for operators.
type Stats struct {
	ServerID   int              `json:"server_id"`
	Online     int              `json:"online"`
	Topics     int              `json:"topics"`
	Businesses int              `json:"businesses"`
	Metrics    map[string]Meter `json:"metrics"` // the kept items (metrics_items), by MetricNames
}

// ServerID is the gateway's server id.
func (g *Gateway) ServerID() int { return g.cfg.ServerID }

// Stats returns the online and topic counts and the kept Metrics items.
func (g *Gateway) Stats() Stats {
	elapsed := time.Since(g.metrics.start)
	s := Stats{ServerID: g.cfg.ServerID, Online: g.hub.count(), Topics: g.hub.topicCount(),
		Businesses: g.businesses.count(), Metrics: map[string]Meter{}}
	for _, i := range g.cfg.MetricsItems {
		it := g.metrics.meters[i].item(elapsed)
		s.Metrics[MetricNames[i]] = Meter{
			Count: it.Count, MeanRate: float64(it.MeanRate), MeanRateMax: float64(it.MeanRateMax),
			Rate1: float64(it.Rate1), Rate1Max: float64(it.Rate1Max), Rate5: float64(it.Rate5), Rate5Max: float64(it.Rate5Max),
			Rate15: float64(it.Rate15), Rate15Max: float64(it.Rate15Max),
		}
	}
	return s
}

// Online returns those of uniqIDs that are online here (CheckOnline).
func (g *Gateway) Online(uniqIDs []string) []string { return g.hub.online(uniqIDs) }

// Broadcast sends data to every online client (Broadcast) and returns how
// many it was written to.
func (g *Gateway) Broadcast(data []byte) int {
	cs := g.hub.all()
	g.fanOut(cs, data)
	return len(cs)
}

// Publish sends data to the members of topics, each once (TopicPublish),
// and returns how many it was written to.
func (g *Gateway) Publish(topics []string, data []byte) int {
	cs := g.hub.members(topics)
	g.fanOut(cs, data)
	return len(cs)
}

// Kick forces the online ones among uniqIDs offline (ForceOffline, from a
// business or an operator): data,
// when not empty, is sent and the connection closed forceOfflineDelay
// later; without data it is closed at once. It returns the uniqIds kicked,
// each once: a connection named more than once is kicked (and sent data)
// once.
func (g *Gateway) Kick(uniqIDs []string, data []byte) []string {
	var f []byte
	if len(data) > 0 {
		f = g.frame(data)
	}
	cs := g.hub.lookup(uniqIDs)
	out := make([]string, 0, len(cs))
	seen := make(map[*client]struct{}, len(cs))
	for _, c := range cs {
		if _, dup := seen[c]; dup {
			continue
		}
		seen[c] = struct{}{}
		uniqID, _ := g.hub.identity(c)
		out = append(out, uniqID)
		c.sendAndClose(f)
	}
	return out
}
