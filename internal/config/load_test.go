package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/croupier/croupier/internal/config"
)

// isolateEnv removes every CROUPIER_* variable for the duration of the test,
// so a developer's shell cannot change what Load sees. It uses t.Setenv, so
// tests calling it cannot be parallel.
func isolateEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, config.EnvPrefix) {
			t.Setenv(k, v) // registers the restore
			if err := os.Unsetenv(k); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func writeYAML(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "croupier.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// serverFlagSet declares a subset of the server's flags the way the CLI
// does: every flag has the default as its default value.
func serverFlagSet(t *testing.T) *pflag.FlagSet {
	t.Helper()
	d := config.DefaultServer()
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	fs.String("config", "", "not a config key: must be ignored")
	fs.String("grpc-addr", d.GRPCAddr, "")
	fs.String("http-addr", d.HTTPAddr, "")
	fs.String("tunnel-http-addr", d.TunnelHTTPAddr, "")
	fs.StringSlice("scopes", nil, "")
	fs.Duration("heartbeat-interval", d.HeartbeatInterval, "")
	fs.Duration("invoke-timeout", d.InvokeTimeout, "")
	fs.Int("job-keep", d.JobKeep, "")
	fs.Bool("insecure", false, "")
	return fs
}

// TestLoadPrecedence sets some keys at every layer and checks that each key
// takes the value of the highest layer that set it. Flags declared but not
// given on the command line must not override anything (their defaults would
// otherwise clobber the file and the environment).
func TestLoadPrecedence(t *testing.T) {
	isolateEnv(t)
	file := writeYAML(t, `
grpc_addr: 10.0.0.1:1000
http_addr: 10.0.0.1:2000
tunnel_http_addr: 10.0.0.1:3000
heartbeat_interval: 5s
invoke_timeout: 7s
job_keep: 5
`)
	t.Setenv("CROUPIER_HTTP_ADDR", "10.0.0.2:2000")
	t.Setenv("CROUPIER_TUNNEL_HTTP_ADDR", "10.0.0.2:3000")
	t.Setenv("CROUPIER_INVOKE_TIMEOUT", "8s")
	t.Setenv("CROUPIER_PROFILE", "/somewhere/client.yaml") // a CLI variable, not a config key
	fs := serverFlagSet(t)
	if err := fs.Parse([]string{"--tunnel-http-addr", "10.0.0.3:3000", "--job-keep", "9", "--config", file}); err != nil {
		t.Fatal(err)
	}

	cfg := config.DefaultServer()
	if err := config.Load(&cfg, file, fs); err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := config.DefaultServer()
	want.GRPCAddr = "10.0.0.1:1000"          // file; --grpc-addr declared but not set
	want.HTTPAddr = "10.0.0.2:2000"          // env over file
	want.TunnelHTTPAddr = "10.0.0.3:3000"    // flag over env over file
	want.HeartbeatInterval = 5 * time.Second // file; the flag default must not win
	want.InvokeTimeout = 8 * time.Second     // env over file
	want.JobKeep = 9                         // flag over file
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("Load result\n got %+v\nwant %+v", cfg, want)
	}
}

func TestLoadDefaultsOnly(t *testing.T) {
	isolateEnv(t)
	fs := serverFlagSet(t)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	cfg := config.DefaultServer()
	if err := config.Load(&cfg, "", fs); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if want := config.DefaultServer(); !reflect.DeepEqual(cfg, want) {
		t.Fatalf("with nothing set Load changed the defaults:\n got %+v\nwant %+v", cfg, want)
	}
	if err := config.Load(&cfg, "", nil); err != nil {
		t.Fatalf("Load without flags: %v", err)
	}
}

func TestLoadUnknownFileKeys(t *testing.T) {
	isolateEnv(t)
	file := writeYAML(t, `
grpc_addr: 127.0.0.1:1
grpc_adr: 127.0.0.1:2
tls:
  ca: x.crt
`)
	cfg := config.DefaultServer()
	err := config.Load(&cfg, file, nil)
	if err == nil {
		t.Fatal("Load accepted unknown keys")
	}
	msg := err.Error()
	for _, want := range []string{file, "unknown keys grpc_adr, tls.ca", "known: ", "grpc_addr", "heartbeat_interval", "job_keep"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if cfg.GRPCAddr != config.DefaultServer().GRPCAddr {
		t.Errorf("a refused file still changed grpc_addr to %q", cfg.GRPCAddr)
	}
}

func TestLoadFileErrors(t *testing.T) {
	isolateEnv(t)
	t.Run("missing file", func(t *testing.T) {
		cfg := config.DefaultServer()
		p := filepath.Join(t.TempDir(), "nope.yaml")
		err := config.Load(&cfg, p, nil)
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Fatalf("Load(missing) = %v; want an error naming %s", err, p)
		}
	})
	t.Run("bad duration", func(t *testing.T) {
		cfg := config.DefaultServer()
		err := config.Load(&cfg, writeYAML(t, "heartbeat_interval: soon\n"), nil)
		if err == nil || !strings.Contains(err.Error(), "heartbeat_interval") {
			t.Fatalf("Load(bad duration) = %v; want an error naming heartbeat_interval", err)
		}
	})
	t.Run("bad yaml", func(t *testing.T) {
		cfg := config.DefaultServer()
		if err := config.Load(&cfg, writeYAML(t, "grpc_addr: [unclosed\n"), nil); err == nil {
			t.Fatal("Load accepted malformed YAML")
		}
	})
}

// TestLoadLists covers every way to give a list: YAML sequence, YAML string,
// comma-separated environment value (with blanks and spaces), and a repeated
// or comma-separated flag — each replacing, not appending to, the lower layer.
func TestLoadLists(t *testing.T) {
	isolateEnv(t)
	tests := []struct {
		name  string
		yaml  string
		env   string
		flags []string
		want  []string
	}{
		{name: "yaml sequence", yaml: "scopes: [a/dev, b/prod]\n", want: []string{"a/dev", "b/prod"}},
		{name: "yaml string", yaml: "scopes: a/dev,b/prod\n", want: []string{"a/dev", "b/prod"}},
		{name: "env list", env: " a/dev, ,b/prod ,", want: []string{"a/dev", "b/prod"}},
		{name: "env replaces yaml", yaml: "scopes: [x/y]\n", env: "a/dev", want: []string{"a/dev"}},
		{name: "flag repeated", env: "x/y", flags: []string{"--scopes", "a/dev", "--scopes", "b/prod"}, want: []string{"a/dev", "b/prod"}},
		{name: "flag comma", yaml: "scopes: [x/y]\n", flags: []string{"--scopes=a/dev,b/prod"}, want: []string{"a/dev", "b/prod"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("CROUPIER_SCOPES", tt.env)
			}
			file := ""
			if tt.yaml != "" {
				file = writeYAML(t, tt.yaml)
			}
			fs := serverFlagSet(t)
			if err := fs.Parse(tt.flags); err != nil {
				t.Fatal(err)
			}
			cfg := config.DefaultServer()
			if err := config.Load(&cfg, file, fs); err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !reflect.DeepEqual(cfg.Scopes, tt.want) {
				t.Fatalf("Scopes = %q, want %q", cfg.Scopes, tt.want)
			}
		})
	}
}

func TestLoadAgentEnvAndLabels(t *testing.T) {
	isolateEnv(t)
	t.Setenv("CROUPIER_AGENT_ID", "edge-1")
	t.Setenv("CROUPIER_GAME_ID", "g")
	t.Setenv("CROUPIER_ENV", "dev")
	t.Setenv("CROUPIER_LABELS", "region=eu,zone=a=1")
	t.Setenv("CROUPIER_RECONNECT_MAX", "2s")
	t.Setenv("CROUPIER_INSECURE", "true")
	cfg := config.DefaultAgent()
	if err := config.Load(&cfg, "", nil); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.ID != "edge-1" || cfg.Game != "g" || cfg.Env != "dev" || cfg.ReconnectMax != 2*time.Second || !cfg.Insecure {
		t.Fatalf("env not applied: %+v", cfg)
	}
	if want := map[string]string{"region": "eu", "zone": "a=1"}; !reflect.DeepEqual(cfg.LabelMap(), want) {
		t.Fatalf("LabelMap = %v, want %v", cfg.LabelMap(), want)
	}
}

// sdk_allow_uids is a list of ints: from the environment (comma-separated)
// and from a repeated flag, which wins.
func TestLoadAgentSDKAllowUIDs(t *testing.T) {
	isolateEnv(t)
	t.Setenv("CROUPIER_SDK_ALLOW_UIDS", "1001, 1002")
	cfg := config.DefaultAgent()
	if err := config.Load(&cfg, "", nil); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if want := []int{1001, 1002}; !reflect.DeepEqual(cfg.SDKAllowUIDs, want) {
		t.Fatalf("from the environment: SDKAllowUIDs = %v, want %v", cfg.SDKAllowUIDs, want)
	}
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	fs.IntSlice("sdk-allow-uids", nil, "")
	if err := fs.Parse([]string{"--sdk-allow-uids", "7", "--sdk-allow-uids", "8"}); err != nil {
		t.Fatal(err)
	}
	cfg = config.DefaultAgent()
	if err := config.Load(&cfg, "", fs); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if want := []int{7, 8}; !reflect.DeepEqual(cfg.SDKAllowUIDs, want) {
		t.Fatalf("from flags: SDKAllowUIDs = %v, want %v", cfg.SDKAllowUIDs, want)
	}
}

func TestDefaultDataDirFromEnv(t *testing.T) {
	isolateEnv(t)
	if got := config.DefaultDataDir(); got != "croupier-data" {
		t.Fatalf("DefaultDataDir = %q, want croupier-data", got)
	}
	t.Setenv("CROUPIER_DATA_DIR", "/var/lib/croupier")
	if got := config.DefaultServer().DataDir; got != "/var/lib/croupier" {
		t.Fatalf("DefaultServer().DataDir = %q with CROUPIER_DATA_DIR set", got)
	}
}

// TestLoadTypedEnv: environment values are strings; they are converted to
// the field's type (float, bool, int, duration) or refused with the key.
func TestLoadTypedEnv(t *testing.T) {
	isolateEnv(t)
	t.Setenv("CROUPIER_RATE_USER", "2.5")
	t.Setenv("CROUPIER_APPROVAL_HIGH_RISK", "false")
	t.Setenv("CROUPIER_MAX_REQUEST_BYTES", "2048")
	t.Setenv("CROUPIER_JOB_ORPHAN_GRACE", "90s")
	cfg := config.DefaultServer()
	if err := config.Load(&cfg, "", nil); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.RateUser != 2.5 || cfg.ApprovalHighRisk || cfg.MaxRequestBytes != 2048 || cfg.JobOrphanGrace != 90*time.Second {
		t.Fatalf("typed env not applied: rate %v high-risk %v bytes %d grace %s", cfg.RateUser, cfg.ApprovalHighRisk, cfg.MaxRequestBytes, cfg.JobOrphanGrace)
	}
	t.Setenv("CROUPIER_MAX_REQUEST_BYTES", "lots")
	cfg = config.DefaultServer()
	if err := config.Load(&cfg, "", nil); err == nil || !strings.Contains(err.Error(), "max_request_bytes") {
		t.Fatalf("Load with a non-numeric int = %v; want an error naming max_request_bytes", err)
	}
}

// The login_* keys live in an embedded struct (config.Login, shared by the
// server and the gateway) and load as top-level keys from every layer.
func TestLoadEmbeddedLoginKeys(t *testing.T) {
	isolateEnv(t)
	t.Setenv("CROUPIER_LOGIN_MAX_WAIT", "2m")
	fs := serverFlagSet(t)
	fs.Int("login-source-free", config.DefaultLogin().LoginSourceFree, "")
	if err := fs.Parse([]string{"--login-source-free", "7"}); err != nil {
		t.Fatal(err)
	}
	cfg := config.DefaultServer()
	if err := config.Load(&cfg, writeYAML(t, "login_user_free: 3\nlogin_forget: 3h\n"), fs); err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := config.Login{LoginUserFree: 3, LoginSourceFree: 7, LoginBaseWait: time.Second, LoginMaxWait: 2 * time.Minute, LoginForget: 3 * time.Hour}
	if cfg.Login != want {
		t.Fatalf("login settings %+v, want %+v", cfg.Login, want)
	}
	if got := cfg.RateUser; got != config.DefaultServer().RateUser {
		t.Fatalf("a top-level key changed with them: rate_user %v", got)
	}
}
