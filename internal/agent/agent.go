// Package agent implements `croupier agent`: it dials the server over the
// tunnel (the server calls it back on that connection), registers the
// functions of the game-server instances connected to it, heartbeats, and
// forwards invocations to those instances. Game servers reach it on
// loopback through the SDK.
package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/buildinfo"
	"github.com/croupier/croupier/internal/config"
	"github.com/croupier/croupier/internal/fieldlimit"
	"github.com/croupier/croupier/internal/gse"
	"github.com/croupier/croupier/internal/localpeer"
	"github.com/croupier/croupier/internal/schema"
	"github.com/croupier/croupier/internal/telemetry"
	"github.com/croupier/croupier/internal/tlsconf"
	"github.com/croupier/croupier/internal/tunnel"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
)

// Agent is a running croupier agent.
type Agent struct {
	cfg config.Agent
	log *slog.Logger

	instances *instances
	// validated compiles each distinct descriptor once, however many
	// instances register it.
	validated *schema.Validated
	sdkTunnel *tunnel.Server // game-server instances connect here
	sdkServer *grpc.Server
	sdkLis    net.Listener
	sdkMux    *tunnel.ConnMux

	conn    *grpc.ClientConn
	control controlClient
	client  *tunnel.Client
	gse     *gse.Agent // the fleet plane's game-process endpoint; nil when disabled
	tracing *telemetry.Tracing

	mu         sync.RWMutex
	enabled    map[string]bool // function -> enabled, from GetAssignments
	assignVer  int64
	registered bool
	fullSync   bool // the server lacks UpdateInstances

	// beatAt is when the server last counted a tunnel ping as this agent's
	// heartbeat (unix nanoseconds); staleAssign wakes the session when such
	// a pong carried another assignment version.
	beatAt      atomic.Int64
	staleAssign chan struct{}
	// nodeMisses counts registrations in a row refused because the server
	// node does not hold the tunnel (followControlNode).
	nodeMisses atomic.Int32

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// New validates cfg and returns an agent that Start brings up.
func New(cfg config.Agent, log *slog.Logger, opts ...Option) (*Agent, error) {
	if err := cfg.Resolve(); err != nil {
		return nil, err
	}
	if err := tlsconf.CheckInsecureAllowed(cfg.SDKAddr, true); err != nil {
		return nil, fmt.Errorf("sdk_addr: game servers connect in plaintext, so it must be a loopback address: %w", err)
	}
	if cfg.Insecure {
		for _, addr := range strings.Split(cfg.Server, ",") {
			if err := tlsconf.CheckInsecureAllowed(strings.TrimSpace(addr), true); err != nil {
				return nil, err
			}
		}
	}
	if log == nil {
		log = slog.Default()
	}
	a := &Agent{cfg: cfg, log: log.With("agent", cfg.ID), instances: newInstances(), enabled: map[string]bool{},
		validated: schema.NewValidated(0), staleAssign: make(chan struct{}, 1)}
	for _, o := range opts {
		o(a)
	}
	return a, nil
}

// Option adjusts an Agent beyond its config.
type Option func(*Agent)

// WithTracerProvider traces tunnel calls with tp instead of the exporter
// the config names (tests use an in-memory exporter).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(a *Agent) { a.tracing = &telemetry.Tracing{Provider: tp} }
}

// Start listens for game servers and starts dialing the server. It returns
// once the SDK endpoint accepts connections; the tunnel connects (and
// reconnects) in the background.
func (a *Agent) Start(ctx context.Context) (err error) {
	ctx, a.stop = context.WithCancel(ctx)
	defer func() {
		if err != nil {
			a.stop()
			a.closeAll()
			_ = a.tracing.Shutdown(context.WithoutCancel(ctx))
		}
	}()
	if a.tracing == nil {
		if a.tracing, err = telemetry.NewTracing(ctx, telemetry.TracingConfig{Endpoint: a.cfg.OTLPEndpoint, Insecure: a.cfg.OTLPInsecure,
			SampleRatio: a.cfg.TraceSampleRatio, ServiceName: "croupier-agent"}); err != nil {
			return err
		}
	}
	a.sdkTunnel = tunnel.NewServer(tunnel.ServerOptions{
		Logger:         a.log.With("component", "sdk-tunnel"),
		TracerProvider: a.tracing.Provider,
		OnDisconnect: func(name string, err error) {
			if a.instances.remove(name) {
				a.log.Info("game-server instance disconnected", "instance", name, "reason", err)
			}
		},
	})
	a.sdkServer = grpc.NewServer(append(tunnel.GRPCServerOptions(),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}))...)
	agentv1.RegisterLocalAgentServiceServer(a.sdkServer, localService{a: a})
	a.sdkTunnel.RegisterGRPC(a.sdkServer)
	if err := localpeer.Available(); err != nil {
		return fmt.Errorf("sdk_addr %s: the agent admits only its own user's game servers and reads who connects from /proc/net/tcp, which it cannot: %w", a.cfg.SDKAddr, err)
	}
	if a.sdkLis, err = net.Listen("tcp", a.cfg.SDKAddr); err != nil {
		return fmt.Errorf("listen sdk_addr %s: %w", a.cfg.SDKAddr, err)
	}
	// The SDK port carries both gRPC (LocalAgentService, and the stream
	// transport of older SDKs) and the tunnel's conn transport, told apart
	// by a connection's first bytes.
	//
	// The SDK port trusts whoever connects: a game server registers instances,
	// receives the invocations of its functions (their payloads) and answers
	// them. Loopback keeps other hosts out, not other users of this host, so
	// the port admits only processes of the agent's own user, of root, and of
	// the users sdk_allow_uids names (game servers in another container of the
	// same network namespace, under another uid). The uid comes from the
	// kernel (localpeer: sock_diag, else /proc/net/tcp); where /proc/net/tcp
	// cannot be read the agent does not start (Start).
	a.sdkMux = tunnel.NewConnMux(localpeer.NewListener(a.sdkLis, "SDK", a.cfg.SDKAllowUIDs, a.log), a.sdkTunnel)

	handlers := tunnel.NewHandlerRegistry()
	for _, err := range []error{
		tunnel.RegisterRaw(handlers, invokeRequestName, a.relayInvoke),
		tunnel.Register(handlers, a.handleStartJob),
		tunnel.Register(handlers, a.handleCancelJob),
	} {
		if err != nil {
			return err
		}
	}
	copts := tunnel.ClientOptions{
		Name: a.cfg.ID, Handlers: handlers, Logger: a.log.With("component", "tunnel"),
		MaxBackoff:     a.cfg.ReconnectMax,
		OnConnected:    a.session,
		OnHeartbeat:    a.tunnelBeat,
		TracerProvider: a.tracing.Provider,
	}
	if err = a.dial(copts); err != nil {
		return err
	}
	if err = a.startGSE(handlers); err != nil {
		return err
	}

	a.wg.Add(3)
	go func() {
		defer a.wg.Done()
		if err := a.sdkMux.Serve(ctx); err != nil {
			a.log.Error("sdk listener stopped", "err", err)
		}
	}()
	go func() {
		defer a.wg.Done()
		if err := a.sdkServer.Serve(a.sdkMux.Other()); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			a.log.Error("sdk listener stopped", "err", err)
		}
	}()
	go func() {
		defer a.wg.Done()
		if err := a.client.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			a.log.Error("tunnel stopped", "err", err)
		}
	}()
	a.log.Info("croupier agent started", "sdk", a.SDKAddr(), "gse", a.GSEAddr(), "server", a.cfg.Server, "transport", a.cfg.Transport,
		"game", a.cfg.Game, "env", a.cfg.Env)
	return nil
}

// startGSE brings up the GSE-compatible endpoint for game processes and
// registers the fleet commands the server sends over the tunnel.
func (a *Agent) startGSE(handlers *tunnel.HandlerRegistry) error {
	if a.cfg.GSEAddr == "" {
		return nil
	}
	var upstream gse.Upstream
	if a.conn != nil {
		upstream = gse.ClientUpstream(croupierv1.NewFleetAgentServiceClient(a.conn))
	} else if rc, ok := a.control.(restControl); ok {
		upstream = restUpstream{r: rc} // long-poll: FleetAgentService as REST
	}
	g, err := gse.New(gse.Config{
		AgentID: a.cfg.ID, GameID: a.cfg.Game, Env: a.cfg.Env, Labels: a.cfg.LabelMap(),
		Addr: a.cfg.GSEAddr, DataDir: filepath.Join(a.cfg.DataDir, "gse", a.cfg.ID), IPAddress: a.cfg.GSEIP, DNSName: a.cfg.GSEDNS,
		DefaultFleetID: a.cfg.GSEDefaultFleet, HealthInterval: a.cfg.GSEHealthInterval, BuildDirs: a.cfg.BuildDirs,
		Upstream: upstream,
		Logger:   a.log.With("component", "gse"),
	})
	if err != nil {
		return err
	}
	for _, err := range []error{
		tunnel.Register(handlers, g.StartGameServerSession),
		tunnel.Register(handlers, g.TerminateProcess),
		tunnel.Register(handlers, g.FetchProcessLog),
		tunnel.Register(handlers, g.SyncFleets),
	} {
		if err != nil {
			return err
		}
	}
	if err := g.Start(); err != nil {
		return fmt.Errorf("gse endpoint %s: %w", a.cfg.GSEAddr, err)
	}
	a.gse = g
	return nil
}

// GSEAddr is the bound GSE endpoint address ("" when disabled).
func (a *Agent) GSEAddr() string {
	if a.gse == nil {
		return ""
	}
	return a.gse.Addr()
}

// StopGameProcesses ends the game processes the agent launched (croupier
// dev does this on exit; a production agent leaves them for its successor
// to adopt).
func (a *Agent) StopGameProcesses(ctx context.Context) {
	if a.gse != nil {
		a.gse.StopAll(ctx)
	}
}

func (a *Agent) dial(copts tunnel.ClientOptions) error {
	var tlsCfg *tls.Config
	creds := insecure.NewCredentials()
	if !a.cfg.Insecure {
		var err error
		if tlsCfg, err = tlsconf.ClientConfig(a.cfg.TLSCA, a.cfg.TLSCert, a.cfg.TLSKey, a.cfg.TLSServerName); err != nil {
			return err
		}
		creds = credentials.NewTLS(tlsCfg)
	}
	switch a.cfg.Transport {
	case "longpoll":
		tr := &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: false, MaxIdleConnsPerHost: 4,
			TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
		hc := &http.Client{Transport: tr}
		base := strings.TrimSuffix(a.cfg.LongPollURL, "/")
		a.control = restControl{base: base, hc: hc}
		a.client = tunnel.NewLongPollClient(base+"/tunnel/v1", hc, copts)
		return nil
	default:
		target, opts := serverTarget(a.cfg.Server)
		if a.cfg.Transport != "grpc" {
			// The tunnel follows this connection's node (connDialer): it
			// must not go idle and come back on another one.
			opts = append(opts, grpc.WithIdleTimeout(0))
		}
		conn, err := grpc.NewClient(target, append(append(tunnel.GRPCDialOptions(), opts...), grpc.WithTransportCredentials(creds),
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}))...)
		if err != nil {
			return fmt.Errorf("dial server %s: %w", a.cfg.Server, err)
		}
		a.conn = conn
		a.control = grpcControl{c: croupierv1.NewControlServiceClient(conn)}
		switch a.cfg.Transport {
		case "conn":
			a.client = tunnel.NewConnClient(connDialer(conn, tlsCfg), copts)
		case "grpc":
			a.client = tunnel.NewGRPCClient(conn, copts)
		default: // auto
			a.client = tunnel.NewAutoClient(connDialer(conn, tlsCfg), conn, copts)
		}
		return nil
	}
}

// connDialer opens the tunnel's conn-transport connections (transport conn,
// and auto until it moves to the gRPC stream) to the server node the gRPC connection (the agent's ControlService
// calls) uses, so that registration and tunnel are on one node of a
// cluster: it asks that connection which node it reached (a health check's
// peer, which also (re)connects it, failing at once while no server
// answers, as a gRPC stream does), then dials the same address, with TLS
// offering tunnel.ConnALPN unless tlsCfg is nil. The name checked in the
// server's certificate is the one gRPC checked on that connection
// (tls_server_name, else the host of the server address as configured). A
// handshake that does not agree on tunnel.ConnALPN (a server or proxy that
// does not offer the conn transport) fails with tunnel.ErrConnUnsupported.
// Server nodes must be reachable directly: behind a load balancer or a
// proxy the two connections may land on different nodes (docs/tunnel.md;
// transport auto then moves to the gRPC stream, see followControlNode).
func connDialer(cc *grpc.ClientConn, tlsCfg *tls.Config) func(ctx context.Context) (net.Conn, error) {
	health := healthpb.NewHealthClient(cc)
	return func(ctx context.Context) (net.Conn, error) {
		var p peer.Peer
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := health.Check(hctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("reaching the server over gRPC: %w", err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return nil, fmt.Errorf("server %s is %s", p.Addr, resp.GetStatus()) // shutting down
		}
		if p.Addr == nil {
			return nil, errors.New("the server connection has no address")
		}
		addr := p.Addr.String()
		if tlsCfg == nil {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
		c := tlsCfg.Clone()
		c.NextProtos = []string{tunnel.ConnALPN}
		if c.ServerName == "" {
			// The name gRPC verified (its target's host, not the IP it
			// resolved to); none was sent for an IP address.
			if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
				c.ServerName = info.State.ServerName
			}
			if c.ServerName == "" {
				c.ServerName, _, _ = net.SplitHostPort(addr)
			}
		}
		d := tls.Dialer{Config: c}
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			if strings.Contains(err.Error(), "no application protocol") {
				return nil, fmt.Errorf("%w: %v", tunnel.ErrConnUnsupported, err)
			}
			return nil, err
		}
		if got := nc.(*tls.Conn).ConnectionState().NegotiatedProtocol; got != tunnel.ConnALPN {
			_ = nc.Close()
			return nil, fmt.Errorf("%w: the TLS handshake with %s agreed on ALPN %q, not %s", tunnel.ErrConnUnsupported, addr, got, tunnel.ConnALPN)
		}
		return nc, nil
	}
}

// serverTarget turns --server into a gRPC target. A comma-separated list
// of server nodes becomes a static resolver with pick_first: the agent
// holds one connection, to the first node that answers, and when that node
// dies the tunnel's reconnect lands on the next one (docs/cluster.md).
func serverTarget(server string) (string, []grpc.DialOption) {
	addrs := strings.Split(server, ",")
	if len(addrs) == 1 {
		return server, nil
	}
	r := manual.NewBuilderWithScheme("croupier-servers")
	st := resolver.State{}
	for _, ad := range addrs {
		if ad = strings.TrimSpace(ad); ad != "" {
			// Each node's certificate is checked against its own host (the
			// target's authority would be "servers").
			host, _, _ := net.SplitHostPort(ad)
			st.Endpoints = append(st.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: ad, ServerName: host}}})
		}
	}
	r.InitialState(st)
	return r.Scheme() + ":///servers", []grpc.DialOption{grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"pick_first":{"shuffleAddressList":true}}]}`)}
}

// session runs for as long as one tunnel connection lives: it registers,
// heartbeats at the server's interval, re-registers when instances change,
// and refreshes assignments when their version moves.
func (a *Agent) session(ctx context.Context) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if a.gse != nil {
			a.gse.Resync()
		}
		interval, err := a.register(ctx)
		for err != nil {
			a.log.Warn("register with server failed; retrying", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(controlRetry):
			}
			interval, err = a.register(ctx)
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		lastTick := time.Now()
		// A ping now lets the server count this session's first beat
		// before the first tick checks for it.
		a.client.Ping()
		// retry fires controlRetry after a failed instance sync, which is
		// then repeated (sooner if another change comes); nil otherwise.
		var retry <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				a.setRegistered(false)
				return
			case <-a.instances.changed:
				retry = a.syncInstances(ctx)
			case <-retry:
				retry = a.syncInstances(ctx)
			case <-a.staleAssign:
				a.refreshAssignments(ctx)
			case now := <-t.C:
				// The tunnel ping is the heartbeat (docs/control.md). Only
				// when the server did not count the last one — an older
				// server, or one that forgot this agent — does the agent
				// call Heartbeat, which also says NOT_FOUND.
				if a.beatAt.Load() < lastTick.UnixNano() {
					a.heartbeat(ctx)
				}
				lastTick = now
				a.client.Ping()
			}
		}
	}()
}

// tunnelBeat runs on the tunnel's reader for a pong that counted as the
// heartbeat.
func (a *Agent) tunnelBeat(version int64) {
	a.beatAt.Store(time.Now().UnixNano())
	a.mu.RLock()
	stale := version != a.assignVer
	a.mu.RUnlock()
	if stale {
		select {
		case a.staleAssign <- struct{}{}:
		default:
		}
	}
}

func (a *Agent) register(ctx context.Context) (time.Duration, error) {
	// This registration reports every change made so far: drop a pending
	// "changed" signal, so instances that connected before the tunnel do
	// not cause a second registration right after the first.
	select {
	case <-a.instances.changed:
	default:
	}
	fns, descs, infos, departed := a.instances.snapshot()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := a.control.RegisterAgent(cctx, &croupierv1.RegisterAgentRequest{
		AgentId: a.cfg.ID, GameId: a.cfg.Game, Env: a.cfg.Env, Version: buildinfo.String(),
		Functions: fns, Labels: a.cfg.LabelMap(), Descriptors: descs, Instances: infos, Departed: departed,
	})
	if err != nil {
		a.followControlNode(ctx, err)
		return 0, err
	}
	a.setRegistered(true)
	a.nodeMisses.Store(0)
	a.log.Info("registered with server", "instances", len(infos), "functions", len(fns))
	a.refreshAssignments(ctx)
	interval := time.Duration(resp.GetHeartbeatInterval()) * time.Second
	if interval <= 0 {
		interval = 10 * time.Second
	}
	return interval, nil
}

// followControlNode reconnects the tunnel when err says that the server
// node this agent's gRPC connection reaches does not hold its tunnel: with
// the conn transport the two are separate connections, and the gRPC one can
// move to another node (it reconnected) while the tunnel stays. The new
// tunnel connection dials the gRPC connection's node (connDialer), and its
// session registers there. ctx is the session's (its tunnel connection's):
// a later connection is left alone.
//
// With transport auto, maxNodeMisses such refusals in a row (of
// registrations or instance updates, none registered in between) mean the
// tunnel connections cannot reach the gRPC connection's node — a load
// balancer between agent and servers sends them elsewhere — and the tunnel
// moves to the gRPC stream, which shares the gRPC connection and so its
// node. A tunnel on the gRPC stream is left alone, as with transport grpc.
func (a *Agent) followControlNode(ctx context.Context, err error) {
	if a.cfg.Transport == "grpc" || a.cfg.Transport == "longpoll" || a.client.OnStream() ||
		apierr.Info(err).GetCode() != apierr.CodeAgentNotConnected {
		return
	}
	if n := a.nodeMisses.Add(1); n >= maxNodeMisses {
		a.client.UseStream(fmt.Errorf("%d registrations in a row reached a server node that does not hold the tunnel "+
			"(a load balancer between agent and servers?); last: %w", n, err))
	}
	if a.client.Reconnect(ctx, err) {
		a.log.Warn("the server node does not hold this agent's tunnel; reconnecting the tunnel to it", "err", err)
	}
}

// maxNodeMisses is how many registrations or instance updates in a row may
// reach a server node that does not hold the tunnel before transport auto
// gives up the conn transport (followControlNode).
const maxNodeMisses = 3

// syncInstances tells the server about instance changes: only what changed
// (UpdateInstances), so an agent with M instances sends O(1) per change
// instead of O(M). It falls back to a full registration when the server
// forgot the agent or does not know UpdateInstances (an older server).
// When the server did not take the change it returns a channel that fires
// when to try again (the session's loop goes on meanwhile: heartbeats are
// not held up), else nil.
func (a *Agent) syncInstances(ctx context.Context) <-chan time.Time {
	a.mu.RLock()
	full := a.fullSync || !a.registered
	a.mu.RUnlock()
	if !full {
		req, ids := a.instances.delta(a.cfg.ID)
		if len(ids) == 0 {
			return nil
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := a.control.UpdateInstances(cctx, req)
		cancel()
		switch status.Code(err) {
		case codes.OK:
			a.log.Debug("instances updated", "upserted", len(req.GetUpserted()), "removed", len(req.GetRemoved()))
			return nil
		case codes.Unimplemented:
			a.log.Info("server has no UpdateInstances; re-registering in full on every change")
			a.mu.Lock()
			a.fullSync = true
			a.mu.Unlock()
		case codes.NotFound:
			a.log.Warn("server forgot this agent; re-registering")
		default:
			a.log.Warn("update instances failed; retrying", "err", err, "retry_in", controlRetry)
			a.instances.redirty(ids)
			a.followControlNode(ctx, err)
			return time.After(controlRetry)
		}
	}
	if _, err := a.register(ctx); err != nil {
		// The registration's snapshot cleared the pending changes: the
		// next attempt must be a full registration again.
		a.setRegistered(false)
		a.log.Warn("re-register failed; retrying", "err", err, "retry_in", controlRetry)
		return time.After(controlRetry)
	}
	return nil
}

// controlRetry is how long the agent waits before it repeats a
// registration or an instance update the server did not take, so that a
// server refusing or not answering is not called in a tight loop.
const controlRetry = time.Second

func (a *Agent) heartbeat(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := a.control.Heartbeat(cctx, &croupierv1.HeartbeatRequest{AgentId: a.cfg.ID, Timestamp: time.Now().UnixMilli()})
	switch {
	case status.Code(err) == codes.NotFound:
		a.log.Warn("server forgot this agent; re-registering")
		a.instances.notify()
	case err != nil:
		a.log.Warn("heartbeat failed", "err", err)
	default:
		a.mu.RLock()
		stale := resp.GetAssignmentsVersion() != a.assignVer
		a.mu.RUnlock()
		if stale {
			a.refreshAssignments(ctx)
		}
	}
}

func (a *Agent) refreshAssignments(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := a.control.GetAssignments(cctx, &croupierv1.GetAssignmentsRequest{AgentId: a.cfg.ID})
	if err != nil {
		a.log.Warn("get assignments failed", "err", err)
		return
	}
	enabled := make(map[string]bool, len(resp.GetAssignments()))
	for _, as := range resp.GetAssignments() {
		enabled[as.GetFunctionId()] = as.GetEnabled()
	}
	a.mu.Lock()
	a.enabled, a.assignVer = enabled, resp.GetVersion()
	a.mu.Unlock()
}

func (a *Agent) setRegistered(v bool) {
	a.mu.Lock()
	a.registered = v
	a.mu.Unlock()
}

// Registered reports whether the agent is currently registered with the server.
func (a *Agent) Registered() bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.registered
}

// handleStartJob starts a job on the instance the server chose.
func (a *Agent) handleStartJob(ctx context.Context, req *agentv1.StartJobRequest) (*agentv1.StartJobResponse, error) {
	inv := req.GetInvocation()
	id, ok := a.instances.pick(inv.GetInstanceId(), inv.GetFunctionId())
	if !ok {
		return nil, apierr.New(codes.Unavailable, apierr.CodeNoInstance,
			fmt.Sprintf("no instance on agent %s serves %s (instance %q)", a.cfg.ID, inv.GetFunctionId(), inv.GetInstanceId()))
	}
	return tunnel.Call[*agentv1.StartJobResponse](ctx, a.sdkTunnel, id, req)
}

// handleCancelJob asks the instance running a job to cancel it.
func (a *Agent) handleCancelJob(ctx context.Context, req *agentv1.CancelJobRequest) (*agentv1.CancelJobResponse, error) {
	if !a.sdkTunnel.Connected(req.GetInstanceId()) {
		return &agentv1.CancelJobResponse{Found: false}, nil
	}
	return tunnel.Call[*agentv1.CancelJobResponse](ctx, a.sdkTunnel, req.GetInstanceId(), req)
}

// SDKAddr is the bound SDK address.
func (a *Agent) SDKAddr() string {
	if a.sdkLis == nil {
		return ""
	}
	return a.sdkLis.Addr().String()
}

// Shutdown stops the agent: the tunnel closes (the server drops the
// registration at once) and game servers are disconnected.
func (a *Agent) Shutdown(ctx context.Context) error {
	if a.stop == nil {
		return nil
	}
	a.stop()
	if a.sdkTunnel != nil {
		a.sdkTunnel.Close()
	}
	done := make(chan struct{})
	go func() {
		a.sdkServer.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		a.sdkServer.Stop()
	}
	a.wg.Wait()
	if err := a.tracing.Shutdown(ctx); err != nil {
		a.log.Warn("flush traces", "err", err)
	}
	if a.gse != nil {
		a.gse.Close() // game processes keep running; the next agent adopts them
	}
	a.closeAll()
	a.log.Info("croupier agent stopped")
	return nil
}

func (a *Agent) closeAll() {
	if a.sdkLis != nil {
		_ = a.sdkLis.Close()
	}
	if a.conn != nil {
		_ = a.conn.Close()
	}
}

// Run starts the agent and blocks until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return a.Shutdown(sctx)
}

// localService is LocalAgentService for game servers on loopback.
type localService struct {
	agentv1.UnimplementedLocalAgentServiceServer
	a *Agent
}

// ReportJobEvents forwards a job's events to the server and returns what the
// server stored. The agent keeps nothing: the game server holds its events
// until the server acknowledges them, so an agent restart loses none.
func (s localService) ReportJobEvents(ctx context.Context, req *agentv1.ReportJobEventsRequest) (*agentv1.ReportJobEventsResponse, error) {
	a := s.a
	if !a.Registered() {
		return nil, apierr.New(codes.Unavailable, apierr.CodeUnavailable, "agent is not connected to the server; events are kept and retried")
	}
	resp, err := a.control.ReportJobEvents(ctx, &croupierv1.ReportJobEventsRequest{
		AgentId: a.cfg.ID, JobId: req.GetJobId(), Events: req.GetEvents(), Instance: a.cfg.ID + "/" + req.GetInstanceId(),
	})
	if err != nil {
		return nil, err
	}
	return &agentv1.ReportJobEventsResponse{AckedSeq: resp.GetAckedSeq(), Status: resp.GetStatus()}, nil
}

func (s localService) RegisterInstance(ctx context.Context, req *agentv1.RegisterInstanceRequest) (*agentv1.RegisterInstanceResponse, error) {
	a := s.a
	id := req.GetInstanceId()
	if id == "" {
		return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "instance_id is required")
	}
	// What the server's edge would refuse in the agent's registration is
	// refused here, to the instance that sent it: accepted, it made every
	// later update of this agent's instances fail, retried for ever.
	if strings.Contains(id, "/") {
		return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument,
			fmt.Sprintf("instance_id %q may not contain '/' (instances are named agent/instance)", fieldlimit.Truncate(id, fieldlimit.QuoteMax)))
	}
	if err := fieldlimit.Check(req, nil); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, d := range req.GetFunctions() {
		if err := a.validated.Validate(d); err != nil {
			return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidDescriptor,
				fmt.Sprintf("descriptor %q: %v", d.GetId(), err), "function_id", d.GetId())
		}
		if seen[d.GetId()] {
			return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidDescriptor, "function "+d.GetId()+" is listed twice", "function_id", d.GetId())
		}
		seen[d.GetId()] = true
	}
	if !a.sdkTunnel.Connected(id) {
		return nil, apierr.New(codes.FailedPrecondition, apierr.CodeAgentNotConnected,
			"instance "+id+" has no open tunnel to the agent; open it before registering")
	}
	a.instances.put(&instance{id: id, incarnation: req.GetIncarnation(), functions: req.GetFunctions(), labels: req.GetLabels()})
	if !a.sdkTunnel.Connected(id) {
		// The tunnel closed between the check above and the put: its
		// OnDisconnect found nothing to remove, so the entry goes now.
		a.instances.remove(id)
		return nil, apierr.New(codes.FailedPrecondition, apierr.CodeAgentNotConnected,
			"instance "+id+" has no open tunnel to the agent; open it before registering")
	}
	a.log.Info("game-server instance registered", "instance", id, "functions", len(req.GetFunctions()))
	return &agentv1.RegisterInstanceResponse{AgentId: a.cfg.ID, GameId: a.cfg.Game, Env: a.cfg.Env}, nil
}
