package config_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/config"
)

func validServer() config.Server {
	c := config.DefaultServer()
	c.DataDir = "/data"
	c.Scopes = []string{"demo/dev", "demo.v2/prod_eu-1"}
	return c
}

func TestServerResolveFillsPaths(t *testing.T) {
	t.Parallel()
	c := validServer()
	if err := c.Resolve(); err != nil {
		t.Fatalf("Resolve(valid) = %v", err)
	}
	want := map[string]string{
		"tls_ca":    filepath.Join("/data", "certs", "ca.crt"),
		"tls_cert":  filepath.Join("/data", "certs", "server.crt"),
		"tls_key":   filepath.Join("/data", "certs", "server.key"),
		"store_dsn": filepath.Join("/data", "croupier.db"),
	}
	got := map[string]string{"tls_ca": c.TLSCA, "tls_cert": c.TLSCert, "tls_key": c.TLSKey, "store_dsn": c.StoreDSN}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}

	// Explicit values are kept; postgres gets no SQLite default.
	c = validServer()
	c.TLSCA, c.StoreDriver, c.StoreDSN = "/etc/ca.pem", "postgres", "postgres://u@h/db"
	c.TunnelHTTPAddr = "" // disables the long-poll tunnel: valid
	if err := c.Resolve(); err != nil {
		t.Fatalf("Resolve(postgres) = %v", err)
	}
	if c.TLSCA != "/etc/ca.pem" || c.StoreDSN != "postgres://u@h/db" {
		t.Fatalf("Resolve overwrote explicit values: ca=%q dsn=%q", c.TLSCA, c.StoreDSN)
	}
}

// TestServerResolveProblems breaks one field at a time and checks that the
// error names the key and says what to do.
func TestServerResolveProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(c *config.Server)
		want   []string
	}{
		{"grpc_addr", func(c *config.Server) { c.GRPCAddr = "8443" }, []string{`grpc_addr "8443" is not host:port`, ":8443"}},
		{"http_addr", func(c *config.Server) { c.HTTPAddr = "localhost" }, []string{`http_addr "localhost" is not host:port`}},
		{"tunnel_http_addr", func(c *config.Server) { c.TunnelHTTPAddr = "nope" }, []string{`tunnel_http_addr "nope"`, "leave it empty to disable"}},
		{"store_driver", func(c *config.Server) { c.StoreDriver = "mysql" }, []string{`store_driver "mysql": use sqlite or postgres`}},
		{"nats", func(c *config.Server) { c.NATS = "redis" }, []string{`nats "redis": use embedded, external or off`}},
		{"nats external", func(c *config.Server) { c.NATS = "external" }, []string{"nats external needs nats_url"}},
		{"postgres dsn", func(c *config.Server) { c.StoreDriver = "postgres" }, []string{"store_driver postgres needs store_dsn"}},
		{"scope", func(c *config.Server) { c.Scopes = []string{"demo/dev", "demo"} }, []string{`scope "demo" must be GAME/ENV`}},
		{"heartbeat", func(c *config.Server) { c.HeartbeatInterval = 50 * time.Millisecond }, []string{"heartbeat_interval 50ms is too short (min 100ms)"}},
		{"invoke_timeout zero", func(c *config.Server) { c.InvokeTimeout = 0 }, []string{"invoke_timeout (0s) must be > 0 and <= invoke_max_timeout (5m0s)"}},
		{"invoke_timeout over max", func(c *config.Server) { c.InvokeTimeout, c.InvokeMaxTimeout = time.Minute, time.Second },
			[]string{"invoke_timeout (1m0s) must be > 0 and <= invoke_max_timeout (1s)"}},
		{"max_request_bytes", func(c *config.Server) { c.MaxRequestBytes = 10 }, []string{"max_request_bytes must be at least 1024"}},
		{"admin_password", func(c *config.Server) { c.AdminPassword = "short" }, []string{"admin_password must be at least 8 characters"}},
		{"access_token_ttl", func(c *config.Server) { c.AccessTokenTTL = 30 * time.Second },
			[]string{"access_token_ttl (30s) must be >= 1m and <= refresh_token_ttl"}},
		{"refresh_token_ttl", func(c *config.Server) { c.AccessTokenTTL, c.RefreshTokenTTL = time.Hour, time.Minute },
			[]string{"access_token_ttl (1h0m0s) must be >= 1m and <= refresh_token_ttl (1m0s)"}},
		{"rate limits", func(c *config.Server) { c.RateFunctionBurst = -1 }, []string{"rate limits must not be negative (0 = unlimited)"}},
		{"login_user_free", func(c *config.Server) { c.LoginUserFree = 0 }, []string{"login_user_free (0) and login_source_free (20) must be at least 1"}},
		{"login waits", func(c *config.Server) { c.LoginBaseWait, c.LoginMaxWait = time.Minute, time.Second },
			[]string{"10ms <= login_base_wait (1m0s) <= login_max_wait (1s) <= login_forget (1h0m0s)"}},
		{"login_forget", func(c *config.Server) { c.LoginForget = time.Minute }, []string{"login_max_wait (15m0s) <= login_forget (1m0s)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validServer()
			tt.mutate(&c)
			err := c.Resolve()
			if err == nil {
				t.Fatal("Resolve accepted the bad value")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "invalid configuration:\n  - ") {
				t.Errorf("error %q does not start with the problem list header", msg)
			}
			if n := strings.Count(msg, "\n  - "); n != 1 {
				t.Errorf("error lists %d problems, want exactly 1:\n%s", n, msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestServerResolveListsEveryProblem(t *testing.T) {
	t.Parallel()
	c := validServer()
	c.GRPCAddr, c.HTTPAddr, c.StoreDriver, c.MaxRequestBytes = "x", "y", "z", 0
	err := c.Resolve()
	if err == nil {
		t.Fatal("Resolve accepted four bad values")
	}
	if n := strings.Count(err.Error(), "\n  - "); n != 4 {
		t.Fatalf("error lists %d problems, want 4:\n%v", n, err)
	}
}

func validAgent() config.Agent {
	c := config.DefaultAgent()
	c.ID, c.Game, c.Env, c.DataDir = "edge-1", "demo", "dev", "/data"
	c.Labels = []string{"region=eu", "empty="}
	return c
}

func TestAgentResolveFillsPaths(t *testing.T) {
	t.Parallel()
	c := validAgent()
	if err := c.Resolve(); err != nil {
		t.Fatalf("Resolve(valid) = %v", err)
	}
	if c.TLSCA != filepath.Join("/data", "certs", "ca.crt") || c.TLSCert != filepath.Join("/data", "certs", "agent.crt") ||
		c.TLSKey != filepath.Join("/data", "certs", "agent.key") {
		t.Fatalf("paths = %q %q %q", c.TLSCA, c.TLSCert, c.TLSKey)
	}
	if got := c.LabelMap(); len(got) != 2 || got["region"] != "eu" || got["empty"] != "" {
		t.Fatalf("LabelMap = %v", got)
	}

	lp := validAgent()
	lp.Transport, lp.LongPollURL = "longpoll", "https://server:8444"
	if err := lp.Resolve(); err != nil {
		t.Fatalf("Resolve(longpoll) = %v", err)
	}
}

func TestAgentServerList(t *testing.T) {
	t.Parallel()
	c := validAgent()
	c.Server = "10.0.0.1:8443, 10.0.0.2:8443,10.0.0.3:8443"
	if err := c.Resolve(); err != nil {
		t.Fatalf("a list of server nodes: %v", err)
	}
}

func TestAgentResolveProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(c *config.Agent)
		want   string
	}{
		{"empty id", func(c *config.Agent) { c.ID = "" }, `agent_id "": use letters, digits`},
		{"id with slash", func(c *config.Agent) { c.ID = "a/b" }, `agent_id "a/b"`},
		{"id too long", func(c *config.Agent) { c.ID = strings.Repeat("a", 65) }, "(max 64)"},
		{"no game", func(c *config.Agent) { c.Game = "" }, "game_id and env are required (--game-id, --env)"},
		{"bad env", func(c *config.Agent) { c.Env = "dev env" }, "game_id and env are required"},
		{"server", func(c *config.Agent) { c.Server = "server" }, `server "server" is not host:port`},
		{"server list", func(c *config.Agent) { c.Server = "a:8443,b" }, `server "a:8443,b" is not host:port`},
		{"longpoll without url", func(c *config.Agent) { c.Transport = "longpoll" }, "transport longpoll needs longpoll_url"},
		{"longpoll bad server", func(c *config.Agent) { c.Transport, c.LongPollURL, c.Server = "longpoll", "https://s", "s" },
			"(unary calls still use gRPC)"},
		{"transport", func(c *config.Agent) { c.Transport = "websocket" }, `transport "websocket": use auto, grpc, conn or longpoll`},
		{"sdk_addr", func(c *config.Agent) { c.SDKAddr = "19090" }, `sdk_addr "19090" is not host:port`},
		{"negative sdk uid", func(c *config.Agent) { c.SDKAllowUIDs = []int{1000, -1} }, "sdk_allow_uids: -1 is not a uid"},
		{"too many sdk uids", func(c *config.Agent) { c.SDKAllowUIDs = make([]int, 65) }, "sdk_allow_uids: 65 users; at most 64"},
		{"label without =", func(c *config.Agent) { c.Labels = []string{"region"} }, `label "region" must be key=value`},
		{"label without key", func(c *config.Agent) { c.Labels = []string{"=eu"} }, `label "=eu" must be key=value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validAgent()
			tt.mutate(&c)
			err := c.Resolve()
			if err == nil {
				t.Fatal("Resolve accepted the bad value")
			}
			if n := strings.Count(err.Error(), "\n  - "); n != 1 {
				t.Errorf("error lists %d problems, want 1:\n%v", n, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestParseScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in        string
		game, env string
		ok        bool
	}{
		{"demo/dev", "demo", "dev", true},
		{"My_Game-2.0/prod.eu", "My_Game-2.0", "prod.eu", true},
		{strings.Repeat("g", 64) + "/e", strings.Repeat("g", 64), "e", true},
		{strings.Repeat("g", 65) + "/e", "", "", false},
		{"demo", "", "", false},
		{"/dev", "", "", false},
		{"demo/", "", "", false},
		{"demo/dev/extra", "", "", false},
		{"de mo/dev", "", "", false},
		{"démo/dev", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		game, env, err := config.ParseScope(tt.in)
		if tt.ok {
			if err != nil || game != tt.game || env != tt.env {
				t.Errorf("ParseScope(%q) = %q, %q, %v; want %q, %q", tt.in, game, env, err, tt.game, tt.env)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParseScope(%q) = %q, %q; want an error", tt.in, game, env)
			continue
		}
		if game != "" || env != "" {
			t.Errorf("ParseScope(%q) returned %q, %q with its error", tt.in, game, env)
		}
		if !strings.Contains(err.Error(), "must be GAME/ENV") || !strings.Contains(err.Error(), tt.in) {
			t.Errorf("ParseScope(%q) error %q does not say what is expected", tt.in, err)
		}
	}
}

// TestServerResolveRejectsBadDurations covers settings Resolve does not check
// today. idempotency_window 0 makes every InvokeFunction/InvokeJob with an
// idempotency key fail with INTERNAL (store.Idempotency.Begin refuses a
// non-positive ttl), and a negative job_orphan_grace, job_retention or
// job_keep silently changes job lifetimes, and a job event budget too small
// for any event stores none.
func TestServerResolveRejectsBadDurations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(c *config.Server)
		want   string
	}{
		{"idempotency_window", func(c *config.Server) { c.IdempotencyWindow = 0 }, "idempotency_window"},
		{"job_orphan_grace", func(c *config.Server) { c.JobOrphanGrace = -time.Second }, "job_orphan_grace"},
		{"job_retention", func(c *config.Server) { c.JobRetention = -time.Hour }, "job_retention"},
		{"job_keep", func(c *config.Server) { c.JobKeep = -1 }, "job_keep"},
		{"job_max_event_bytes", func(c *config.Server) { c.JobMaxEventBytes = 100 }, "job_max_event_bytes"},
	}
	for _, tt := range tests {
		c := validServer()
		tt.mutate(&c)
		if err := c.Resolve(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Resolve = %v; want an error naming %s", tt.name, err, tt.want)
		}
	}
}
