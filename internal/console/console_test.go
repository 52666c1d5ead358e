package console

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func TestHandler(t *testing.T) {
	h, err := newHandler(fstest.MapFS{
		"dist/index.html":         {Data: []byte("<!doctype html><title>c</title>")},
		"dist/assets/app-abc1.js": {Data: []byte("console.log(1)")},
	}, "dist")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tc := range []struct {
		method, path string
		status       int
		ctype, cache string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", "no-cache"},
		{"GET", "/index.html", 200, "text/html; charset=utf-8", "no-cache"},
		{"GET", "/assets/app-abc1.js", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		{"HEAD", "/assets/app-abc1.js", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		{"GET", "/jobs", 404, "", ""}, // hash routes: no fallback to index.html
		{"GET", "/assets/", 404, "", ""},
		{"POST", "/", 405, "", ""},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
			continue
		}
		if tc.status != 200 {
			continue
		}
		if got := resp.Header.Get("Content-Type"); got != tc.ctype {
			t.Errorf("%s %s: Content-Type %q, want %q", tc.method, tc.path, got, tc.ctype)
		}
		if got := resp.Header.Get("Cache-Control"); got != tc.cache {
			t.Errorf("%s %s: Cache-Control %q, want %q", tc.method, tc.path, got, tc.cache)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s %s: CSP %q", tc.method, tc.path, csp)
		}
	}

	// A revalidation with the ETag is answered 304.
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation: status %d, want 304", resp.StatusCode)
	}
}

// TestEmbeddedBuild checks the committed build is embedded.
func TestEmbeddedBuild(t *testing.T) {
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if len(h.files) < 2 {
		t.Fatalf("embedded build has %d files, want index.html and its assets", len(h.files))
	}
}

func TestGzip(t *testing.T) {
	big := strings.Repeat("console.log('croupier');\n", 2000)
	h, err := newHandler(fstest.MapFS{
		"dist/index.html":       {Data: []byte("<!doctype html>")},
		"dist/assets/app-a1.js": {Data: []byte(big)},
	}, "dist")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(path, enc string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if enc != "" {
			req.Header.Set("Accept-Encoding", enc) // set by hand: the transport leaves the body encoded
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, b := get("/assets/app-a1.js", "br, gzip;q=0.8")
	if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Vary") != "Accept-Encoding" || len(b) >= len(big)/10 {
		t.Fatalf("gzip: encoding %q, vary %q, %d bytes", resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"), len(b))
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if plain, _ := io.ReadAll(zr); string(plain) != big {
		t.Fatal("gzip body does not decompress to the file")
	}
	gzTag := resp.Header.Get("ETag")
	for _, enc := range []string{"identity", "gzip;q=0"} {
		resp, b = get("/assets/app-a1.js", enc)
		if resp.Header.Get("Content-Encoding") != "" || string(b) != big || resp.Header.Get("ETag") == gzTag {
			t.Fatalf("Accept-Encoding %q: encoding %q, %d bytes, ETag %s", enc, resp.Header.Get("Content-Encoding"), len(b), resp.Header.Get("ETag"))
		}
	}
	// A file gzip does not shrink is served as is, without Vary.
	if resp, b = get("/", "gzip"); resp.Header.Get("Content-Encoding") != "" || resp.Header.Get("Vary") != "" || string(b) != "<!doctype html>" {
		t.Fatalf("small file: encoding %q, vary %q, body %q", resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"), b)
	}
}

func TestNoIndex(t *testing.T) {
	if _, err := newHandler(fstest.MapFS{"dist/a.js": {Data: []byte("x")}}, "dist"); err == nil || !strings.Contains(err.Error(), "index.html") {
		t.Fatalf("err = %v, want one naming index.html", err)
	}
}
