package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/examples/demogame"
	"github.com/croupier/croupier/internal/agent"
	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/cluster"
	"github.com/croupier/croupier/internal/config"
	"github.com/croupier/croupier/internal/gateway"
	"github.com/croupier/croupier/internal/revocation"
	"github.com/croupier/croupier/internal/secfile"
	"github.com/croupier/croupier/internal/server"
	"github.com/croupier/croupier/internal/tlsconf"
	"github.com/croupier/croupier/sdk"
	"github.com/lesismal/nbio/logging"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/credentials"
)

func newDevCmd(g *globals) *cobra.Command {
	var (
		dataDir, grpcAddr, httpAddr, tunnelAddr, sdkAddr string
		adminPassword, gseAddr                           string
		gatewayAddr, gatewayBusinessAddr                 string
		roomsAddr, rtmpAddr, clusterAddr                 string
		players                                          int
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run server, agent and a demo game server in one process (embedded SQLite)",
		Long: `dev runs everything a newcomer needs in one process: the server on an
embedded SQLite database in --data-dir, an agent for game "demo" env "dev",
and a demo game server with players p1..p100 and the functions player.get,
player.ban and player.grant_item, a demo GSE fleet, and the player gateway
(ws://127.0.0.1:6060/netsvr) with a demo chat on workerId 1, and the rooms
system with a demo room, run as a one-node gateway tier on the server's
embedded NATS (the room log, SyncTV's ClusterService and DataSyncService on
--cluster-addr), as in production. It creates a development CA on first start,
speaks mTLS between the parts, and writes a client profile to
DATA_DIR/client.yaml for the CLI.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if adminPassword == "" {
				adminPassword = os.Getenv("CROUPIER_ADMIN_PASSWORD")
			}
			return runDev(cmd.Context(), g, devOptions{
				dataDir: dataDir, grpcAddr: grpcAddr, httpAddr: httpAddr, tunnelAddr: tunnelAddr, sdkAddr: sdkAddr, players: players,
				adminPassword: adminPassword, gseAddr: gseAddr,
				gatewayAddr: gatewayAddr, gatewayBusinessAddr: gatewayBusinessAddr, roomsAddr: roomsAddr, rtmpAddr: rtmpAddr,
				clusterAddr: clusterAddr,
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&dataDir, "data-dir", config.DefaultDataDir(), "data directory (SQLite database, certificates, client.yaml)")
	fs.StringVar(&grpcAddr, "grpc-addr", "127.0.0.1:8443", "server gRPC address")
	fs.StringVar(&httpAddr, "http-addr", "127.0.0.1:8080", "server HTTP address")
	fs.StringVar(&tunnelAddr, "tunnel-http-addr", "127.0.0.1:8444", "long-poll tunnel address; empty disables")
	fs.StringVar(&sdkAddr, "sdk-addr", "127.0.0.1:19090", "agent SDK address for game servers")
	fs.IntVar(&players, "players", 100, "demo players p1..pN")
	fs.StringVar(&gseAddr, "gse-addr", "127.0.0.1:5758", "the agent's GSE-compatible endpoint for game processes; empty disables the demo fleet")
	fs.StringVar(&gatewayAddr, "gateway-addr", "127.0.0.1:6060", "player gateway WebSocket address (path /netsvr) with the demo chat; empty disables the gateway")
	fs.StringVar(&gatewayBusinessAddr, "gateway-business-addr", "127.0.0.1:6061", "player gateway business (netsvr TCP) address")
	fs.StringVar(&rtmpAddr, "rtmp-addr", "127.0.0.1:1935", "RTMP ingest of live streams into the demo room (docs/live.md); empty disables it")
	fs.StringVar(&roomsAddr, "rooms-addr", "127.0.0.1:8090", "rooms system HTTP address (ClientService, demo room); empty disables it")
	fs.StringVar(&clusterAddr, "cluster-addr", "127.0.0.1:8091", "gRPC address of the rooms' ClusterService and DataSyncService (mTLS, dev CA); empty: not served")
	fs.StringVar(&adminPassword, "admin-password", "", "password of the admin user (default $CROUPIER_ADMIN_PASSWORD, else generated and printed once)")
	return cmd
}

type devOptions struct {
	dataDir, grpcAddr, httpAddr, tunnelAddr, sdkAddr string
	adminPassword, gseAddr                           string
	gatewayAddr, gatewayBusinessAddr                 string
	roomsAddr, rtmpAddr, clusterAddr                 string
	players                                          int
}

func runDev(ctx context.Context, g *globals, o devOptions) error {
	log := g.logger()
	dataDir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	bundle, err := certs.EnsureDev(filepath.Join(dataDir, "certs"))
	if err != nil {
		return err
	}
	secfile.Check(log, bundle.CAKey, bundle.ServerKey, bundle.AgentKey, bundle.ClientKey)

	scfg := config.DefaultServer()
	scfg.DataDir, scfg.GRPCAddr, scfg.HTTPAddr, scfg.TunnelHTTPAddr = dataDir, o.grpcAddr, o.httpAddr, o.tunnelAddr
	scfg.Scopes = []string{certs.DevGame + "/" + certs.DevEnv}
	scfg.HeartbeatInterval = 2 * time.Second
	// The admin is created on first start; later starts keep its password.
	generated := false
	scfg.AdminPassword = o.adminPassword
	if scfg.AdminPassword == "" && !fileExists(filepath.Join(dataDir, "croupier.db")) {
		scfg.AdminPassword, generated = randomPassword(), true
	}
	srv, err := server.New(scfg, log.With("part", "server"))
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	shutdown := []func(context.Context) error{srv.Shutdown}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := len(shutdown) - 1; i >= 0; i-- {
			_ = shutdown[i](sctx)
		}
	}()

	// The demo game is copied into the agent's build directory
	// (DATA_DIR/builds), the only place the agent launches from.
	demoBin, demoErr := "", errors.New(`disabled (--gse-addr "")`)
	if o.gseAddr != "" {
		demoBin, demoErr = installDemoGame(dataDir)
	}
	acfg := config.DefaultAgent()
	acfg.ID, acfg.Game, acfg.Env = certs.DevAgentName, certs.DevGame, certs.DevEnv
	acfg.DataDir, acfg.Server, acfg.SDKAddr = dataDir, srv.GRPCAddr(), o.sdkAddr
	acfg.TLSServerName = "localhost"
	acfg.GSEAddr, acfg.GSEIP = o.gseAddr, "127.0.0.1"
	ag, err := agent.New(acfg, log.With("part", "agent"))
	if err != nil {
		return err
	}
	if err := ag.Start(ctx); err != nil {
		return err
	}
	shutdown = append(shutdown, ag.Shutdown, func(ctx context.Context) error {
		ag.StopGameProcesses(ctx) // the demo fleet's processes end with dev
		return nil
	})
	fleetNote := startDemoFleet(ctx, srv, demoBin, demoErr)

	client := sdk.New(sdk.Options{AgentAddr: ag.SDKAddr(), InstanceID: "demo-1", Logger: log.With("part", "gameserver")})
	game := demogame.New(client.InstanceID(), o.players)
	if err := game.Register(client); err != nil {
		return err
	}
	gsDone := make(chan error, 1)
	go func() { gsDone <- client.Serve(ctx) }()

	gatewayNote, stopGateway, err := startDemoGateway(ctx, log, o.gatewayAddr, o.gatewayBusinessAddr, ag.SDKAddr())
	if err != nil {
		return err
	}
	shutdown = append(shutdown, stopGateway)

	tier, tierNote, err := startDevTier(ctx, log.With("part", "gateway-tier"), o, srv.Bus(), bundle, srv.Revocations())
	if err != nil {
		return err
	}
	if tier != nil {
		shutdown = append(shutdown, func(context.Context) error { tier.stop(); return nil }) // after the rooms
	}
	roomsNote, stopRooms, err := startDemoRooms(ctx, log.With("part", "rooms"), o.roomsAddr, o.rtmpAddr, filepath.Join(dataDir, "croupier.db"), srv.Bus(), tier)
	if err != nil {
		return err
	}
	shutdown = append(shutdown, stopRooms)

	toks, err := srv.Auth().IssueTokens(ctx, scfg.AdminUser)
	if err != nil {
		return fmt.Errorf("issue admin tokens: %w", err)
	}
	profilePath := filepath.Join(dataDir, "client.yaml")
	if err := writeProfile(profilePath, &Profile{
		Address: srv.GRPCAddr(), HTTPAddress: srv.HTTPAddr(), ServerName: "localhost",
		CA: bundle.CACert, Cert: bundle.ClientCert, Key: bundle.ClientKey,
		Token: toks.AccessToken, RefreshToken: toks.RefreshToken,
	}); err != nil {
		return fmt.Errorf("write client profile: %w", err)
	}
	if err := waitReady(ctx, srv, 15*time.Second); err != nil {
		return err
	}
	if generated {
		fmt.Fprintf(g.stdout, "\nCreated user %q with password %s (shown once; the profile below already holds its token).\n", scfg.AdminUser, scfg.AdminPassword)
	}
	fmt.Fprintf(g.stdout, `
Croupier dev is running.
  console       https://%s/  (web console; sign in as admin; the browser warns about the dev CA: trust %s)
  server gRPC   %s (mTLS)
  server HTTP   https://%s  (/api/v1 /healthz /readyz /metrics)
  agent SDK     %s
  game          demo/dev, instance demo-1, players p1..p%d
  fleet         %s
  gateway       %s
  rooms         %s
  gateway tier  %s
  data          %s
  profile       %s  (signed in as admin)

Try it (in another terminal):
  export CROUPIER_PROFILE=%s
  croupier registry list
  croupier invoke player.get --game demo --env dev --payload '{"player_id":"p1"}'
  croupier invoke player.grant_item --game demo --env dev --payload '{"player_id":"p1","item_id":"sword","count":1}'
  croupier invoke gateway.stats --game demo --env dev

Press Ctrl-C to stop.
`, srv.HTTPAddr(), bundle.CACert, srv.GRPCAddr(), srv.HTTPAddr(), ag.SDKAddr(), o.players, fleetNote, gatewayNote, roomsNote, tierNote, dataDir, profilePath, profilePath)

	select {
	case <-ctx.Done():
		return nil
	case err := <-gsDone:
		if err != nil {
			return fmt.Errorf("demo game server: %w", err)
		}
		return nil
	}
}

// startDevTier makes dev's rooms a one-node gateway tier on the server's
// embedded NATS (bus), serving the cluster services on o.clusterAddr with
// mTLS from the dev CA, refusing the certificates on rv, the server's
// revocation list. It returns nil (and says why) without rooms or a bus.
func startDevTier(ctx context.Context, log *slog.Logger, o devOptions, bus *cluster.Node, bundle *certs.Bundle, rv *revocation.List) (*gatewayTier, string, error) {
	if o.roomsAddr == "" {
		return nil, "off (no rooms)", nil
	}
	if bus == nil {
		return nil, "off (the server runs no NATS)", nil
	}
	c := tierConfig{Addr: o.clusterAddr, Replicas: 1, Revocations: rv}
	if c.Addr != "" {
		tc, err := tlsconf.ServerConfig(bundle.CACert, bundle.ServerCert, bundle.ServerKey, true)
		if err != nil {
			return nil, "", fmt.Errorf("cluster listener: %w", err)
		}
		tc.VerifyConnection = certs.NodePeers([]string{certs.DevClientName}, rv.Revoked) // dev's client certificate
		c.TLS = credentials.NewTLS(tc)
	}
	t, err := startGatewayTier(ctx, log, bus, c)
	if err != nil {
		return nil, "", fmt.Errorf("gateway tier: %w", err)
	}
	note := fmt.Sprintf("node %s, room log on the in-process NATS (no network listener)", bus.ID())
	if u := bus.ClientURL(); u != "" {
		note = fmt.Sprintf("node %s, room log on NATS %s (clients present the token of --nats-token-file)", bus.ID(), u)
	}
	if t.addr != "" {
		note += fmt.Sprintf("\n  cluster gRPC  %s  (ClusterService, DataSyncService; mTLS: %s)", t.addr, bundle.ClientCert)
	}
	return t, note, nil
}

// startDemoGateway runs the player gateway with the demo chat as its
// business process (workerId 1, which also receives ConnOpen), and serves
// the gateway's built-in functions (gateway.stats, ...) through the agent
// at agentAddr. It returns the line dev prints and the stop function.
func startDemoGateway(ctx context.Context, log *slog.Logger, addr, businessAddr, agentAddr string) (string, func(context.Context) error, error) {
	if addr == "" {
		return `disabled (--gateway-addr "")`, func(context.Context) error { return nil }, nil
	}
	logging.SetLevel(logging.LevelError) // nbio's own logger: errors only
	cfg := gateway.DefaultConfig()
	cfg.ClientAddr, cfg.BusinessAddr, cfg.ConnOpenWorkerID = addr, businessAddr, demogame.ChatWorkerID
	gw, err := gateway.New(cfg, log.With("part", "gateway"))
	if err != nil {
		return "", nil, err
	}
	if err := gw.Start(); err != nil {
		return "", nil, fmt.Errorf("player gateway: %w", err)
	}
	chat, err := demogame.NewChat(gw.BusinessAddr(), uint32(cfg.ServerID), log.With("part", "chat"))
	if err != nil {
		gw.Close()
		return "", nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		if err := chat.Run(cctx); err != nil {
			log.Error("demo chat stopped", "err", err)
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		if err := serveGatewayFunctions(cctx, log, gw, agentAddr); err != nil {
			log.Error("gateway functions stopped", "err", err)
		}
	}()
	stop := func(context.Context) error {
		cancel()
		<-done
		<-done
		gw.Close()
		return nil
	}
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	if err := chat.WaitReady(rctx); err != nil {
		_ = stop(ctx)
		return "", nil, fmt.Errorf("demo chat: %w", err)
	}
	note := fmt.Sprintf("ws://%s%s (business %s); demo chat: send 001{\"say\":\"hi\"}", gw.ClientAddr(), cfg.ClientPath, gw.BusinessAddr())
	return note, stop, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func randomPassword() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// installDemoGame copies the gsegame next to croupier (make build puts
// both in bin/) to DATA_DIR/builds/demo/gsegame, under the agent's default
// build directory, and returns the copy's path. The copy replaces the file
// by rename, so processes still running the previous one are unaffected.
func installDemoGame(dataDir string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	in, err := os.Open(filepath.Join(filepath.Dir(self), "gsegame"))
	if err != nil {
		return "", errors.New("no gsegame binary next to croupier (make build builds it)")
	}
	defer in.Close()
	dst := filepath.Join(dataDir, "builds", "demo", "gsegame")
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".gsegame-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o750); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return dst, os.Rename(tmp.Name(), dst)
}

// startDemoFleet creates (once) the demo fleet: two GSE game processes of
// examples/gsegame at bin, supervised by the embedded agent. A demo fleet
// made by an earlier version (launching gsegame from elsewhere) is pointed
// at bin.
func startDemoFleet(ctx context.Context, srv *server.Server, bin string, installErr error) string {
	if installErr != nil {
		return "not started: " + installErr.Error()
	}
	const note = " (2 gsegame processes)"
	fleets := srv.Fleet()
	list, err := fleets.ListFleets(ctx, &croupierv1.ListFleetsRequest{GameId: certs.DevGame, Env: certs.DevEnv})
	if err != nil {
		return "not started: " + err.Error()
	}
	for _, f := range list.GetFleets() {
		if f.GetName() != "demo-fleet" {
			continue
		}
		sps := f.GetRuntimeConfiguration().GetServerProcesses()
		if len(sps) == 1 && sps[0].GetLaunchPath() != bin {
			sps[0].LaunchPath = bin
			if _, err := fleets.UpdateFleet(ctx, &croupierv1.UpdateFleetRequest{Fleet: f}); err != nil {
				return "not started: " + err.Error()
			}
		}
		return f.GetFleetId() + note
	}
	resp, err := fleets.CreateFleet(ctx, &croupierv1.CreateFleetRequest{Fleet: &croupierv1.Fleet{
		GameId: certs.DevGame, Env: certs.DevEnv, Name: "demo-fleet", Description: "examples/gsegame, a GSE game server",
		ProtectionPolicy: "NoProtection",
		RuntimeConfiguration: &croupierv1.RuntimeConfiguration{
			ServerProcesses: []*croupierv1.ServerProcess{{LaunchPath: bin, ConcurrentExecutions: 2}},
			GameServerSessionActivationTimeoutSeconds: 60,
		},
	}})
	if err != nil {
		return "not started: " + err.Error()
	}
	return resp.GetFleet().GetFleetId() + note
}

// waitReady waits until the demo functions are registered, so the printed
// commands work as soon as they are shown.
func waitReady(ctx context.Context, srv *server.Server, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if len(srv.Registry().Instances(certs.DevGame, certs.DevEnv, demogame.GetDescriptor.GetId())) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("demo game server did not register within " + timeout.String())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
