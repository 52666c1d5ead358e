package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Regressions of issue 9 through the real server binary: wrong passwords
// were answered 401 forever (defect 5), and the SQLite database holding the
// token signing key was created 0644 (defect 4).
func TestLoginThrottleAndDatabaseModeEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	if out, code := run(t, nil, "certs", "init", "--dir", certDir); code != 0 {
		t.Fatalf("certs init: %s", out)
	}
	srv := startEnv(t, "server", []string{"CROUPIER_ADMIN_USER=operator", "CROUPIER_ADMIN_PASSWORD=" + adminPassword},
		bins.croupier, "server", "--log-format", "json",
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--tunnel-http-addr", "127.0.0.1:0",
		"--data-dir", dir, "--tls-ca", filepath.Join(certDir, "ca.crt"),
		"--tls-cert", filepath.Join(certDir, "server.crt"), "--tls-key", filepath.Join(certDir, "server.key"))
	ev := srv.waitLog("croupier server started", 30*time.Second)

	for _, f := range []string{"croupier.db", "croupier.db-wal", "croupier.db-shm"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", f, fi.Mode().Perm(), err)
		}
	}

	hc := restClient(t, certDir, false)
	login := func(password string) (int, http.Header) {
		t.Helper()
		req, err := http.NewRequest("POST", "https://"+ev["http"].(string)+"/api/v1/auth/login",
			strings.NewReader(`{"username":"operator","password":"`+password+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	// Five wrong passwords are answered 401; after that the username waits.
	// Each further failure doubles the wait (1 s, 2 s, 4 s, ...), so however
	// slow this machine, a refusal comes within a few more attempts.
	for i := range 5 {
		if code, _ := login("wrong-password"); code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: HTTP %d, want 401", i, code)
		}
	}
	for i := 0; ; i++ {
		code, hdr := login("wrong-password")
		if code == http.StatusTooManyRequests {
			if secs, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || secs < 1 {
				t.Fatalf("429 without a usable Retry-After: %q", hdr.Get("Retry-After"))
			}
			break
		}
		if code != http.StatusUnauthorized || i == 8 {
			t.Fatalf("attempt %d after the free ones: HTTP %d, want 429 by now", i, code)
		}
	}
}
