package audit_test

import (
	"sync"
	"testing"

	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/store/storetest"
	"github.com/croupier/croupier/internal/telemetry"
	"github.com/prometheus/client_golang/prometheus"
)

// TestCommitMetrics: every batch observes its latency and its row count,
// and the rows of all batches add up to the entries recorded.
func TestCommitMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	l, err := audit.New(audit.Config{Store: storetest.SQLite(t), Metrics: telemetry.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if err := l.Record(ctx, audit.Entry{Actor: "operator:bob", Action: audit.ActionInvoke, Game: "a", Env: "prod"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				got[f.GetName()] = [2]float64{float64(h.GetSampleCount()), h.GetSampleSum()}
			}
		}
	}
	rows, commits := got["croupier_audit_batch_rows"], got["croupier_audit_commit_duration_seconds"]
	if rows[1] != n || rows[0] < 1 || rows[0] > n || commits[0] != rows[0] {
		t.Fatalf("batches %v rows (count, sum), commits %v; want %d rows in 1..%d batches, one latency per batch", rows, commits, n, n)
	}
}
