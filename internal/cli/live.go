package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	streamv1 "github.com/croupier/croupier/api/synctv/stream/v1"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/cluster"
	"github.com/croupier/croupier/internal/gateway"
	"github.com/croupier/croupier/internal/live"
	"github.com/croupier/croupier/internal/revocation"
	"github.com/croupier/croupier/internal/rooms"
	"github.com/croupier/croupier/internal/tlsconf"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// liveHostConfig says how a node's live streams run (docs/live.md).
type liveHostConfig struct {
	// RTMPAddr is the ingest listener ("" off); MaxStreams bounds it.
	RTMPAddr   string
	MaxStreams int
	// Audit receives refused publishes and stopped streams (rate limited,
	// see liveAuditor); nil: they are only logged.
	Audit audit.Recorder
	// RTMPSAddr is the RTMP-over-TLS listener ("" off) presenting
	// RTMPSTLSCert/Key.
	RTMPSAddr, RTMPSTLSCert, RTMPSTLSKey string
	// NodeID names the node in leases, relays and LiveEvents: unique
	// among the processes sharing the cluster, stable across restarts.
	NodeID string
	// JetStream holds the cluster's publisher leases; nil: a node alone
	// (in-memory leases, no relays).
	JetStream     jetstream.JetStream
	LeaseReplicas int
	// RelayAddr is the StreamRelayService listener ("" none: the node
	// neither serves nor pulls relays); RelayAdvertise is the address
	// other nodes dial, written in the lease (default: the bound address).
	RelayAddr, RelayAdvertise string
	// Relay mTLS, all from the Croupier CA: the listener presents a
	// server certificate (RelayTLSCert/Key, with the advertised host) and
	// the node dials other nodes with a client certificate
	// (RelayClientCert/Key); both sides require the other's.
	RelayTLSCA, RelayTLSCert, RelayTLSKey string
	RelayClientCert, RelayClientKey       string
	// NodePeerNames are the client certificates admitted on the relay
	// listener (certs.NodePeers).
	NodePeerNames []string
	// Revocations refuses revoked certificates on the relay listener (nil:
	// no list, e.g. no database).
	Revocations *revocation.List
	// RelayOptional: the TLS files are defaults; if one is missing the
	// node runs without relays (warned) instead of failing.
	RelayOptional bool
}

// liveHost runs a node's live system and its StreamRelayService
// listener. It owns the relay server's goroutine; Close ends it.
type liveHost struct {
	node  *live.Node
	relay *grpc.Server
	done  chan struct{}
}

func startLive(ctx context.Context, log *slog.Logger, cfg liveHostConfig, svc *rooms.Service, reg prometheus.Registerer) (_ *liveHost, err error) {
	lcfg := live.Config{NodeID: cfg.NodeID, RTMPAddr: cfg.RTMPAddr, RTMPSAddr: cfg.RTMPSAddr, MaxStreams: cfg.MaxStreams, Rooms: svc, Logger: log, Registerer: reg,
		Audit: liveAuditor(cfg.Audit, audit.NewRefusalLimiter(), log)}
	if cfg.RTMPSAddr != "" {
		if lcfg.RTMPSTLS, err = tlsconf.ServerConfig("", cfg.RTMPSTLSCert, cfg.RTMPSTLSKey, false); err != nil {
			return nil, fmt.Errorf("RTMPS listener TLS: %w", err)
		}
	}
	if cfg.JetStream != nil {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		leases, err := live.NewKVLeases(cctx, cfg.JetStream, live.KVLeasesConfig{Replicas: cfg.LeaseReplicas, Logger: log})
		cancel()
		if err != nil {
			return nil, err
		}
		lcfg.Leases = leases
	}
	h := &liveHost{}
	var ln net.Listener
	if cfg.RelayAddr != "" && cfg.RelayOptional {
		for _, f := range []string{cfg.RelayTLSCA, cfg.RelayTLSCert, cfg.RelayTLSKey, cfg.RelayClientCert, cfg.RelayClientKey} {
			if _, err := os.Stat(f); err != nil {
				log.Warn("live relays off: no relay certificate at its default path; viewers get only streams published on their own node (set --relay-tls-* and --relay-client-*, docs/live.md)", "missing", f)
				cfg.RelayAddr = ""
				break
			}
		}
	}
	if cfg.RelayAddr != "" {
		if cfg.JetStream == nil {
			return nil, errors.New("live relay: the relay listener needs the cluster bus (NATS), where nodes find each other's streams")
		}
		stls, err := tlsconf.ServerConfig(cfg.RelayTLSCA, cfg.RelayTLSCert, cfg.RelayTLSKey, true)
		if err != nil {
			return nil, fmt.Errorf("live relay listener TLS: %w", err)
		}
		stls.VerifyConnection = certs.NodePeers(cfg.NodePeerNames, cfg.Revocations.Revoked)
		ctls, err := tlsconf.ClientConfig(cfg.RelayTLSCA, cfg.RelayClientCert, cfg.RelayClientKey, "")
		if err != nil {
			return nil, fmt.Errorf("live relay client TLS: %w", err)
		}
		if ln, err = net.Listen("tcp", cfg.RelayAddr); err != nil {
			return nil, fmt.Errorf("live relay listener: %w", err)
		}
		defer func() {
			if err != nil {
				_ = ln.Close()
			}
		}()
		lcfg.RelayAddr = cfg.RelayAdvertise
		if lcfg.RelayAddr == "" {
			lcfg.RelayAddr = ln.Addr().String()
		}
		lcfg.RelayDial = func(addr string) (*grpc.ClientConn, error) {
			return grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(ctls)))
		}
		h.relay = grpc.NewServer(append(cfg.Revocations.ServerOptions(), grpc.Creds(credentials.NewTLS(stls)))...)
	}
	if h.node, err = live.New(lcfg); err != nil {
		return nil, err
	}
	if err := h.node.Start(); err != nil {
		h.node.Close()
		return nil, err
	}
	if h.relay != nil {
		streamv1.RegisterStreamRelayServiceServer(h.relay, h.node.RelayServer())
		h.done = make(chan struct{})
		go func() {
			defer close(h.done)
			_ = h.relay.Serve(ln)
		}()
		log.Info("live relay listening", "addr", ln.Addr().String(), "advertised", lcfg.RelayAddr, "node", h.node.NodeID())
	}
	return h, nil
}

// Close ends the node's streams (releasing their leases) and stops the
// relay listener.
func (h *liveHost) Close() {
	h.node.Close()
	if h.relay != nil {
		h.relay.Stop()
		<-h.done
	}
}

// gatewayLiveFlags are the flags of live relays between gateway nodes
// (docs/live.md); the node id is the gateway tier's --node-id.
func gatewayLiveFlags(fs *pflag.FlagSet, d gateway.Config) {
	fs.String("rtmps-addr", "", "RTMP-over-TLS listener of live streams (publish and play, rtmps://); empty: off")
	fs.String("rtmps-tls-cert", "", "certificate of --rtmps-addr")
	fs.String("rtmps-tls-key", "", "key of --rtmps-tls-cert")
	fs.String("relay-addr", d.RelayAddr, "StreamRelayService listener of live relays between gateway nodes (mTLS; with --nats embedded/external); empty: no relays")
	fs.String("relay-advertise", "", "address other nodes dial for this node's streams, written in the stream's lease (default: the listener's)")
	fs.String("relay-tls-ca", "", "CA of the relay certificates (default DATA_DIR/certs/ca.crt)")
	fs.String("relay-tls-cert", "", "server certificate of the relay listener, naming the advertised host (default DATA_DIR/certs/server.crt)")
	fs.String("relay-tls-key", "", "key of --relay-tls-cert (default DATA_DIR/certs/server.key)")
	fs.String("relay-client-cert", "", "client certificate this node pulls relays with (default DATA_DIR/certs/client.crt)")
	fs.String("relay-client-key", "", "key of --relay-client-cert (default DATA_DIR/certs/client.key)")
}

// gatewayLiveConfig is the live configuration of `croupier gateway`; bus
// is the gateway tier's (nil with nats off: a node alone).
func gatewayLiveConfig(cfg gateway.Config, bus *cluster.Node, rv *revocation.List) liveHostConfig {
	l := liveHostConfig{RTMPAddr: cfg.RTMPAddr, MaxStreams: cfg.MaxStreams,
		RTMPSAddr: cfg.RTMPSAddr, RTMPSTLSCert: cfg.RTMPSTLSCert, RTMPSTLSKey: cfg.RTMPSTLSKey}
	if bus == nil {
		return l
	}
	l.NodeID, l.JetStream, l.LeaseReplicas = bus.ID(), bus.JetStream(), cfg.ClusterReplicas
	l.RelayAddr, l.RelayAdvertise = cfg.RelayAddr, cfg.RelayAdvertise
	l.RelayTLSCA, l.RelayTLSCert, l.RelayTLSKey = cfg.RelayTLSCA, cfg.RelayTLSCert, cfg.RelayTLSKey
	l.RelayClientCert, l.RelayClientKey = cfg.RelayClientCert, cfg.RelayClientKey
	l.NodePeerNames, l.Revocations = cfg.NodePeerNames, rv
	l.RelayOptional = cfg.RelayTLSDefaulted()
	return l
}
