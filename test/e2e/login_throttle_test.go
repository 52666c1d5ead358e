package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/api/synctv/client/v1/clientv1connect"
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

// TestGatewayLoginThrottleFromConfig: the gateway's login_* settings reach
// the rooms system's player logins (they used the defaults whatever the
// config said). With login_user_free 1 the attempt after one wrong password
// is refused even with the right one; the default (5) would let it in. The
// rooms database is in --data-dir (it went to ./croupier-data whatever
// --data-dir said).
func TestGatewayLoginThrottleFromConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(cfg, []byte("login_user_free: 1\nlogin_base_wait: 1m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, "gateway", bins.croupier, "gateway", "--log-format", "json", "--config", cfg, "--data-dir", dir,
		"--client-addr", "127.0.0.1:0", "--business-addr", "127.0.0.1:0", "--rooms-addr", "127.0.0.1:0", "--rtmp-addr=",
		"--nats", "off")
	rooms := p.waitLog("rooms listening", 30*time.Second)
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	client := clientv1connect.NewClientServiceClient(&http.Client{Transport: tr}, rooms["url"].(string), connect.WithGRPC())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.Register(ctx, connect.NewRequest(&clientv1.RegisterRequest{Username: "carol", Password: "password-carol"})); err != nil {
		t.Fatal(err)
	}
	_, err := client.Login(ctx, connect.NewRequest(&clientv1.LoginRequest{Username: "carol", Password: "wrong-password"}))
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("wrong password: %v, want UNAUTHENTICATED", err)
	}
	_, err = client.Login(ctx, connect.NewRequest(&clientv1.LoginRequest{Username: "carol", Password: "password-carol"}))
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("right password after one failure with login_user_free 1: %v, want RESOURCE_EXHAUSTED", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "croupier.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("rooms database in --data-dir: %v, %v; want a 0600 croupier.db", fi, err)
	}
}
