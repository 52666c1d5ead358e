package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Agent configures `croupier agent`.
type Agent struct {
	// ID names the agent; with mTLS it must match the certificate's name.
	ID   string `koanf:"agent_id"`
	Game string `koanf:"game_id"`
	Env  string `koanf:"env"`
	// Server is the server's gRPC address (host:port), or several server
	// nodes' addresses separated by commas (the agent holds one tunnel and
	// moves to another node when its node dies; docs/cluster.md).
	Server string `koanf:"server"`
	// Transport is "auto" (default: the conn transport, falling back to
	// the gRPC stream where it does not work), "conn" (the conn transport
	// on the gRPC port: frames straight on the TLS connection), "grpc"
	// (bidi stream) or "longpoll" (HTTP/1.1). See docs/tunnel.md.
	Transport string `koanf:"transport"`
	// LongPollURL is the server's long-poll tunnel base URL, e.g.
	// https://server:8444/tunnel/v1.
	LongPollURL string `koanf:"longpoll_url"`
	Insecure    bool   `koanf:"insecure"`
	TLSCA       string `koanf:"tls_ca"`
	TLSCert     string `koanf:"tls_cert"`
	TLSKey      string `koanf:"tls_key"`
	// TLSServerName overrides the name checked in the server certificate.
	TLSServerName string `koanf:"tls_server_name"`
	// SDKAddr is the loopback address game servers (SDK) connect to.
	SDKAddr string `koanf:"sdk_addr"`
	// SDKAllowUIDs are the users, besides the agent's own and root, whose
	// processes may connect to SDKAddr (game servers in another container
	// of the same network namespace, say). See docs/security.md.
	SDKAllowUIDs []int `koanf:"sdk_allow_uids"`
	// Labels are attached to the agent's registration ("k=v" pairs).
	Labels []string `koanf:"labels"`
	// DataDir holds the default certificate paths.
	DataDir string `koanf:"data_dir"`
	// ReconnectMax caps the reconnect backoff.
	ReconnectMax time.Duration `koanf:"reconnect_max"`
	// GSEAddr is where the GSE-compatible game-process endpoint listens
	// (GseGrpcSdkService, loopback); empty disables the fleet plane.
	GSEAddr string `koanf:"gse_addr"`
	// GSEIP and GSEDNS are the address players connect to, reported in game
	// server sessions; default the host's primary IP.
	GSEIP  string `koanf:"gse_ip"`
	GSEDNS string `koanf:"gse_dns"`
	// GSEDefaultFleet is the fleet of processes that call ProcessReady
	// without having been launched by this agent.
	GSEDefaultFleet string `koanf:"gse_default_fleet"`
	// BuildDirs are the only directories whose executables the agent
	// launches for fleets (checked after symlinks); default
	// DATA_DIR/builds. See docs/fleet.md, Trust model.
	BuildDirs []string `koanf:"build_dirs"`
	// GSEHealthInterval is how often processes are asked OnHealthCheck.
	GSEHealthInterval time.Duration `koanf:"gse_health_interval"`

	// OTLPEndpoint is the OpenTelemetry collector (OTLP over gRPC,
	// host:port) that receives traces; empty (the default) turns tracing
	// off. OTLPInsecure sends them without TLS. TraceSampleRatio is the
	// share of new traces kept (0..1, default 1); a call that arrives with
	// a sampled parent is always traced. See docs/observability.md.
	OTLPEndpoint     string  `koanf:"otlp_endpoint"`
	OTLPInsecure     bool    `koanf:"otlp_insecure"`
	TraceSampleRatio float64 `koanf:"trace_sample_ratio"`
}

// maxSDKAllowUIDs bounds sdk_allow_uids; maxUID is the largest Linux uid
// (2^32 - 2: 2^32 - 1 is the "no uid" value).
const (
	maxSDKAllowUIDs       = 64
	maxUID          int64 = 1<<32 - 2
)

// DefaultAgent returns the defaults of `croupier agent`.
func DefaultAgent() Agent {
	host, _ := os.Hostname()
	return Agent{
		ID:               host,
		Server:           "127.0.0.1:8443",
		Transport:        "auto",
		SDKAddr:          "127.0.0.1:19090",
		DataDir:          DefaultDataDir(),
		ReconnectMax:     30 * time.Second,
		GSEAddr:          "127.0.0.1:5758",
		TraceSampleRatio: 1,
	}
}

// Resolve fills derived paths and validates.
func (c *Agent) Resolve() error {
	certs := filepath.Join(c.DataDir, "certs")
	if c.TLSCA == "" {
		c.TLSCA = filepath.Join(certs, "ca.crt")
	}
	if c.TLSCert == "" {
		c.TLSCert = filepath.Join(certs, "agent.crt")
	}
	if c.TLSKey == "" {
		c.TLSKey = filepath.Join(certs, "agent.key")
	}
	if len(c.BuildDirs) == 0 {
		c.BuildDirs = []string{filepath.Join(c.DataDir, "builds")}
	}
	var p []string
	for i, d := range c.BuildDirs {
		abs, err := filepath.Abs(d)
		if d == "" || err != nil {
			p = append(p, fmt.Sprintf("build_dirs: %q is not a directory path", d))
			continue
		}
		c.BuildDirs[i] = abs
	}
	if len(c.BuildDirs) > 16 {
		p = append(p, fmt.Sprintf("build_dirs: %d directories; at most 16 are allowed", len(c.BuildDirs)))
	}
	if !validName(c.ID) {
		p = append(p, fmt.Sprintf("agent_id %q: use letters, digits, '-', '_' or '.' (max 64)", c.ID))
	}
	if !validName(c.Game) || !validName(c.Env) {
		p = append(p, "game_id and env are required (--game-id, --env): the scope this agent serves")
	}
	switch c.Transport {
	case "auto", "grpc", "conn":
		if err := checkServers(c.Server); err != nil {
			p = append(p, fmt.Sprintf("server %q is not host:port", c.Server))
		}
	case "longpoll":
		if c.LongPollURL == "" {
			p = append(p, "transport longpoll needs longpoll_url (e.g. https://server:8444/tunnel/v1)")
		}
		if err := checkServers(c.Server); err != nil {
			p = append(p, fmt.Sprintf("server %q is not host:port (unary calls still use gRPC)", c.Server))
		}
	default:
		p = append(p, fmt.Sprintf("transport %q: use auto, grpc, conn or longpoll", c.Transport))
	}
	if c.GSEAddr != "" {
		if _, _, err := net.SplitHostPort(c.GSEAddr); err != nil {
			p = append(p, fmt.Sprintf("gse_addr %q is not host:port (empty disables the GSE endpoint)", c.GSEAddr))
		}
	}
	if len(c.SDKAllowUIDs) > maxSDKAllowUIDs {
		p = append(p, fmt.Sprintf("sdk_allow_uids: %d users; at most %d are allowed", len(c.SDKAllowUIDs), maxSDKAllowUIDs))
	}
	for _, uid := range c.SDKAllowUIDs {
		if uid < 0 || int64(uid) > maxUID {
			p = append(p, fmt.Sprintf("sdk_allow_uids: %d is not a uid (0..%d)", uid, maxUID))
		}
	}
	if _, _, err := net.SplitHostPort(c.SDKAddr); err != nil {
		p = append(p, fmt.Sprintf("sdk_addr %q is not host:port", c.SDKAddr))
	}
	for _, l := range c.Labels {
		if _, _, ok := cutLabel(l); !ok {
			p = append(p, fmt.Sprintf("label %q must be key=value", l))
		}
	}
	if err := checkTracing(c.OTLPEndpoint, c.TraceSampleRatio); err != "" {
		p = append(p, err)
	}
	return joinErrors(p)
}

// LabelMap returns Labels as a map.
func (c *Agent) LabelMap() map[string]string {
	m := map[string]string{}
	for _, l := range c.Labels {
		if k, v, ok := cutLabel(l); ok {
			m[k] = v
		}
	}
	return m
}

func cutLabel(l string) (string, string, bool) {
	for i := 0; i < len(l); i++ {
		if l[i] == '=' {
			return l[:i], l[i+1:], i > 0
		}
	}
	return "", "", false
}

// checkServers checks a comma-separated list of host:port addresses.
func checkServers(list string) error {
	for _, a := range strings.Split(list, ",") {
		if _, _, err := net.SplitHostPort(strings.TrimSpace(a)); err != nil {
			return err
		}
	}
	return nil
}
