package ratelimit_test

import (
	"strings"
	"testing"

	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/telemetry"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRefusalsAreCounted: each refusal counts once, under the bucket that
// refused it.
func TestRefusalsAreCounted(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	l, _ := newLimiter(t, ratelimit.Config{PerUser: ratelimit.Rate{PerSecond: 1, Burst: 1},
		PerFunction: ratelimit.Rate{PerSecond: 0.5, Burst: 1}, Metrics: telemetry.NewMetrics(reg)})
	for i, c := range []struct {
		user, fn string
		refused  bool
	}{
		{"bob", "f", false},
		{"bob", "f", true},  // both empty; the function's wait is longer
		{"amy", "f", true},  // the function's bucket
		{"bob", "f2", true}, // bob's bucket
	} {
		if err := l.Allow(c.user, "g", "e", c.fn); (err != nil) != c.refused {
			t.Fatalf("call %d: %v, want refused=%v", i, err, c.refused)
		}
	}
	want := `
# HELP croupier_ratelimit_refusals_total Calls refused by the rate limiter, by the bucket that refused (user or function).
# TYPE croupier_ratelimit_refusals_total counter
croupier_ratelimit_refusals_total{limit="function"} 2
croupier_ratelimit_refusals_total{limit="user"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "croupier_ratelimit_refusals_total"); err != nil {
		t.Fatal(err)
	}
}
