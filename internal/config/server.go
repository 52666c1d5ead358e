package config

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"
)

// Server configures `croupier server`.
type Server struct {
	// GRPCAddr serves ControlService, FunctionService, RegistryService and the
	// agent tunnel (the conn transport and the bidi stream). The seed's port
	// is 8443.
	GRPCAddr string `koanf:"grpc_addr"`
	// HTTPAddr serves REST (/api/v1), /healthz, /readyz and /metrics.
	HTTPAddr string `koanf:"http_addr"`
	// TunnelHTTPAddr serves the long-poll tunnel (HTTP/1.1) for agents behind
	// proxies that break HTTP/2 streams. Empty disables it.
	TunnelHTTPAddr string `koanf:"tunnel_http_addr"`
	// DataDir holds the SQLite database and the dev certificates.
	DataDir string `koanf:"data_dir"`
	// Insecure serves plaintext; only allowed on loopback addresses.
	Insecure bool   `koanf:"insecure"`
	TLSCA    string `koanf:"tls_ca"`
	TLSCert  string `koanf:"tls_cert"`
	TLSKey   string `koanf:"tls_key"`
	// StoreDriver is "sqlite" (default, file in DataDir) or "postgres".
	StoreDriver string `koanf:"store_driver"`
	// StoreDSN is the PostgreSQL URL, or the SQLite file path (default
	// DataDir/croupier.db).
	StoreDSN string `koanf:"store_dsn"`
	// Scopes are the declared "game/env" pairs; agents and calls for any other
	// scope are refused. Scopes are also persisted; these are declared at start.
	Scopes []string `koanf:"scopes"`
	// HeartbeatInterval is handed to agents; three missed beats remove them.
	HeartbeatInterval time.Duration `koanf:"heartbeat_interval"`
	// InvokeTimeout is the default InvokeFunction timeout; InvokeMaxTimeout caps
	// what callers may ask for.
	InvokeTimeout    time.Duration `koanf:"invoke_timeout"`
	InvokeMaxTimeout time.Duration `koanf:"invoke_max_timeout"`
	// IdempotencyWindow is how long an idempotency key is remembered.
	IdempotencyWindow time.Duration `koanf:"idempotency_window"`
	// MaxRequestBytes caps gRPC and REST request bodies.
	MaxRequestBytes int `koanf:"max_request_bytes"`
	// JobOrphanGrace is how long a running job's agent may stay disconnected
	// before the job is declared failed.
	JobOrphanGrace time.Duration `koanf:"job_orphan_grace"`
	// JobRetention and JobKeep prune finished jobs older than JobRetention,
	// always keeping the newest JobKeep.
	JobRetention time.Duration `koanf:"job_retention"`
	JobKeep      int           `koanf:"job_keep"`
	// JobMaxEventBytes is a job's event budget: once its stored events
	// weigh this much (message and data bytes, and 128 per event), its
	// further events are acknowledged but not stored, except the terminal
	// one (docs/jobs.md).
	JobMaxEventBytes int64 `koanf:"job_max_event_bytes"`
	// AdminUser and AdminPassword bootstrap an administrator at start when
	// the password is set (CROUPIER_ADMIN_PASSWORD); an existing user keeps
	// its password and gets the admin role.
	AdminUser     string `koanf:"admin_user"`
	AdminPassword string `koanf:"admin_password"`
	// AccessTokenTTL and RefreshTokenTTL are the lifetimes of login tokens.
	AccessTokenTTL  time.Duration `koanf:"access_token_ttl"`
	RefreshTokenTTL time.Duration `koanf:"refresh_token_ttl"`
	// RefreshReuseGrace: a spent refresh token presented again this soon
	// rotates again instead of revoking its session (docs/access.md); 0:
	// never.
	RefreshReuseGrace time.Duration `koanf:"refresh_reuse_grace"`
	// ApprovalTTL is how long an approval request waits for a decision.
	ApprovalTTL time.Duration `koanf:"approval_ttl"`
	// ApprovalHighRisk makes every HIGH-risk function need two-person
	// approval, not only those whose descriptor asks for it.
	ApprovalHighRisk bool `koanf:"approval_high_risk"`
	// RateUser and RateFunction limit calls per operator and per function:
	// sustained calls per second and burst (0 = unlimited).
	RateUser          float64 `koanf:"rate_user"`
	RateUserBurst     int     `koanf:"rate_user_burst"`
	RateFunction      float64 `koanf:"rate_function"`
	RateFunctionBurst int     `koanf:"rate_function_burst"`
	// Login is the operators' login throttle (login_* keys).
	Login

	// OTLPEndpoint is the OpenTelemetry collector (OTLP over gRPC,
	// host:port) that receives traces; empty (the default) turns tracing
	// off. OTLPInsecure sends them without TLS. TraceSampleRatio is the
	// share of new traces kept (0..1, default 1); a call that arrives with
	// a sampled parent is always traced. See docs/observability.md.
	OTLPEndpoint     string  `koanf:"otlp_endpoint"`
	OTLPInsecure     bool    `koanf:"otlp_insecure"`
	TraceSampleRatio float64 `koanf:"trace_sample_ratio"`

	// The cluster bus (docs/cluster.md). NATS is "embedded" (default: a
	// NATS server inside the process, reached in-process, JetStream in
	// DataDir/nats), "external" (NATSURL) or "off" (one node, no bus).
	NATS string `koanf:"nats"`
	// NodeID names this node (default: host name and pid).
	NodeID string `koanf:"node_id"`
	// NATSURL lists the external NATS servers; NATSCreds is a credentials
	// file; NATSTLSCA/Cert/Key secure the connection.
	NATSURL     string `koanf:"nats_url"`
	NATSCreds   string `koanf:"nats_creds"`
	NATSTLSCA   string `koanf:"nats_tls_ca"`
	NATSTLSCert string `koanf:"nats_tls_cert"`
	NATSTLSKey  string `koanf:"nats_tls_key"`
	// NATSListen is the embedded server's client address (default none:
	// no listener). NATSClusterName, NATSClusterListen and NATSRoutes join
	// embedded servers into one NATS cluster (small deployments).
	// NATSTokenFile (0600) holds the token that clients of a listening
	// embedded server and its routes present, and that this node presents
	// to an external NATS; default DataDir/nats.token, generated, when the
	// embedded server listens (cluster.Config.Token).
	NATSListen        string   `koanf:"nats_listen"`
	NATSTokenFile     string   `koanf:"nats_token_file"`
	NATSClusterName   string   `koanf:"nats_cluster_name"`
	NATSClusterListen string   `koanf:"nats_cluster_listen"`
	NATSRoutes        []string `koanf:"nats_routes"`
}

// DefaultServer returns the defaults of `croupier server`.
func DefaultServer() Server {
	return Server{
		GRPCAddr:          ":8443",
		HTTPAddr:          ":8080",
		TunnelHTTPAddr:    ":8444",
		DataDir:           DefaultDataDir(),
		StoreDriver:       "sqlite",
		HeartbeatInterval: 10 * time.Second,
		InvokeTimeout:     30 * time.Second,
		InvokeMaxTimeout:  5 * time.Minute,
		IdempotencyWindow: 24 * time.Hour,
		MaxRequestBytes:   4 << 20,
		JobOrphanGrace:    time.Minute,
		JobRetention:      7 * 24 * time.Hour,
		JobKeep:           1000,
		JobMaxEventBytes:  32 << 20, // jobs.DefaultMaxEventBytes
		AdminUser:         "admin",
		AccessTokenTTL:    15 * time.Minute,
		RefreshTokenTTL:   30 * 24 * time.Hour,
		RefreshReuseGrace: 10 * time.Second, // store.DefaultReuseGrace
		ApprovalTTL:       time.Hour,
		ApprovalHighRisk:  true,
		RateUser:          50,
		RateUserBurst:     100,
		RateFunction:      500,
		RateFunctionBurst: 1000,
		Login:             DefaultLogin(),
		TraceSampleRatio:  1,
		NATS:              "embedded",
	}
}

// Resolve fills paths derived from DataDir and validates the result.
func (c *Server) Resolve() error {
	certs := filepath.Join(c.DataDir, "certs")
	if c.TLSCA == "" {
		c.TLSCA = filepath.Join(certs, "ca.crt")
	}
	if c.TLSCert == "" {
		c.TLSCert = filepath.Join(certs, "server.crt")
	}
	if c.TLSKey == "" {
		c.TLSKey = filepath.Join(certs, "server.key")
	}
	if c.StoreDriver == "sqlite" && c.StoreDSN == "" {
		c.StoreDSN = filepath.Join(c.DataDir, "croupier.db")
	}
	var p []string
	for name, addr := range map[string]string{"grpc_addr": c.GRPCAddr, "http_addr": c.HTTPAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			p = append(p, fmt.Sprintf("%s %q is not host:port (e.g. 127.0.0.1:8443 or :8443)", name, addr))
		}
	}
	if c.TunnelHTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.TunnelHTTPAddr); err != nil {
			p = append(p, fmt.Sprintf("tunnel_http_addr %q is not host:port; leave it empty to disable the long-poll tunnel", c.TunnelHTTPAddr))
		}
	}
	switch c.StoreDriver {
	case "sqlite":
	case "postgres":
		if c.StoreDSN == "" {
			p = append(p, "store_driver postgres needs store_dsn (postgres://user:pass@host:5432/db)")
		}
	default:
		p = append(p, fmt.Sprintf("store_driver %q: use sqlite or postgres", c.StoreDriver))
	}
	for _, s := range c.Scopes {
		if _, _, err := ParseScope(s); err != nil {
			p = append(p, err.Error())
		}
	}
	if c.HeartbeatInterval < 100*time.Millisecond {
		p = append(p, fmt.Sprintf("heartbeat_interval %s is too short (min 100ms)", c.HeartbeatInterval))
	}
	if c.InvokeTimeout <= 0 || c.InvokeMaxTimeout < c.InvokeTimeout {
		p = append(p, fmt.Sprintf("invoke_timeout (%s) must be > 0 and <= invoke_max_timeout (%s)", c.InvokeTimeout, c.InvokeMaxTimeout))
	}
	if c.AdminPassword != "" && len(c.AdminPassword) < 8 {
		p = append(p, "admin_password must be at least 8 characters")
	}
	if c.AccessTokenTTL < time.Minute || c.RefreshTokenTTL < c.AccessTokenTTL {
		p = append(p, fmt.Sprintf("access_token_ttl (%s) must be >= 1m and <= refresh_token_ttl (%s)", c.AccessTokenTTL, c.RefreshTokenTTL))
	}
	if c.RefreshReuseGrace < 0 || c.RefreshReuseGrace > time.Minute {
		p = append(p, fmt.Sprintf("refresh_reuse_grace (%s) must be between 0 and 1m", c.RefreshReuseGrace))
	}
	if c.RateUser < 0 || c.RateFunction < 0 || c.RateUserBurst < 0 || c.RateFunctionBurst < 0 {
		p = append(p, "rate limits must not be negative (0 = unlimited)")
	}
	p = append(p, c.Login.Problems()...)
	if c.IdempotencyWindow <= 0 {
		p = append(p, fmt.Sprintf("idempotency_window %s must be positive (e.g. 24h)", c.IdempotencyWindow))
	}
	if c.JobOrphanGrace < 0 || c.JobRetention < 0 || c.JobKeep < 0 {
		p = append(p, "job_orphan_grace, job_retention and job_keep must not be negative")
	}
	if c.JobMaxEventBytes < 4096 {
		p = append(p, fmt.Sprintf("job_max_event_bytes %d must be at least 4096 (a job's terminal event is stored whatever the budget; e.g. 33554432 for 32 MiB)", c.JobMaxEventBytes))
	}
	switch c.NATS {
	case "embedded", "off":
	case "external":
		if c.NATSURL == "" {
			p = append(p, "nats external needs nats_url (nats://host:4222,nats://host2:4222)")
		}
	default:
		p = append(p, fmt.Sprintf("nats %q: use embedded, external or off", c.NATS))
	}
	if err := checkTracing(c.OTLPEndpoint, c.TraceSampleRatio); err != "" {
		p = append(p, err)
	}
	if c.MaxRequestBytes < 1024 {
		p = append(p, "max_request_bytes must be at least 1024")
	}
	return joinErrors(p)
}

// ParseScope splits "game/env".
func ParseScope(s string) (game, env string, err error) {
	game, env, ok := strings.Cut(s, "/")
	if !ok || !validName(game) || !validName(env) {
		return "", "", fmt.Errorf("scope %q must be GAME/ENV with letters, digits, '-', '_' or '.'", s)
	}
	return game, env, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}
