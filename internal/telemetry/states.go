package telemetry

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CountFunc counts the rows of something in each state.
type CountFunc func(ctx context.Context) (map[string]int64, error)

// stateCollector is a gauge per state read from the store at scrape time, so
// the numbers hold across restarts and across server nodes sharing a
// database (every node reports the same totals: aggregate with max, not sum).
type stateCollector struct {
	desc    *prometheus.Desc
	states  []string
	count   CountFunc
	timeout time.Duration
	log     *slog.Logger
}

// NewStateCollector returns a collector exporting name{state=...} from
// count at each scrape. Every state in states is exported, as 0 when count
// has none, so a dashboard sees the full set; a failed count exports
// nothing and is logged.
func NewStateCollector(name, help string, states []string, count CountFunc, log *slog.Logger) prometheus.Collector {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &stateCollector{desc: prometheus.NewDesc(name, help, []string{"state"}, nil),
		states: states, count: count, timeout: 5 * time.Second, log: log}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	counts, err := c.count(ctx)
	if err != nil {
		c.log.Warn("metrics: count by state", "metric", c.desc.String(), "err", err)
		return
	}
	for _, st := range c.states {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[st]), st)
	}
	for st, n := range counts {
		if !contains(c.states, st) {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), st)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
