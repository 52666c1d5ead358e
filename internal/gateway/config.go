package gateway

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/config"
	"github.com/croupier/croupier/internal/tlsconf"
)

// Config configures `croupier gateway`. Keys are the flat snake_case names of
// the config file, the CROUPIER_* environment and the flags (see
// docs/gateway.md).
type Config struct {
	// ServerID is this gateway's id (0–255): the first byte of every uniqId
	// and the serverId a business must register with.
	ServerID int `koanf:"server_id"`
	// ClientAddr and ClientPath are where game clients open WebSockets.
	ClientAddr string `koanf:"client_addr"`
	ClientPath string `koanf:"client_path"`
	// ClientTLSCert and ClientTLSKey serve the WebSocket listener over TLS
	// (wss://) when both are set.
	ClientTLSCert string `koanf:"client_tls_cert"`
	ClientTLSKey  string `koanf:"client_tls_key"`
	// BusinessAddr is the TCP listener of business processes. Off loopback it
	// requires mTLS (BusinessTLS*).
	BusinessAddr string `koanf:"business_addr"`
	// BusinessTLSCA, BusinessTLSCert and BusinessTLSKey turn on mTLS for the
	// business listener: businesses must present a certificate signed by CA.
	BusinessTLSCA   string `koanf:"business_tls_ca"`
	BusinessTLSCert string `koanf:"business_tls_cert"`
	BusinessTLSKey  string `koanf:"business_tls_key"`
	// ReadDeadline closes a client or business that sent nothing for this long.
	ReadDeadline time.Duration `koanf:"read_deadline"`
	// HandshakeTimeout closes a client connection that has not completed its
	// HTTP request (the WebSocket upgrade) this long after connecting or
	// after its last request, so half-sent handshakes cannot hold sockets.
	HandshakeTimeout time.Duration `koanf:"handshake_timeout"`
	// MaxOnline refuses WebSocket upgrades beyond this many connections.
	MaxOnline int `koanf:"max_online"`
	// ReceivePackLimit bounds a client message and a business frame, in bytes.
	ReceivePackLimit int `koanf:"receive_pack_limit"`
	// SendBufferLimit bounds the bytes queued for one client; a client that
	// lets more pile up is disconnected.
	SendBufferLimit int `koanf:"send_buffer_limit"`
	// SendMessageType is the WebSocket frame type of data sent to clients:
	// "text" or "binary".
	SendMessageType string `koanf:"send_message_type"`
	// ConnOpenWorkerID and ConnCloseWorkerID receive ConnOpen and ConnClose
	// (0: not sent).
	ConnOpenWorkerID  int `koanf:"conn_open_worker_id"`
	ConnCloseWorkerID int `koanf:"conn_close_worker_id"`
	// AllowedOrigins lists the Origin header values accepted on upgrade. Empty:
	// requests without Origin or from the same host only; "*": any origin.
	AllowedOrigins []string `koanf:"allowed_origins"`
	// CustomUniqIDKey and CustomUniqIDTokenKey are the query keys of a client
	// that connects with its own uniqId and a one-time token from
	// ConnOpenCustomUniqIdToken (empty key: custom uniqIds are off).
	CustomUniqIDKey      string `koanf:"custom_uniq_id_key"`
	CustomUniqIDTokenKey string `koanf:"custom_uniq_id_token_key"`
	// CustomUniqIDTokenTTL is how long such a token stays valid.
	CustomUniqIDTokenTTL time.Duration `koanf:"custom_uniq_id_token_ttl"`
	// LimitGroups are token buckets on client messages, each
	// "name=concurrency:workerId,workerId,..." (concurrency messages per
	// second for the group's workerIds; the excess is dropped).
	LimitGroups []string `koanf:"limit_groups"`
	// MetricsItems are the Metrics items kept and answered: 0 connection
	// open, 1 connection close, 2 heartbeat, 3 transfer count, 4 transfer
	// bytes, 5 write count, 6 write bytes.
	MetricsItems []int `koanf:"metrics_items"`
	// ConnectRatePerIP limits WebSocket upgrades per client IP (per second,
	// bursts of ConnectBurstPerIP); 0 turns the limit off. Behind a proxy
	// every client shares the proxy's IP.
	ConnectRatePerIP  float64 `koanf:"connect_rate_per_ip"`
	ConnectBurstPerIP int     `koanf:"connect_burst_per_ip"`
	// BusinessQueue bounds the frames queued for one business; beyond it
	// client messages to that business are dropped.
	BusinessQueue int `koanf:"business_queue"`

	// RoomsAddr is the HTTP listener of the rooms system (SyncTV's
	// ClientService over gRPC, gRPC-Web and Connect, its WebSocket stream,
	// /time; docs/rooms.md); empty turns rooms off. Without
	// RoomsTLSCert/Key it serves cleartext HTTP/1.1 and h2c, loopback only.
	RoomsAddr    string `koanf:"rooms_addr"`
	RoomsTLSCert string `koanf:"rooms_tls_cert"`
	RoomsTLSKey  string `koanf:"rooms_tls_key"`
	// RTMPAddr is the RTMP ingest of live streams (docs/live.md), served
	// with the rooms system; empty turns ingest off.
	RTMPAddr string `koanf:"rtmp_addr"`
	// MaxStreams bounds the live streams published on this node.
	MaxStreams int `koanf:"max_streams"`
	// RTMPSAddr is an RTMP-over-TLS listener (publish and play) with
	// RTMPSTLSCert/Key; empty turns it off.
	RTMPSAddr    string `koanf:"rtmps_addr"`
	RTMPSTLSCert string `koanf:"rtmps_tls_cert"`
	RTMPSTLSKey  string `koanf:"rtmps_tls_key"`
	// StoreDriver and StoreDSN name the database of the rooms system, as
	// for `croupier server` ("sqlite" with a file, default
	// <data dir>/croupier.db, or "postgres" with a URL).
	StoreDriver string `koanf:"store_driver"`
	StoreDSN    string `koanf:"store_dsn"`
	// Login is the login throttle of the rooms system's player accounts
	// (login_* keys, as the server's for operators).
	config.Login
	// SignupsPerMinute and SignupBurst limit the player accounts and
	// guests one client address creates in the rooms system (Register,
	// GuestJoin). Behind a proxy every client shares the proxy's address.
	SignupsPerMinute float64 `koanf:"signups_per_minute"`
	SignupBurst      int     `koanf:"signup_burst"`
	// NodePeerNames are the client certificates (by name) that may call
	// this node's cluster services and live relays — other nodes, which act
	// with every room's full authority; default the name `croupier certs
	// init` gives its client certificate, which nodes pull relays with.
	NodePeerNames []string `koanf:"node_peer_names"`

	// The gateway tier on several nodes (docs/cluster.md, "Gateway
	// tier"); validated by validateCluster (cluster_config.go).
	//
	// NATS is "embedded" (default: a NATS server inside the process on
	// NATSListen if set (default none), JetStream in DataDir/gateway/nats, optionally
	// routed to other embedded servers; a single gateway is then a
	// one-node gateway tier), "external" (NATSURL) or "off" (rooms on
	// this node only, without the room log, SyncTV's cluster services or
	// live leases in NATS). With rooms off (empty RoomsAddr) the tier has
	// nothing to carry: embedded then starts no NATS.
	NATS              string   `koanf:"nats"`
	NodeID            string   `koanf:"node_id"`
	DataDir           string   `koanf:"data_dir"`
	NATSURL           string   `koanf:"nats_url"`
	NATSCreds         string   `koanf:"nats_creds"`
	NATSTLSCA         string   `koanf:"nats_tls_ca"`
	NATSTLSCert       string   `koanf:"nats_tls_cert"`
	NATSTLSKey        string   `koanf:"nats_tls_key"`
	NATSListen        string   `koanf:"nats_listen"`
	NATSTokenFile     string   `koanf:"nats_token_file"` // see config.Server
	NATSClusterName   string   `koanf:"nats_cluster_name"`
	NATSClusterListen string   `koanf:"nats_cluster_listen"`
	NATSRoutes        []string `koanf:"nats_routes"`
	// ClusterAddr is the gRPC listener of SyncTV's ClusterService and
	// DataSyncService (mTLS with ClusterTLSCA/Cert/Key, default the
	// Croupier CA's files in DataDir/certs); empty: not served.
	// ClusterAdvertise is the address other nodes are told (default the
	// listener's).
	ClusterAddr      string `koanf:"cluster_addr"`
	ClusterAdvertise string `koanf:"cluster_advertise"`
	ClusterTLSCA     string `koanf:"cluster_tls_ca"`
	ClusterTLSCert   string `koanf:"cluster_tls_cert"`
	ClusterTLSKey    string `koanf:"cluster_tls_key"`
	// clusterTLSDefaulted: validateCluster filled the cluster TLS files.
	clusterTLSDefaulted bool
	// ClusterReplicas is the replica count of the room log, the
	// membership buckets and the live leases (0: Validate sets the number
	// of routes, at most 3, or 1).
	ClusterReplicas int `koanf:"cluster_replicas"`

	// Live relays between gateway nodes (docs/live.md), with the gateway
	// tier only (nats not off); validated by validateLive
	// (live_config.go). RelayAddr is the StreamRelayService listener
	// (mTLS; empty: no relays); RelayAdvertise is the address written in
	// the stream's lease for other nodes to dial (default the listener's).
	// RelayTLSCA/Cert/Key are the CA and the server certificate of the
	// listener, RelayClientCert/Key the client certificate this node
	// pulls with (default: the files of `croupier certs init` in
	// DataDir/certs).
	RelayAddr       string `koanf:"relay_addr"`
	RelayAdvertise  string `koanf:"relay_advertise"`
	RelayTLSCA      string `koanf:"relay_tls_ca"`
	RelayTLSCert    string `koanf:"relay_tls_cert"`
	RelayTLSKey     string `koanf:"relay_tls_key"`
	RelayClientCert string `koanf:"relay_client_cert"`
	RelayClientKey  string `koanf:"relay_client_key"`
	// relayTLSDefaulted: validateLive filled the relay TLS files.
	relayTLSDefaulted bool
}

// DefaultConfig returns the defaults of `croupier gateway` (netsvr's).
func DefaultConfig() Config {
	return Config{
		ServerID:         1,
		ClientAddr:       "127.0.0.1:6060",
		ClientPath:       "/netsvr",
		BusinessAddr:     "127.0.0.1:6061",
		ReadDeadline:     120 * time.Second,
		HandshakeTimeout: 10 * time.Second,
		MaxOnline:        100000,
		ReceivePackLimit: 2 << 20,
		SendBufferLimit:  4 << 20,
		SendMessageType:  "text",
		BusinessQueue:    8192,
		RoomsAddr:        "127.0.0.1:8090",
		RTMPAddr:         "127.0.0.1:1935",
		MaxStreams:       16,
		StoreDriver:      "sqlite",
		Login:            config.DefaultLogin(),
		SignupsPerMinute: 20,
		SignupBurst:      20,
		NodePeerNames:    []string{certs.DevClientName},
		NATS:             "embedded",
		ClusterAddr:      "127.0.0.1:0",
		RelayAddr:        "127.0.0.1:0",

		MetricsItems:         []int{0, 1, 2, 3, 4, 5, 6},
		ConnectRatePerIP:     20,
		ConnectBurstPerIP:    100,
		CustomUniqIDKey:      "uniqId",
		CustomUniqIDTokenKey: "token",
		CustomUniqIDTokenTTL: 30 * time.Second,
	}
}

// Validate reports every problem at once, each saying what to change.
func (c *Config) Validate() error {
	var p []string
	p = append(p, c.Login.Problems()...)
	if c.ServerID < 0 || c.ServerID > 255 {
		p = append(p, fmt.Sprintf("server_id %d: must be 0–255 (it is one byte of every uniqId)", c.ServerID))
	}
	if c.ClientAddr == "" {
		p = append(p, "client_addr: empty; set the WebSocket listen address, e.g. 127.0.0.1:6060")
	}
	if !strings.HasPrefix(c.ClientPath, "/") {
		p = append(p, fmt.Sprintf("client_path %q: must start with /", c.ClientPath))
	}
	if (c.ClientTLSCert == "") != (c.ClientTLSKey == "") {
		p = append(p, "client_tls_cert and client_tls_key: set both to serve wss://, or neither")
	}
	if c.BusinessAddr == "" {
		p = append(p, "business_addr: empty; set the business TCP listen address, e.g. 127.0.0.1:6061")
	}
	tlsSet := c.BusinessTLSCA != "" || c.BusinessTLSCert != "" || c.BusinessTLSKey != ""
	if tlsSet && (c.BusinessTLSCA == "" || c.BusinessTLSCert == "" || c.BusinessTLSKey == "") {
		p = append(p, "business_tls_ca, business_tls_cert and business_tls_key: set all three for mTLS, or none")
	}
	if c.BusinessAddr != "" && !tlsSet {
		if err := tlsconf.CheckInsecureAllowed(c.BusinessAddr, true); err != nil {
			p = append(p, fmt.Sprintf("business_addr %s: business processes are trusted with every player connection, so off loopback the listener requires mTLS; set business_tls_ca/cert/key or listen on 127.0.0.1", c.BusinessAddr))
		}
	}
	if c.ReadDeadline < time.Second {
		p = append(p, fmt.Sprintf("read_deadline %s: must be at least 1s", c.ReadDeadline))
	}
	if c.HandshakeTimeout < 100*time.Millisecond {
		p = append(p, fmt.Sprintf("handshake_timeout %s: must be at least 100ms", c.HandshakeTimeout))
	}
	if c.MaxOnline < 1 {
		p = append(p, fmt.Sprintf("max_online %d: must be at least 1", c.MaxOnline))
	}
	if c.ReceivePackLimit < 64 || c.ReceivePackLimit > 64<<20 {
		p = append(p, fmt.Sprintf("receive_pack_limit %d: must be 64 bytes–64 MiB", c.ReceivePackLimit))
	}
	if c.SendBufferLimit < 4096 {
		p = append(p, fmt.Sprintf("send_buffer_limit %d: must be at least 4096 bytes", c.SendBufferLimit))
	}
	if c.SendMessageType != "text" && c.SendMessageType != "binary" {
		p = append(p, fmt.Sprintf("send_message_type %q: must be text or binary", c.SendMessageType))
	}
	for _, w := range []struct {
		key string
		v   int
	}{{"conn_open_worker_id", c.ConnOpenWorkerID}, {"conn_close_worker_id", c.ConnCloseWorkerID}} {
		if w.v < 0 || w.v > maxWorkerID {
			p = append(p, fmt.Sprintf("%s %d: must be 0 (off) or a workerId 1–999", w.key, w.v))
		}
	}
	if c.CustomUniqIDKey != "" && (c.CustomUniqIDTokenKey == "" || c.CustomUniqIDTokenKey == c.CustomUniqIDKey) {
		p = append(p, fmt.Sprintf("custom_uniq_id_token_key %q: set a query key different from custom_uniq_id_key", c.CustomUniqIDTokenKey))
	}
	if c.CustomUniqIDTokenTTL < time.Second {
		p = append(p, fmt.Sprintf("custom_uniq_id_token_ttl %s: must be at least 1s", c.CustomUniqIDTokenTTL))
	}
	if _, err := newLimits(c.LimitGroups); err != nil {
		p = append(p, "limit_groups: "+err.Error())
	}
	for _, it := range c.MetricsItems {
		if it < 0 || it >= metricItems {
			p = append(p, fmt.Sprintf("metrics_items %d: items are 0–%d", it, metricItems-1))
		}
	}
	if len(c.NodePeerNames) == 0 || len(c.NodePeerNames) > 64 {
		p = append(p, fmt.Sprintf("node_peer_names: 1 to 64 client certificate names, got %d", len(c.NodePeerNames)))
	}
	for _, n := range c.NodePeerNames {
		if err := certs.CheckName(n); err != nil {
			p = append(p, fmt.Sprintf("node_peer_names: %v", err))
		}
	}
	if c.SignupsPerMinute <= 0 || c.SignupBurst < 1 {
		p = append(p, fmt.Sprintf("signups_per_minute %v / signup_burst %d: the rate must be > 0 and the burst >= 1", c.SignupsPerMinute, c.SignupBurst))
	}
	if c.ConnectRatePerIP < 0 || (c.ConnectRatePerIP > 0 && c.ConnectBurstPerIP < 1) {
		p = append(p, fmt.Sprintf("connect_rate_per_ip %v / connect_burst_per_ip %d: rate must be >= 0 (0: off) and burst >= 1", c.ConnectRatePerIP, c.ConnectBurstPerIP))
	}
	if c.BusinessQueue < 16 {
		p = append(p, fmt.Sprintf("business_queue %d: must be at least 16", c.BusinessQueue))
	}
	if (c.RoomsTLSCert == "") != (c.RoomsTLSKey == "") {
		p = append(p, "rooms_tls_cert and rooms_tls_key: set both to serve the rooms listener over TLS, or neither")
	}
	if c.RoomsAddr != "" && c.RoomsTLSCert == "" {
		if err := tlsconf.CheckInsecureAllowed(c.RoomsAddr, true); err != nil {
			p = append(p, fmt.Sprintf("rooms_addr %s: player passwords and tokens cross it, so off loopback it needs TLS; set rooms_tls_cert/key or listen on 127.0.0.1", c.RoomsAddr))
		}
	}
	if c.RoomsAddr != "" && c.StoreDriver != "sqlite" && c.StoreDriver != "postgres" {
		p = append(p, fmt.Sprintf("store_driver %q: use sqlite or postgres", c.StoreDriver))
	}
	if c.RoomsAddr != "" && c.StoreDriver == "postgres" && c.StoreDSN == "" {
		p = append(p, "store_driver postgres needs store_dsn (postgres://user:pass@host:5432/db)")
	}
	p = c.validateCluster(p)
	p = c.validateLive(p)
	if len(p) == 0 {
		return nil
	}
	return errors.New("invalid gateway configuration:\n  - " + strings.Join(p, "\n  - "))
}
