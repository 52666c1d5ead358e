package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/cluster"
	"github.com/croupier/croupier/internal/gateway"
	"github.com/croupier/croupier/internal/revocation"
	"github.com/croupier/croupier/internal/roomcluster"
	"github.com/croupier/croupier/internal/tlsconf"
)

// gatewayClusterFlags are the flags of the gateway tier (docs/cluster.md).
func gatewayClusterFlags(fs *pflag.FlagSet, d gateway.Config) {
	natsFlags(fs, d.NATS, d.NATSListen, "gateway tier bus: embedded (NATS inside the process, loopback, JetStream in DATA_DIR/gateway/nats), external (--nats-url) or off (rooms on this node only: no room log, cluster services, live leases or relays)",
		"this gateway node's id in the cluster (default: host name and pid)")
	fs.String("data-dir", "", "data directory: JetStream files in DATA_DIR/gateway/nats, default certificates in DATA_DIR/certs (default $CROUPIER_DATA_DIR or ./croupier-data)")
	fs.String("cluster-addr", d.ClusterAddr, "gRPC listener of SyncTV's ClusterService and DataSyncService (mTLS); empty: not served")
	fs.String("cluster-advertise", "", "address other nodes reach --cluster-addr at (default: the listener's)")
	fs.String("cluster-tls-ca", "", "CA whose client certificates the cluster listener accepts (default DATA_DIR/certs/ca.crt)")
	fs.String("cluster-tls-cert", "", "certificate of the cluster listener (default DATA_DIR/certs/server.crt)")
	fs.String("cluster-tls-key", "", "key of --cluster-tls-cert (default DATA_DIR/certs/server.key)")
	fs.Int("cluster-replicas", 0, "replicas of the room log, buckets and live leases (default: number of routes, at most 3, else 1)")
}

// gatewayTier is this process's part in the gateway tier: the NATS bus,
// the room cluster node (the rooms system's Bus) and the gRPC listener of
// the cluster services. It owns the serving goroutine; stop ends it.
type gatewayTier struct {
	bus    *cluster.Node
	ownBus bool   // stop closes the bus (`croupier gateway`; dev's is the server's)
	unlock func() // releases the embedded NATS's data dir (nil: none)
	node   *roomcluster.Node
	gs     *grpc.Server
	served chan error
	// addr is the cluster listener's advertised address ("": none).
	addr string
}

// joinGatewayTier connects to the bus and prepares the room cluster node;
// the rooms system starts it (roomsHostConfig.Bus), then serve.
func joinGatewayTier(ctx context.Context, log *slog.Logger, cfg gateway.Config, rv *revocation.List) (*gatewayTier, error) {
	ccfg := cluster.Config{
		NodeID: cfg.NodeID, DataDir: filepath.Join(cfg.DataDir, "gateway"), Logger: log,
		Listen: cfg.NATSListen, ClusterName: cfg.NATSClusterName, ClusterListen: cfg.NATSClusterListen,
		Routes: cfg.NATSRoutes, MembersBucket: "croupier_gateways", Replicas: cfg.ClusterReplicas,
		TokenFile: cfg.NATSTokenFile,
	}
	if cfg.NATS == "external" {
		ccfg.URL, ccfg.CredsFile = cfg.NATSURL, cfg.NATSCreds
		if cfg.NATSTLSCA != "" || cfg.NATSTLSCert != "" {
			tc, err := tlsconf.ClientConfig(cfg.NATSTLSCA, cfg.NATSTLSCert, cfg.NATSTLSKey, "")
			if err != nil {
				return nil, fmt.Errorf("nats TLS: %w", err)
			}
			ccfg.TLS = tc
		}
	}
	tcfg := tierConfig{Addr: cfg.ClusterAddr, Advertise: cfg.ClusterAdvertise, Replicas: cfg.ClusterReplicas, Revocations: rv}
	if tcfg.Addr != "" && cfg.ClusterTLSDefaulted() {
		for _, f := range []string{cfg.ClusterTLSCA, cfg.ClusterTLSCert, cfg.ClusterTLSKey} {
			if _, err := os.Stat(f); err != nil {
				log.Warn("cluster services off: no certificate at its default path; other nodes cannot call this one's ClusterService/DataSyncService (run `croupier certs init --dir "+
					filepath.Join(cfg.DataDir, "certs")+"` or set --cluster-tls-*, docs/cluster.md)", "missing", f)
				tcfg.Addr = ""
				break
			}
		}
	}
	if tcfg.Addr != "" {
		tc, err := tlsconf.ServerConfig(cfg.ClusterTLSCA, cfg.ClusterTLSCert, cfg.ClusterTLSKey, true)
		if err != nil {
			return nil, fmt.Errorf("cluster listener: %w (set --cluster-tls-ca/cert/key, or run `croupier certs init --dir %s`)", err, filepath.Join(cfg.DataDir, "certs"))
		}
		tc.VerifyConnection = certs.NodePeers(cfg.NodePeerNames, rv.Revoked)
		tcfg.TLS = credentials.NewTLS(tc)
	}
	unlock := func() {}
	if cfg.NATS == "embedded" {
		if err := os.MkdirAll(ccfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		var err error
		if unlock, err = lockFile(filepath.Join(ccfg.DataDir, "nats.lock")); err != nil {
			return nil, fmt.Errorf("embedded NATS: %w: another gateway runs on data dir %s; give each gateway its own --data-dir (they may share --store-dsn)", err, cfg.DataDir)
		}
	}
	bus, err := cluster.Start(ctx, ccfg)
	if err != nil {
		unlock()
		return nil, err
	}
	t, err := startGatewayTier(ctx, log, bus, tcfg)
	if err != nil {
		bus.Close()
		unlock()
		return nil, err
	}
	t.ownBus, t.unlock = true, unlock
	return t, nil
}

// tierConfig is a gateway tier node's part beside its bus.
type tierConfig struct {
	// Addr is the cluster services' listener ("": not served) with TLS
	// (mTLS: callers are nodes with a certificate of the same CA);
	// Advertise is the address other nodes are told (default the
	// listener's).
	Addr, Advertise string
	TLS             credentials.TransportCredentials
	// Revocations refuses revoked certificates on the listener's calls
	// (nil: no list).
	Revocations *revocation.List
	// Replicas of the room log and buckets (at most the NATS servers).
	Replicas int
}

// startGatewayTier makes this process a gateway tier node on bus (which
// the caller keeps owning) and serves the cluster services.
func startGatewayTier(ctx context.Context, log *slog.Logger, bus *cluster.Node, c tierConfig) (*gatewayTier, error) {
	t := &gatewayTier{bus: bus}
	var ln net.Listener
	if c.Addr != "" {
		var err error
		if ln, err = net.Listen("tcp", c.Addr); err != nil {
			return nil, fmt.Errorf("cluster listener: %w", err)
		}
	}
	t.addr = c.Advertise
	if t.addr == "" && ln != nil {
		t.addr = ln.Addr().String()
	}
	// Bounded like the bus's own start: a misconfigured cluster (e.g. more
	// replicas than NATS servers) is an error, not a silent wait.
	nctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	var err error
	t.node, err = roomcluster.New(nctx, roomcluster.Config{Conn: bus.Conn(), NodeID: bus.ID(), Address: t.addr,
		Replicas: c.Replicas, Logger: log.With("part", "roomcluster")})
	if err != nil {
		if ln != nil {
			_ = ln.Close()
		}
		return nil, err
	}
	if ln != nil {
		t.gs = grpc.NewServer(append(c.Revocations.ServerOptions(), grpc.Creds(c.TLS), grpc.MaxRecvMsgSize(1<<20))...)
		t.node.Register(t.gs)
		t.served = make(chan error, 1)
		go func() { t.served <- t.gs.Serve(ln) }()
	}
	log.Info("gateway tier joined", "node_id", bus.ID(), "nats_url", bus.ClientURL(), "nats_route_url", bus.RouteURL(),
		"cluster_addr", t.addr, "replicas", c.Replicas)
	return t, nil
}

// startTimeout bounds joining the gateway tier (the room log and buckets)
// and starting the node's delivery.
const startTimeout = 30 * time.Second

// stop ends the cluster services, leaves the cluster and closes the bus.
// Call it after the rooms system stopped.
func (t *gatewayTier) stop() {
	if t.gs != nil {
		done := make(chan struct{})
		go func() { t.gs.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.gs.Stop() // SyncEvents streams run until their caller leaves
			<-done
		}
		<-t.served
	}
	t.node.Close()
	if t.ownBus {
		t.bus.Close()
	}
	if t.unlock != nil {
		t.unlock()
	}
}
