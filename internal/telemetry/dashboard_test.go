package telemetry_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/croupier/croupier/sdk"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/types/known/structpb"
)

// metricName matches the metric names a PromQL expression can query here:
// ours and the standard Go, process and gRPC families.
var metricName = regexp.MustCompile(`\b(?:croupier|grpc_server|go|process)_[a-zA-Z0-9_]+\b`)

// TestDashboardQueriesExportedMetrics parses the Grafana dashboard and checks
// every metric it queries against a scrape of a real server's /metrics
// after a gRPC and a REST invoke.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/grafana/croupier.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}

	st := startStack(t, nil, func(_ context.Context, inv *sdk.Invocation) (*structpb.Struct, error) { return inv.Payload, nil })
	st.invoke(t)
	base := "http://" + st.srv.HTTPAddr()
	resp, err := http.Post(base+"/api/v1/functions/echo:invoke", "application/json",
		strings.NewReader(`{"game_id":"demo","env":"dev","payload":{"x":"y"}}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("REST invoke: %s", resp.Status)
	}

	// The REST metrics are recorded just after the response is written:
	// poll the scrape until they are there.
	expected := []string{`croupier_http_requests_total{code="200",method="POST",route="POST /api/v1/functions/{function_id=*}:invoke"}`,
		`croupier_invoke_duration_seconds_count{code="OK",env="dev",function="echo",game="demo",routing_mode="lb"}`,
		`grpc_server_handled_total{grpc_code="OK",grpc_method="InvokeFunction",grpc_service="croupier.v1.FunctionService",grpc_type="unary"}`,
	}
	var exported map[string]bool
	waitFor(t, 10*time.Second, "the invokes' series in /metrics", func() bool {
		exported = scrape(t, base+"/metrics")
		for _, name := range expected {
			if !exported[name] {
				return false
			}
		}
		return true
	})
	// Every metric of ours is documented.
	doc, err := os.ReadFile("../../docs/observability.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range exported {
		if strings.HasPrefix(name, "croupier_") && !strings.ContainsAny(name, "{") && !strings.HasSuffix(name, "_bucket") &&
			!strings.HasSuffix(name, "_sum") && !strings.HasSuffix(name, "_count") && !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("metric %s is not documented in docs/observability.md", name)
		}
	}
	queried := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			names := metricName.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q names no known metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				queried++
				if !exported[n] {
					t.Errorf("panel %q queries %s, which the server does not export", p.Title, n)
				}
			}
		}
	}
	if queried < 20 {
		t.Fatalf("the dashboard queries only %d metrics", queried)
	}
}

// scrape returns the metric names /metrics exports (histograms as their
// _bucket, _sum and _count series) and, for series, name{labels}.
func scrape(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	out := map[string]bool{}
	for name, f := range families {
		out[name] = true
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			out[name+"{"+strings.Join(labels, ",")+"}"] = true
			if m.GetHistogram() != nil {
				out[name+"_count{"+strings.Join(labels, ",")+"}"] = true
			}
		}
		if f.GetType().String() == "HISTOGRAM" {
			out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = true, true, true
		}
	}
	return out
}
