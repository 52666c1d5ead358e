package cli

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/croupier/croupier/internal/agent"
	"github.com/croupier/croupier/internal/config"
	"github.com/croupier/croupier/internal/secfile"
	"github.com/croupier/croupier/internal/server"
	"github.com/croupier/croupier/internal/store"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func serverFlags(fs *pflag.FlagSet, d config.Server) {
	fs.String("grpc-addr", d.GRPCAddr, "gRPC listen address (APIs and the agent tunnel)")
	fs.String("http-addr", d.HTTPAddr, "HTTP listen address (/healthz, /readyz, /metrics)")
	fs.String("tunnel-http-addr", d.TunnelHTTPAddr, "long-poll tunnel listen address (HTTP/1.1); empty disables")
	fs.String("data-dir", d.DataDir, "data directory (SQLite database, certificates)")
	fs.Bool("insecure", false, "serve plaintext; refused unless every address is loopback")
	fs.String("tls-ca", "", "CA certificate that signs agent and client certificates (default DATA_DIR/certs/ca.crt)")
	fs.String("tls-cert", "", "server certificate (default DATA_DIR/certs/server.crt)")
	fs.String("tls-key", "", "server key (default DATA_DIR/certs/server.key)")
	fs.String("store-driver", d.StoreDriver, "store: sqlite or postgres")
	fs.String("store-dsn", "", "PostgreSQL URL, or SQLite file (default DATA_DIR/croupier.db)")
	fs.StringSlice("scopes", nil, "declared scopes GAME/ENV (repeatable or comma-separated)")
	fs.Duration("heartbeat-interval", d.HeartbeatInterval, "agent heartbeat interval; three missed beats remove an agent")
	fs.Duration("invoke-timeout", d.InvokeTimeout, "default InvokeFunction timeout")
	fs.Duration("invoke-max-timeout", d.InvokeMaxTimeout, "largest timeout a caller may ask for")
	fs.Duration("idempotency-window", d.IdempotencyWindow, "how long idempotency keys are remembered")
	fs.Duration("job-orphan-grace", d.JobOrphanGrace, "how long a running job's agent may stay away before the job fails")
	fs.Duration("job-retention", d.JobRetention, "finished jobs older than this are pruned")
	fs.Int("job-keep", d.JobKeep, "the newest finished jobs always kept")
	fs.Int64("job-max-event-bytes", d.JobMaxEventBytes, "a job's event budget: events past it are acknowledged but not stored, but for the terminal one (message and data bytes, and 128 per event)")
	fs.String("admin-user", d.AdminUser, "administrator created at start when an admin password is set")
	fs.Duration("access-token-ttl", d.AccessTokenTTL, "lifetime of access tokens")
	fs.Duration("refresh-token-ttl", d.RefreshTokenTTL, "lifetime of refresh tokens")
	fs.Duration("refresh-reuse-grace", d.RefreshReuseGrace, "a spent refresh token presented again this soon rotates again (tabs renewing at once) instead of revoking its session; 0: never")
	fs.Duration("approval-ttl", d.ApprovalTTL, "how long an approval request waits for a decision")
	fs.Bool("approval-high-risk", d.ApprovalHighRisk, "require two-person approval for every HIGH-risk function")
	fs.Float64("rate-user", d.RateUser, "calls per second per operator (0 = unlimited)")
	fs.String("otlp-endpoint", "", "OpenTelemetry collector (OTLP/gRPC host:port) to send traces to; empty: tracing off")
	fs.Bool("otlp-insecure", false, "send traces to the collector without TLS")
	fs.Float64("trace-sample-ratio", d.TraceSampleRatio, "share of new traces kept, 0..1")
	fs.Int("rate-user-burst", d.RateUserBurst, "burst per operator")
	fs.Float64("rate-function", d.RateFunction, "calls per second per function (0 = unlimited)")
	fs.Int("rate-function-burst", d.RateFunctionBurst, "burst per function")
	natsFlags(fs, d.NATS, d.NATSListen, "cluster bus: embedded (NATS inside the process), external (--nats-url) or off",
		"this node's id in the cluster (default: host name and pid)")
}

func newServerCmd(g *globals) *cobra.Command {
	var configFile string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control server (gRPC :8443, HTTP :8080)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := config.DefaultServer()
			if err := config.Load(&cfg, configFile, cmd.Flags()); err != nil {
				return err
			}
			log := g.logger()
			s, err := server.New(cfg, log)
			if err != nil {
				return err
			}
			checkKeyFiles(log, cfg.Resolve, &cfg.TLSKey, &cfg.Insecure, filepath.Join(cfg.DataDir, "certs", "ca.key"))
			return s.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "YAML config file (keys as in docs/configuration.md)")
	serverFlags(cmd.Flags(), config.DefaultServer())
	return cmd
}

func agentFlags(fs *pflag.FlagSet, d config.Agent) {
	fs.String("agent-id", d.ID, "agent id (must match its certificate)")
	fs.String("game-id", "", "game this agent serves")
	fs.String("env", "", "environment this agent serves")
	fs.String("server", d.Server, "server gRPC address")
	fs.String("transport", d.Transport, "tunnel transport: auto (conn, or grpc where conn does not work), grpc, conn or longpoll")
	fs.String("longpoll-url", "", "server long-poll base URL for --transport longpoll, e.g. https://server:8444")
	fs.Bool("insecure", false, "dial without TLS; refused unless the server is on loopback")
	fs.String("tls-ca", "", "CA certificate (default DATA_DIR/certs/ca.crt)")
	fs.String("tls-cert", "", "agent certificate (default DATA_DIR/certs/agent.crt)")
	fs.String("tls-key", "", "agent key (default DATA_DIR/certs/agent.key)")
	fs.String("tls-server-name", "", "name to verify in the server certificate")
	fs.String("sdk-addr", d.SDKAddr, "loopback address game servers connect to")
	fs.IntSlice("sdk-allow-uids", nil, "users, besides the agent's and root, whose processes may connect to the SDK address (repeatable)")
	fs.StringSlice("labels", nil, "labels key=value (repeatable)")
	fs.String("data-dir", d.DataDir, "data directory (default certificate paths)")
	fs.Duration("reconnect-max", d.ReconnectMax, "longest wait between reconnect attempts")
	fs.String("gse-addr", d.GSEAddr, "GSE-compatible game-process endpoint (loopback); empty disables the fleet plane")
	fs.String("gse-ip", "", "address players connect to (default: the host's primary IP)")
	fs.String("gse-dns", "", "DNS name players connect to")
	fs.String("gse-default-fleet", "", "fleet of processes that report ready without being launched by this agent")
	fs.StringSlice("build-dirs", nil, "directories whose executables fleets may launch, checked after symlinks (repeatable; default DATA_DIR/builds)")
	fs.Duration("gse-health-interval", 0, "how often game processes get OnHealthCheck (default 60s)")
	fs.String("otlp-endpoint", "", "OpenTelemetry collector (OTLP/gRPC host:port) to send traces to; empty: tracing off")
	fs.Bool("otlp-insecure", false, "send traces to the collector without TLS")
	fs.Float64("trace-sample-ratio", d.TraceSampleRatio, "share of new traces kept, 0..1")
}

func newAgentCmd(g *globals) *cobra.Command {
	var configFile string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run an agent: dials the server and serves local game servers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := config.DefaultAgent()
			if err := config.Load(&cfg, configFile, cmd.Flags()); err != nil {
				return err
			}
			log := g.logger()
			a, err := agent.New(cfg, log)
			if err != nil {
				return err
			}
			checkKeyFiles(log, cfg.Resolve, &cfg.TLSKey, &cfg.Insecure)
			return a.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "YAML config file")
	agentFlags(cmd.Flags(), config.DefaultAgent())
	return cmd
}

func newMigrateCmd(g *globals) *cobra.Command {
	var configFile string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply database migrations and exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := config.DefaultServer()
			if err := config.Load(&cfg, configFile, cmd.Flags()); err != nil {
				return err
			}
			if err := cfg.Resolve(); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
			defer cancel()
			st, err := store.Open(ctx, store.Config{Driver: cfg.StoreDriver, DSN: cfg.StoreDSN, Logger: g.logger()})
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.Migrate(ctx); err != nil {
				return err
			}
			_, err = fmt.Fprintf(g.stdout, "migrations applied (%s)\n", cfg.StoreDriver)
			return err
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "YAML config file")
	fs := cmd.Flags()
	d := config.DefaultServer()
	fs.String("data-dir", d.DataDir, "data directory (SQLite database)")
	fs.String("store-driver", d.StoreDriver, "store: sqlite or postgres")
	fs.String("store-dsn", "", "PostgreSQL URL, or SQLite file (default DATA_DIR/croupier.db)")
	return cmd
}

// checkKeyFiles warns at start about private keys other users can read: the
// daemon's TLS key (unless it runs without TLS) and any extra files, such
// as a CA key left in the data dir. resolve fills the default paths.
func checkKeyFiles(log *slog.Logger, resolve func() error, tlsKey *string, insecure *bool, extra ...string) {
	if resolve() != nil {
		return // New already reported the configuration error
	}
	if !*insecure {
		extra = append(extra, *tlsKey)
	}
	secfile.Check(log, extra...)
}

// natsFlags are the cluster bus flags `croupier server` and `croupier
// gateway` share (docs/cluster.md); mode and listen are the defaults.
func natsFlags(fs *pflag.FlagSet, mode, listen, modeHelp, nodeIDHelp string) {
	fs.String("nats", mode, modeHelp)
	fs.String("node-id", "", nodeIDHelp)
	fs.String("nats-url", "", "external NATS servers (nats://a:4222,nats://b:4222); with --nats external")
	fs.String("nats-creds", "", "NATS user credentials file (external NATS)")
	fs.String("nats-tls-ca", "", "CA that signs the external NATS servers' certificates")
	fs.String("nats-tls-cert", "", "client certificate for the external NATS")
	fs.String("nats-tls-key", "", "client key for the external NATS")
	fs.String("nats-listen", listen, "embedded NATS client address for other processes (--nats external); default none: the node connects in-process")
	fs.String("nats-token-file", "", "0600 file with the bus token: required by a listening embedded NATS (clients and routes; default DATA_DIR/nats.token, generated) and presented to --nats-url; the same file on every node")
	fs.String("nats-cluster-name", "", "embedded NATS cluster name; enables routes")
	fs.String("nats-cluster-listen", "", "embedded NATS route address (host:port) other nodes' --nats-routes point at")
	fs.StringSlice("nats-routes", nil, "embedded NATS routes (nats://host:6222, repeatable); list every node, this one included")
}
