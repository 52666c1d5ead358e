package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/croupier/croupier/internal/cluster"
	"github.com/croupier/croupier/internal/gateway"
	"github.com/croupier/croupier/internal/roomcluster"
	"github.com/croupier/croupier/internal/tlsconf"
)

// gatewayClusterFlags are the flags of the gateway tier (docs/cluster.md).
func gatewayClusterFlags(fs *pflag.FlagSet, d gateway.Config) {
	natsFlags(fs, d.NATS, d.NATSListen, "gateway tier bus: off (rooms on this node only), embedded (NATS inside the process) or external (--nats-url)",
		"this gateway node's id in the cluster (default: host name and pid)")
	fs.String("data-dir", "", "data directory: JetStream files in DATA_DIR/gateway/nats, default certificates in DATA_DIR/certs (default $CROUPIER_DATA_DIR or ./croupier-data)")
	fs.String("cluster-addr", d.ClusterAddr, "gRPC listener of SyncTV's ClusterService and DataSyncService (mTLS); empty: not served")
	fs.String("cluster-advertise", "", "address other nodes reach --cluster-addr at (default: the listener's)")
	fs.String("cluster-tls-ca", "", "CA whose client certificates the cluster listener accepts (default DATA_DIR/certs/ca.crt)")
	fs.String("cluster-tls-cert", "", "certificate of the cluster listener (default DATA_DIR/certs/server.crt)")
	fs.String("cluster-tls-key", "", "key of --cluster-tls-cert (default DATA_DIR/certs/server.key)")
	fs.Int("cluster-replicas", 0, "replicas of the room log and buckets (default: number of routes, at most 3, else 1)")
}

// gatewayTier is this process's part in the gateway tier: the NATS bus,
// the room cluster node (the rooms system's Bus) and the gRPC listener of
// the cluster services. It owns the serving goroutine; stop ends it.
type gatewayTier struct {
	bus    *cluster.Node
	node   *roomcluster.Node
	gs     *grpc.Server
	served chan error
}

// joinGatewayTier connects to the bus and prepares the room cluster node;
// the rooms system starts it (roomsHostConfig.Bus), then serve.
func joinGatewayTier(ctx context.Context, log *slog.Logger, cfg gateway.Config) (*gatewayTier, error) {
	ccfg := cluster.Config{
		NodeID: cfg.NodeID, DataDir: filepath.Join(cfg.DataDir, "gateway"), Logger: log,
		Listen: cfg.NATSListen, ClusterName: cfg.NATSClusterName, ClusterListen: cfg.NATSClusterListen,
		Routes: cfg.NATSRoutes, MembersBucket: "croupier_gateways",
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
	replicas := cfg.ClusterReplicas
	if replicas == 0 {
		replicas = max(1, min(len(cfg.NATSRoutes), 3))
	}
	ccfg.Replicas = replicas
	bus, err := cluster.Start(ctx, ccfg)
	if err != nil {
		return nil, err
	}
	t := &gatewayTier{bus: bus}
	var ln net.Listener
	var tc credentials.TransportCredentials
	if cfg.ClusterAddr != "" {
		if tc, err = clusterTLS(cfg); err == nil {
			ln, err = net.Listen("tcp", cfg.ClusterAddr)
		}
		if err != nil {
			bus.Close()
			return nil, fmt.Errorf("cluster listener: %w", err)
		}
	}
	advertise := cfg.ClusterAdvertise
	if advertise == "" && ln != nil {
		advertise = ln.Addr().String()
	}
	// Bounded like the bus's own start: a misconfigured cluster (e.g. more
	// replicas than NATS servers) is an error, not a silent wait.
	nctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	t.node, err = roomcluster.New(nctx, roomcluster.Config{Conn: bus.Conn(), NodeID: bus.ID(), Address: advertise,
		Replicas: replicas, Logger: log.With("part", "roomcluster")})
	if err != nil {
		if ln != nil {
			_ = ln.Close()
		}
		bus.Close()
		return nil, err
	}
	if ln != nil {
		t.gs = grpc.NewServer(grpc.Creds(tc), grpc.MaxRecvMsgSize(1<<20))
		t.node.Register(t.gs)
		t.served = make(chan error, 1)
		go func() { t.served <- t.gs.Serve(ln) }()
	}
	log.Info("gateway tier joined", "node_id", bus.ID(), "nats_url", bus.ClientURL(), "nats_route_url", bus.RouteURL(),
		"cluster_addr", advertise, "replicas", replicas)
	return t, nil
}

// startTimeout bounds joining the gateway tier (the room log and buckets)
// and starting the node's delivery.
const startTimeout = 30 * time.Second

// clusterTLS is the mTLS of the cluster listener: callers are other
// nodes with a certificate from the same CA.
func clusterTLS(cfg gateway.Config) (credentials.TransportCredentials, error) {
	tc, err := tlsconf.ServerConfig(cfg.ClusterTLSCA, cfg.ClusterTLSCert, cfg.ClusterTLSKey, true)
	if err != nil {
		return nil, fmt.Errorf("%w (set --cluster-tls-ca/cert/key, or run `croupier certs init --dir %s`)", err, filepath.Join(cfg.DataDir, "certs"))
	}
	return credentials.NewTLS(tc), nil
}

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
	t.bus.Close()
}
