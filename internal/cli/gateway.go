package cli

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/lesismal/nbio/logging"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/croupier/croupier/internal/agent"
	"github.com/croupier/croupier/internal/cluster"
	"github.com/croupier/croupier/internal/config"
	"github.com/croupier/croupier/internal/gateway"
	"github.com/croupier/croupier/internal/gatewayops"
	"github.com/croupier/croupier/internal/revocation"
	"github.com/croupier/croupier/internal/roomcluster"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/sdk"
)

func gatewayFlags(fs *pflag.FlagSet, d gateway.Config) {
	fs.Int("server-id", d.ServerID, "gateway server id 0–255 (first byte of every uniqId; businesses register with it)")
	fs.String("client-addr", d.ClientAddr, "WebSocket listen address of game clients")
	fs.String("client-path", d.ClientPath, "WebSocket path")
	fs.String("client-tls-cert", "", "certificate of the WebSocket listener (serves wss:// with --client-tls-key)")
	fs.String("client-tls-key", "", "key of --client-tls-cert")
	fs.String("business-addr", d.BusinessAddr, "TCP listen address of business processes (off loopback it needs --business-tls-*)")
	fs.String("business-tls-ca", "", "CA that signs business certificates (turns on mTLS for the business listener)")
	fs.String("business-tls-cert", "", "certificate the business listener presents")
	fs.String("business-tls-key", "", "key of --business-tls-cert")
	fs.Duration("read-deadline", d.ReadDeadline, "close a client or business silent for this long")
	fs.Duration("handshake-timeout", d.HandshakeTimeout, "close a client connection that has not sent its upgrade request within this long")
	fs.Int("max-online", d.MaxOnline, "refuse WebSocket upgrades beyond this many connections")
	fs.Int("receive-pack-limit", d.ReceivePackLimit, "largest client message or business frame, bytes")
	fs.Int("send-buffer-limit", d.SendBufferLimit, "bytes queued for one client before it is disconnected as too slow")
	fs.String("send-message-type", d.SendMessageType, "WebSocket frame type of data sent to clients: text or binary")
	fs.Int("conn-open-worker-id", d.ConnOpenWorkerID, "workerId that receives ConnOpen (0: not sent)")
	fs.Int("conn-close-worker-id", d.ConnCloseWorkerID, "workerId that receives ConnClose (0: not sent)")
	fs.StringSlice("allowed-origins", nil, "Origin values accepted on upgrade (default: same host or none; * for any)")
	fs.Float64("connect-rate-per-ip", d.ConnectRatePerIP, "WebSocket upgrades per second per client IP (0: off)")
	fs.Int("connect-burst-per-ip", d.ConnectBurstPerIP, "burst of --connect-rate-per-ip")
	fs.Int("business-queue", d.BusinessQueue, "frames queued for one business before client messages to it are dropped")
	fs.String("rooms-addr", d.RoomsAddr, "HTTP listen address of the rooms system (ClientService, docs/rooms.md); empty disables it")
	fs.String("rooms-tls-cert", "", "certificate of the rooms listener (HTTPS with --rooms-tls-key)")
	fs.String("rooms-tls-key", "", "key of --rooms-tls-cert")
	fs.String("rtmp-addr", d.RTMPAddr, "RTMP ingest address of live streams (docs/live.md); empty disables it")
	fs.Int("max-streams", d.MaxStreams, "live streams published on this node at most")
	fs.Float64("signups-per-minute", d.SignupsPerMinute, "player accounts and guests one client address may create per minute in the rooms system")
	fs.Int("signup-burst", d.SignupBurst, "burst of --signups-per-minute")
	fs.StringSlice("node-peer-names", d.NodePeerNames, "client certificate names that may call this node's cluster services and live relays (other nodes)")
	fs.String("store-driver", d.StoreDriver, "database of the rooms system: sqlite or postgres")
	fs.String("store-dsn", "", "PostgreSQL URL, or SQLite file (default DATA_DIR/croupier.db)")
}

func newGatewayCmd(g *globals) *cobra.Command {
	var configFile, agentConfig string
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run a netsvr-compatible player gateway (WebSocket :6060, business TCP :6061) and the rooms system (HTTP :8090)",
		Long: `Run the player gateway: game clients hold WebSockets (ws://127.0.0.1:6060/netsvr),
business processes written for netsvr v3.0.0 (protocol v2.0.2) connect over TCP
(127.0.0.1:6061) and address clients by uniqId, topic or broadcast. With
--agent-config the node also runs an agent that registers the built-in
functions gateway.stats, gateway.online, gateway.broadcast, gateway.publish
and gateway.kick with the control server. See docs/gateway.md.
The same process serves the rooms system (SyncTV's ClientService over gRPC,
gRPC-Web and Connect, http://127.0.0.1:8090); see docs/rooms.md. Its rooms
run on the gateway tier (docs/cluster.md): by default over an embedded NATS
on loopback (JetStream in DATA_DIR/gateway/nats), a one-node tier that other
gateways join with --nats external or routes; --nats off keeps the rooms on
this node alone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := gateway.DefaultConfig()
			if err := config.Load(&cfg, configFile, cmd.Flags()); err != nil {
				return err
			}
			logging.SetLevel(logging.LevelError) // nbio's own logger: errors only
			log := g.logger()
			gw, err := gateway.New(cfg, log)
			if err != nil {
				return err
			}
			var bus *roomcluster.Node
			var natsBus *cluster.Node
			if err := cfg.Validate(); err != nil { // fills the gateway tier's defaults
				return err
			}
			// The rooms' database also holds the certificate revocation list
			// (the server's, where they share the database): the node and
			// business listeners refuse what it names.
			var st *store.Store
			var rv *revocation.List
			if cfg.RoomsAddr != "" {
				if st, err = openRoomsStore(cmd.Context(), log.With("part", "rooms"), cfg.StoreDriver, cfg.StoreDSN, cfg.DataDir); err != nil {
					return err
				}
				defer st.Close() // last: after every part that uses it stopped
				rv = revocation.New(st.Revocations(), log.With("part", "revocations"))
				gw.CheckRevoked(rv.Revoked)
				stop, err := rv.Follow(cmd.Context(), func() { gw.CloseRevoked() })
				if err != nil {
					return err
				}
				defer stop()
			}
			if cfg.NATS != "off" {
				tier, err := joinGatewayTier(cmd.Context(), log.With("part", "gateway-tier"), cfg, rv)
				if err != nil {
					return err
				}
				defer tier.stop() // after the rooms stopped (defers run last first)
				bus, natsBus = tier.node, tier.bus
			}
			if cfg.RoomsAddr != "" {
				rh, err := startRooms(cmd.Context(), g.logger().With("part", "rooms"), roomsHostConfig{Addr: cfg.RoomsAddr,
					TLSCert: cfg.RoomsTLSCert, TLSKey: cfg.RoomsTLSKey, Store: st,
					Live: gatewayLiveConfig(cfg, natsBus, rv), Bus: bus, Tier: natsBus, LoginThrottle: cfg.Login.Throttle(),
					SignupsPerMinute: cfg.SignupsPerMinute, SignupBurst: cfg.SignupBurst})
				if err != nil {
					return err
				}
				defer func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					_ = rh.Stop(ctx)
				}()
			}
			if agentConfig == "" {
				return gw.Run(cmd.Context())
			}
			acfg := config.DefaultAgent()
			acfg.SDKAddr, acfg.GSEAddr = "127.0.0.1:0", "" // only the gateway's functions connect; no fleet plane
			if err := config.Load(&acfg, agentConfig, nil); err != nil {
				return err
			}
			ag, err := agent.New(acfg, log.With("part", "agent"))
			if err != nil {
				return err
			}
			checkKeyFiles(log, acfg.Resolve, &acfg.TLSKey, &acfg.Insecure)
			if err := gw.Start(); err != nil {
				return err
			}
			defer gw.Close()
			ctx := cmd.Context()
			if err := ag.Start(ctx); err != nil {
				return err
			}
			defer func() {
				sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = ag.Shutdown(sctx)
			}()
			return serveGatewayFunctions(ctx, log, gw, ag.SDKAddr())
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "YAML config file (keys as in docs/gateway.md)")
	cmd.Flags().StringVar(&agentConfig, "agent-config", "", "YAML config of the node's agent (keys of `croupier agent`: server, agent_id, game_id, env, tls_*): registers the gateway.* functions")
	gatewayFlags(cmd.Flags(), gateway.DefaultConfig())
	gatewayClusterFlags(cmd.Flags(), gateway.DefaultConfig())
	gatewayLiveFlags(cmd.Flags(), gateway.DefaultConfig())
	return cmd
}

// serveGatewayFunctions registers the gateway's built-in functions with the
// agent at agentAddr (as instance "gateway-SERVER_ID") and serves them until
// ctx ends.
func serveGatewayFunctions(ctx context.Context, log *slog.Logger, gw *gateway.Gateway, agentAddr string) error {
	c := sdk.New(sdk.Options{AgentAddr: agentAddr, InstanceID: fmt.Sprintf("gateway-%d", gw.ServerID()), Logger: log.With("part", "gateway-functions")})
	if err := gatewayops.Register(c, gw); err != nil {
		return err
	}
	return c.Serve(ctx)
}
