package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestConsoleMountedBesideTheAPI checks the web console answers / and its
// files, and nothing the server mounts itself.
func TestConsoleMountedBesideTheAPI(t *testing.T) {
	s, _, _ := testServer(t, nil)
	base := "http://" + s.HTTPAddr()
	for _, tc := range []struct {
		method, path string
		status       int
		ctype, body  string
	}{
		{"GET", "/", 200, "text/html", `<div id="root">`},
		{"HEAD", "/", 200, "text/html", ""},
		{"GET", "/healthz", 200, "", "ok"},
		{"GET", "/metrics", 200, "text/plain", "# TYPE"},
		{"GET", "/api/v1/openapi.json", 200, "application/json", `"swagger"`},
		{"GET", "/api/v1/no-such-route", 404, "application/json", `"code"`},
		{"GET", "/jobs", 404, "", ""}, // hash routes: no index.html fallback
		{"POST", "/", 405, "", ""},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
			continue
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.ctype) {
			t.Errorf("%s %s: Content-Type %q, want %s…", tc.method, tc.path, ct, tc.ctype)
		}
		if !strings.Contains(string(b), tc.body) {
			t.Errorf("%s %s: body lacks %q:\n%.300s", tc.method, tc.path, tc.body, b)
		}
	}
}
