// Package console serves the web console: the single-page application built
// from web/console (Vite writes it to dist/, which is committed, so a Go build
// needs no Node.js) and embedded in the binary.
//
// The console uses hash routes (#/jobs), so the only paths it serves are the
// built files; any other path is 404, and the console never answers for
// /api/v1/, /metrics, /healthz or /readyz, which the server mounts on more
// specific patterns.
package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed all:dist
var dist embed.FS

// contentSecurityPolicy allows only the console's own files and API.
// 'unsafe-eval' is needed by ajv, which compiles each JSON Schema into a
// function to validate the invoke form in the browser; inline styles by
// the form library's layout.
const contentSecurityPolicy = "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

type file struct {
	body        []byte
	etag        string
	contentType string
	immutable   bool // content-hashed names under assets/

	// gzipped is body compressed, made on the first request that accepts
	// gzip (compressing the script takes ~50 ms, over a second under the
	// race detector: not something every server start should pay); nil
	// when compression saves less than a tenth.
	gzipOnce sync.Once
	gzipped  []byte
}

func (f *file) gzip() []byte {
	f.gzipOnce.Do(func() { f.gzipped = compress(f.body) })
	return f.gzipped
}

// compressible: text types, where gzip pays.
func compressible(contentType string) bool {
	return strings.HasPrefix(contentType, "text/") || strings.Contains(contentType, "javascript") ||
		strings.Contains(contentType, "json") || strings.Contains(contentType, "svg")
}

// Handler serves the embedded console.
type Handler struct {
	files map[string]*file
}

// New indexes the embedded build. It fails when the build has no
// index.html (web/console was not built).
func New() (*Handler, error) {
	return newHandler(dist, "dist")
}

func newHandler(fsys fs.FS, root string) (*Handler, error) {
	h := &Handler{files: map[string]*file{}}
	err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, root+"/")
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(rel))
		if ct == "" {
			ct = http.DetectContentType(b)
		}
		h.files["/"+rel] = &file{body: b, etag: hex.EncodeToString(sum[:8]), contentType: ct,
			immutable: strings.HasPrefix(rel, "assets/")}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	if _, ok := h.files["/index.html"]; !ok {
		return nil, fmt.Errorf("console: the build has no index.html (run make console)")
	}
	return h, nil
}

// ServeHTTP serves GET and HEAD of the built files; "/" is index.html.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	if p == "/" {
		p = "/index.html"
	}
	f, ok := h.files[p]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	body, etag := f.body, `"`+f.etag+`"`
	if compressible(f.contentType) && len(f.body) >= 1024 {
		hd.Set("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			if gz := f.gzip(); gz != nil {
				body, etag = gz, `"`+f.etag+`-gz"`
				hd.Set("Content-Encoding", "gzip")
			}
		}
	}
	hd.Set("Content-Type", f.contentType)
	hd.Set("ETag", etag)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	if f.immutable {
		hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hd.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, p, time.Time{}, bytes.NewReader(body))
}

// compress gzips b (the console's script is about 660 KB, 210 KB
// compressed); nil when that saves less than a tenth.
func compress(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	if buf.Len() > len(b)*9/10 {
		return nil
	}
	return buf.Bytes()
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.ReplaceAll(params, " ", "") != "q=0" {
			return true
		}
	}
	return false
}
