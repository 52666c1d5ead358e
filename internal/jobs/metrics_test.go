package jobs

import (
	"strings"
	"testing"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/telemetry"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestEventMetrics: each event stored counts once by type; re-sent events
// (already stored) do not count again.
func TestEventMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	h := newHarness(t, func(c *Config) { c.Metrics = telemetry.NewMetrics(reg) })
	id := h.startRunning(t)
	h.mustReport(t, id, 2, ev(1, croupierv1.EventType_START, "started"), progress(2, 0.25))
	h.mustReport(t, id, 3, ev(1, croupierv1.EventType_START, "started"), progress(2, 0.25), progress(3, 0.5))
	h.mustReport(t, id, 4, ev(4, croupierv1.EventType_DONE, "done"))
	var want strings.Builder
	want.WriteString("# HELP croupier_job_events_total Job events recorded, by event type.\n# TYPE croupier_job_events_total counter\n")
	for _, typ := range []string{"CANCELED", "DONE", "ERROR", "LOG", "PROGRESS", "START"} {
		n := map[string]string{"DONE": "1", "PROGRESS": "2", "START": "1"}[typ]
		if n == "" {
			n = "0"
		}
		want.WriteString(`croupier_job_events_total{type="` + typ + `"} ` + n + "\n")
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want.String()), "croupier_job_events_total"); err != nil {
		t.Fatal(err)
	}
}
