package watch_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/croupier/croupier/internal/watch"
)

func get(t *testing.T, srv *httptest.Server, path string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestHandler(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle(watch.Prefix, watch.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// The page, also for deep links, never cached stale.
	for _, p := range []string{"/watch/", "/watch/index.html", "/watch/room/abc", "/watch/../watch/"} {
		resp, body := get(t, srv, p, nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<video id="video"`) {
			t.Fatalf("GET %s: %d, page not served", p, resp.StatusCode)
		}
		if resp.Header.Get("Cache-Control") != "no-cache" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Fatalf("GET %s: headers %v", p, resp.Header)
		}
	}

	// The hashed bundle it names, cached for good.
	_, page := get(t, srv, "/watch/", nil)
	js := regexp.MustCompile(`/watch/assets/index-[A-Za-z0-9_-]+\.js`).FindString(page)
	if js == "" {
		t.Fatalf("the page names no script bundle:\n%s", page)
	}
	resp, body := get(t, srv, js, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") || len(body) < 1000 {
		t.Fatalf("GET %s: %d %q, %d bytes", js, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	if !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
		t.Fatalf("GET %s: Cache-Control %q", js, resp.Header.Get("Cache-Control"))
	}

	// The demo video answers ranges (the player seeks with them).
	resp, body = get(t, srv, watch.DemoVideoPath, map[string]string{"Range": "bytes=0-99"})
	if resp.StatusCode != http.StatusPartialContent || len(body) != 100 || resp.Header.Get("Content-Type") != "video/mp4" {
		t.Fatalf("GET %s with a range: %d %q, %d bytes", watch.DemoVideoPath, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	if !strings.Contains(body[:12], "ftyp") {
		t.Fatalf("the demo video does not start with an MP4 ftyp box: %q", body[:12])
	}

	// Missing media and other methods are refused.
	if resp, _ := get(t, srv, "/watch/media/nope.mp4", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("missing media: %d, want 404", resp.StatusCode)
	}
	resp2, err := srv.Client().Post(srv.URL+"/watch/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusMethodNotAllowed || resp2.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST: %d, Allow %q", resp2.StatusCode, resp2.Header.Get("Allow"))
	}
}
