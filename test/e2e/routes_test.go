package e2e

import (
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestRESTRoutes calls every route of the OpenAPI document over real HTTP
// and checks the server answers it: with a result or with a JSON status
// that carries Croupier's ErrorInfo — never the gateway's "no such route".
func TestRESTRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := newCluster(t)
	base := "https://" + c.http
	hc := restClient(t, c.certs, true)
	code, doc := do(t, hc, "GET", base+"/api/v1/openapi.json", "")
	if code != 200 {
		t.Fatalf("openapi: %d", code)
	}
	paths := doc["paths"].(map[string]any)
	keys := make([]string, 0, len(paths))
	for k := range paths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	param := regexp.MustCompile(`\{[^}]+\}`)
	calls := 0
	for _, path := range keys {
		for method := range paths[path].(map[string]any) {
			method = strings.ToUpper(method)
			url := base + param.ReplaceAllString(path, "x1")
			body := ""
			if method != http.MethodGet && method != http.MethodDelete {
				body = "{}"
			}
			req, _ := http.NewRequest(method, url, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			var m map[string]any
			err = json.NewDecoder(resp.Body).Decode(&m)
			resp.Body.Close()
			calls++
			switch {
			case err != nil && resp.Header.Get("Content-Type") != "text/event-stream":
				t.Errorf("%s %s: %d, body is not JSON: %v", method, path, resp.StatusCode, err)
			case resp.StatusCode == http.StatusNotFound && m["message"] == "Not Found",
				resp.StatusCode == http.StatusMethodNotAllowed, resp.StatusCode == http.StatusNotImplemented:
				t.Errorf("%s %s: route not served (%d %v)", method, path, resp.StatusCode, m)
			case resp.StatusCode >= 400 && !strings.Contains(toJSON(m), "croupier.v1.ErrorInfo") && resp.StatusCode != http.StatusBadRequest:
				t.Errorf("%s %s: %d without ErrorInfo: %v", method, path, resp.StatusCode, m)
			}
		}
	}
	if calls < 60 {
		t.Fatalf("only %d routes in the OpenAPI document", calls)
	}
}

// TestRESTRateLimit checks a 429 with Retry-After when an operator calls
// faster than rate_user allows.
func TestRESTRateLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := newCluster(t, "--rate-user", "1", "--rate-user-burst", "2")
	hc := restClient(t, c.certs, true)
	url := "https://" + c.http + "/api/v1/functions/game.stats:invoke"
	var last *http.Response
	for i := 0; i < 4; i++ {
		req, _ := http.NewRequest("POST", url, strings.NewReader(`{"game_id":"demo","env":"dev"}`))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		last = resp
		if resp.StatusCode == http.StatusTooManyRequests {
			break
		}
	}
	if last.StatusCode != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
		t.Fatalf("4 calls at burst 2: last status %d, Retry-After %q", last.StatusCode, last.Header.Get("Retry-After"))
	}
}
