// Package server assembles `croupier server`: the store, the live registry,
// the agent tunnel and the gRPC/HTTP listeners. It can run inside a test
// process: every listener accepts port 0 and Start returns once all of them
// are accepting connections.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	"github.com/croupier/croupier/internal/agentdir"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/audit"
	authsvc "github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/cluster"
	"github.com/croupier/croupier/internal/config"
	"github.com/croupier/croupier/internal/console"
	"github.com/croupier/croupier/internal/control"
	"github.com/croupier/croupier/internal/fleet"
	"github.com/croupier/croupier/internal/invoke"
	"github.com/croupier/croupier/internal/jobs"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/registry"
	"github.com/croupier/croupier/internal/revocation"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/tlsconf"
	"github.com/croupier/croupier/internal/tunnel"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Server is a running croupier server.
type Server struct {
	cfg config.Server
	log *slog.Logger

	store    *store.Store
	registry *registry.Registry
	tunnel   *tunnel.Server
	control  *control.Service
	invoke   *invoke.Service
	jobs     *jobs.Service
	auth     *authsvc.Service
	guard    *guard
	audit    *audit.Log // closed after every other component, before the store

	// assignments owns background cache refreshes; closed after the tunnel.
	assignments *control.Assignments
	// bus and agents spread the control tier over the cluster's nodes
	// (nil with nats: off); closed after the listeners, before the store.
	bus    *cluster.Node
	agents *agentdir.Dir

	revocations *revocation.List
	certs       *revocation.Service
	fleet       *fleet.Service
	methods     map[string]rule // the method table (methods.go)
	inproc      *inproc         // the in-process gRPC server REST calls
	health      *health.Server
	metrics     *prometheus.Registry
	obs         *observability
	// tracerProvider replaces the configured exporter (WithTracerProvider).
	tracerProvider trace.TracerProvider

	grpcServer *grpc.Server
	httpServer *http.Server
	tunServer  *http.Server
	grpcLis    net.Listener
	httpLis    net.Listener
	tunLis     net.Listener

	ctx  context.Context // the server's lifetime; cancelled first by Shutdown
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// New validates cfg and returns a server that Start will bring up.
func New(cfg config.Server, log *slog.Logger, opts ...Option) (*Server, error) {
	if err := cfg.Resolve(); err != nil {
		return nil, err
	}
	for _, addr := range []string{cfg.GRPCAddr, cfg.HTTPAddr, cfg.TunnelHTTPAddr} {
		if addr == "" {
			continue
		}
		if err := tlsconf.CheckInsecureAllowed(addr, cfg.Insecure); err != nil {
			return nil, err
		}
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Server{cfg: cfg, log: log}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Option adjusts a Server beyond its config.
type Option func(*Server)

// WithTracerProvider traces with tp instead of the exporter the config
// names (tests use an in-memory exporter).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(s *Server) { s.tracerProvider = tp }
}

// Start opens the store (running migrations), binds every listener and
// starts serving. It returns once the server accepts connections; Shutdown
// (or cancelling ctx) stops it.
func (s *Server) Start(ctx context.Context) (err error) {
	ctx, s.stop = context.WithCancel(ctx)
	s.ctx = ctx
	defer func() {
		if err != nil {
			s.stop()
			if s.grpcServer != nil {
				s.grpcServer.Stop()
			}
			if s.inproc != nil {
				s.inproc.close()
			}
			s.wg.Wait()
			if s.fleet != nil {
				s.fleet.Close()
			}
			s.closeAll()
			if s.obs != nil {
				_ = s.obs.tracing.Shutdown(context.WithoutCancel(ctx))
			}
		}
	}()
	if err = s.openTelemetry(ctx); err != nil {
		return err
	}
	if s.store, err = store.Open(ctx, store.Config{Driver: s.cfg.StoreDriver, DSN: s.cfg.StoreDSN, Logger: s.log}); err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	if err = s.store.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate store: %w", err)
	}
	scopes := control.NewScopes(s.store.Scopes())
	for _, sc := range s.cfg.Scopes {
		game, env, _ := config.ParseScope(sc)
		if err = scopes.Declare(ctx, game, env); err != nil {
			return fmt.Errorf("declare scope %s: %w", sc, err)
		}
	}
	if err = s.openBus(ctx); err != nil {
		return err
	}
	s.registry = registry.New(registry.Options{Changed: func(id string) {
		if s.agents != nil {
			s.agents.Changed(id)
		}
	}})
	cat := control.NewCatalog(s.store.Functions(), s.registry, scopes)
	if err = control.LoadCatalog(ctx, s.store, s.registry, s.log); err != nil {
		return err
	}
	s.revocations = revocation.New(s.store.Revocations(), s.log)
	if err = s.revocations.Load(ctx); err != nil {
		return err
	}
	auth := authenticator{insecure: s.cfg.Insecure, rv: s.revocations, certs: newCertPrincipals()}
	s.tunnel = tunnel.NewServer(tunnel.ServerOptions{
		Logger:       s.log.With("component", "tunnel"),
		PingInterval: s.cfg.HeartbeatInterval,
		PingTimeout:  3 * s.cfg.HeartbeatInterval,
		Authorize:    auth.authorizeTunnel,
		Metrics:      s.obs.app.Tunnel("agents"),

		TracerProvider: s.obs.tracing.Provider,
		OnConnect:      func(name string) { s.log.Info("agent tunnel connected", "agent", name) },
		// An agent's tunnel ping is its heartbeat (s.control is set below,
		// before the listeners start).
		OnPing: func(name string) (int64, bool) { return s.control.TunnelHeartbeat(name) },
		OnDisconnect: func(name string, err error) {
			if s.registry.Remove(name) {
				s.log.Info("agent tunnel closed; agent removed", "agent", name, "reason", err)
			}
		},
	})
	s.certs = revocation.NewService(s.revocations, s.tunnel.Disconnect,
		func(ctx context.Context, payload any) { noteOf(ctx).payload = payload })
	var calls agentCaller = tunnelCaller{s.tunnel}
	localAll := func(ctx context.Context, req proto.Message) { s.tunnel.CallAll(ctx, req) }
	agentCmds := &fleet.TunnelDispatcher{Tunnel: s.tunnel, Broadcast: localAll}
	if s.bus != nil {
		s.agents = agentdir.New(agentdir.Config{Logger: s.log, Broadcast: localAll}, s.bus, s.registry, calls, s.tunnel)
		if err = s.agents.Start(ctx); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		calls = s.agents
		agentCmds = &fleet.TunnelDispatcher{Tunnel: s.agents, Broadcast: s.agents.Broadcast}
	}
	assignments := control.NewAssignments(s.store.Assignments(), 2*time.Second)
	s.assignments = assignments
	var remote func(string) bool
	if s.agents != nil {
		remote = s.agents.Remote
	}
	s.invoke = invoke.New(invoke.Config{
		DefaultTimeout: s.cfg.InvokeTimeout, MaxTimeout: s.cfg.InvokeMaxTimeout,
		IdempotencyWindow: s.cfg.IdempotencyWindow, Logger: s.log, Metrics: s.obs.app,
	}, invoke.Deps{
		Registry: s.registry, Caller: calls, Assignments: assignments,
		Scopes: scopes, Idempotency: s.store.Idempotency(), Remote: remote,
	})
	s.jobs = jobs.New(jobs.Config{
		CheckInterval: s.cfg.HeartbeatInterval, OrphanGrace: s.cfg.JobOrphanGrace,
		IdempotencyWindow: s.cfg.IdempotencyWindow, Retention: s.cfg.JobRetention, KeepJobs: s.cfg.JobKeep,
		MaxEventBytes: s.cfg.JobMaxEventBytes, Logger: s.log.With("component", "jobs"), Metrics: s.obs.app,
	}, s.store, s.invoke, calls, s.registry)
	if err = s.jobs.Open(ctx); err != nil {
		return err
	}
	s.control = control.New(control.Config{HeartbeatInterval: s.cfg.HeartbeatInterval, Logger: s.log, Departed: s.jobs.InstancesDeparted},
		s.registry, assignments, scopes, s.tunnel)
	if err = s.openAccess(ctx); err != nil {
		return err
	}
	if s.fleet, err = fleet.New(fleet.Config{
		Store:  s.store,
		Agents: agentCmds,
		Logger: s.log.With("component", "fleet"),
		AuthorizeAgent: func(ctx context.Context, agentID, game, env string) error {
			return control.AuthorizeAgent(principal.FromContext(ctx), agentID, game, env)
		},
	}); err != nil {
		return err
	}
	s.fleet.Start()

	var serverTLS *tls.Config
	if !s.cfg.Insecure {
		if serverTLS, err = tlsconf.ServerConfig(s.cfg.TLSCA, s.cfg.TLSCert, s.cfg.TLSKey, true); err != nil {
			return err
		}
		// Operators may come with a bearer token instead of a certificate;
		// agents and the tunnel still need theirs (see authenticator).
		serverTLS.ClientAuth = tls.VerifyClientCertIfGiven
	}
	s.registerStateMetrics()

	fh := functionHandler{invoke: s.invoke, jobs: s.jobs, cat: cat, reg: s.registry, guard: s.guard}
	ch := controlHandler{svc: s.control, jobs: s.jobs}
	rh := registryHandler{reg: s.registry}
	s.health = health.NewServer()
	s.methods = s.methodTable()
	svcs := s.services(fh, ch, rh)
	netEdge := s.newEdge(s.networkIdentity(auth))
	s.grpcServer = s.newGRPCServer(serverTLS != nil, netEdge)
	inEdge := s.newEdge(forwardedIdentity)
	inSrv := s.newGRPCServer(false, inEdge)
	direct := newDirect(s.obs.rpc.UnaryServerInterceptor(), inEdge.unary())
	for _, sv := range svcs {
		sv.grpc(s.grpcServer)
		sv.grpc(inSrv)
		sv.grpc(direct)
	}
	if s.inproc, err = newInproc(inSrv, direct, s.cfg.MaxRequestBytes, append(tunnel.GRPCDialOptions(), s.inprocTracing()...)...); err != nil {
		return err
	}
	s.obs.rpc.InitializeMetrics(s.grpcServer)

	grpcMux, err := s.listenGRPC(serverTLS, netEdge)
	if err != nil {
		return fmt.Errorf("listen grpc_addr %s: %w", s.cfg.GRPCAddr, err)
	}
	if s.httpLis, err = listen(s.cfg.HTTPAddr, serverTLS, false); err != nil {
		return fmt.Errorf("listen http_addr %s: %w", s.cfg.HTTPAddr, err)
	}
	rest, err := s.restHandler(ctx, svcs)
	if err != nil {
		return err
	}
	web, err := console.New()
	if err != nil {
		return err
	}
	// ReadTimeout bounds how long a client may take to send a request (a
	// slow body holds a goroutine and up to max_request_bytes); there is no
	// WriteTimeout because the SSE streams are long-lived.
	public, err := publicRoutes(s.methods)
	if err != nil {
		return err
	}
	s.httpServer = &http.Server{Handler: s.opsMux(s.auth.HTTPMiddleware(rest, auth.httpPrincipal, public), web),
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	if s.cfg.TunnelHTTPAddr != "" {
		// HTTP/1.1 only: this listener exists for networks whose proxies
		// break HTTP/2 streams.
		if s.tunLis, err = listen(s.cfg.TunnelHTTPAddr, serverTLS, true); err != nil {
			return fmt.Errorf("listen tunnel_http_addr %s: %w", s.cfg.TunnelHTTPAddr, err)
		}
		h, herr := s.tunnelMux(ctx, auth, svcs)
		if herr != nil {
			return herr
		}
		s.tunServer = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
			TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
			ErrorLog:     slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	}

	// Stopping the gRPC server closes the mux (its listener); the mux
	// returns once the tunnel's conn-transport connections have ended.
	s.serve("grpc", func() error { return s.grpcServer.Serve(grpcMux.Other()) })
	s.serve("tunnel-conn", func() error { return grpcMux.Serve(s.ctx) })
	s.serve("in-process grpc", func() error { return inSrv.Serve(s.inproc.lis) })
	s.serve("http", func() error { return s.httpServer.Serve(s.httpLis) })
	if s.tunServer != nil {
		s.serve("tunnel-http", func() error { return s.tunServer.Serve(s.tunLis) })
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.maintain(ctx)
	}()
	go func() {
		defer s.wg.Done()
		if err := s.jobs.Run(ctx); err != nil {
			s.log.Error("jobs stopped", "err", err)
		}
	}()
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.log.Info("croupier server started", "grpc", s.GRPCAddr(), "http", s.HTTPAddr(), "tunnel_http", s.TunnelHTTPAddr(),
		"store", s.cfg.StoreDriver, "tls", !s.cfg.Insecure)
	return nil
}

func listen(addr string, tlsCfg *tls.Config, http1Only bool) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil || tlsCfg == nil {
		return l, err
	}
	c := tlsCfg.Clone()
	if http1Only {
		c.NextProtos = []string{"http/1.1"}
		c.ClientAuth = tls.RequireAndVerifyClientCert // agents only
	} else {
		c.NextProtos = []string{"h2", "http/1.1"}
		c.ClientAuth = tls.VerifyClientCertIfGiven // probes and browsers have no client cert
	}
	return tls.NewListener(l, c), nil
}

// streamLifetime ends streaming calls (watches, job event streams) when the
// server shuts down, so a graceful stop does not wait for them forever.
func (s *Server) streamLifetime(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, cancel := context.WithCancelCause(ss.Context())
	defer cancel(nil)
	defer context.AfterFunc(s.ctx, func() { cancel(errShuttingDown) })()
	return h(srv, &ctxStream{ServerStream: ss, ctx: ctx})
}

// errShuttingDown is why a stream ends when the server stops (the edge
// answers with it, streamLifetime's cause).
var errShuttingDown = apierr.New(codes.Unavailable, apierr.CodeUnavailable, "the server is shutting down; open the stream again (another node, or this one once it is back)")

// opsMux serves health, readiness and metrics without authentication, the
// REST API under /api/v1, and the web console (its static files, public;
// the console calls the API with the operator's token) at every other path.
func (s *Server) opsMux(rest, web http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", rest)
	mux.Handle("/", web)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.store.Ping(r.Context()); err != nil {
			http.Error(w, "store unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{}))
	return s.obs.http.Middleware(mux, s.obs.tracing.Provider)
}

// tunnelMux serves the long-poll tunnel and, for agents that cannot use
// HTTP/2 at all, the REST routes of the services marked tunnel (through the
// same edge as gRPC).
func (s *Server) tunnelMux(ctx context.Context, auth authenticator, svcs []service) (http.Handler, error) {
	gw := s.gateway()
	for _, sv := range svcs {
		if sv.tunnel {
			if err := sv.rest(ctx, gw, s.inproc.cc); err != nil {
				return nil, err
			}
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/tunnel/v1/", http.StripPrefix("/tunnel/v1", s.tunnel.LongPollHandler()))
	mux.Handle("/api/v1/", gw)
	return auth.httpMiddleware(http.MaxBytesHandler(mux, int64(s.cfg.MaxRequestBytes))), nil
}

// maintain expires silent agents, follows the revocations made through
// other nodes (every revocation.Refresh) and prunes old idempotency keys.
func (s *Server) maintain(ctx context.Context) {
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	rt := time.NewTicker(revocation.Refresh)
	defer rt.Stop()
	lastPrune := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-rt.C:
			s.refreshRevocations(ctx)
			// Logins revoked, users disabled and roles revoked through
			// other nodes end this node's streams of theirs too.
			s.auth.RecheckStreams(ctx)
			continue
		case <-t.C:
		}
		for _, id := range s.control.Expire() {
			s.tunnel.Disconnect(id, errors.New("missed three heartbeats"))
		}
		if time.Since(lastPrune) > time.Minute {
			lastPrune = time.Now()
			if n, err := s.store.Idempotency().PruneExpired(ctx, time.Now()); err != nil {
				s.log.Warn("prune idempotency keys", "err", err)
			} else if n > 0 {
				s.log.Debug("pruned idempotency keys", "n", n)
			}
		}
	}
}

// refreshRevocations reloads the revocation list (other nodes may have
// added to it) and cuts the tunnels of agents whose certificate it names.
func (s *Server) refreshRevocations(ctx context.Context) {
	if err := s.revocations.Load(ctx); err != nil {
		s.log.Warn("reload revoked certificates", "err", err)
		return
	}
	for _, name := range s.tunnel.Clients() {
		if serial := s.revocations.SerialOf(name); s.revocations.Revoked(serial) {
			s.tunnel.Disconnect(name, fmt.Errorf("certificate %s revoked", serial))
		}
	}
}

func (s *Server) serve(name string, fn func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := fn(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) && !errors.Is(err, net.ErrClosed) {
			s.log.Error("listener stopped", "listener", name, "err", err)
		}
	}()
}

// GRPCAddr is the bound gRPC address.
func (s *Server) GRPCAddr() string { return addrOf(s.grpcLis) }

// HTTPAddr is the bound HTTP address.
func (s *Server) HTTPAddr() string { return addrOf(s.httpLis) }

// TunnelHTTPAddr is the bound long-poll tunnel address ("" if disabled).
func (s *Server) TunnelHTTPAddr() string { return addrOf(s.tunLis) }

// Registry exposes the live registry (used by `croupier dev` and tests).
func (s *Server) Registry() *registry.Registry { return s.registry }

// Bus is the node's cluster bus; nil with nats off.
func (s *Server) Bus() *cluster.Node { return s.bus }

// Revocations is the node's certificate revocation list (current at once
// for revocations made through this node, within revocation.Refresh for
// the others'), for listeners beside the server's that admit certificates.
func (s *Server) Revocations() *revocation.List { return s.revocations }

func addrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// Shutdown stops accepting work, drains in-flight calls until ctx ends, then
// closes everything.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.stop == nil {
		return nil
	}
	s.stop()
	if s.health != nil {
		s.health.Shutdown()
	}
	done := make(chan struct{})
	go func() {
		if s.grpcServer != nil {
			s.grpcServer.GracefulStop()
		}
		close(done)
	}()
	if s.tunnel != nil {
		s.tunnel.Close() // tunnels are long-lived streams; GracefulStop would wait for them forever
	}
	select {
	case <-done:
	case <-ctx.Done():
		if s.grpcServer != nil {
			s.grpcServer.Stop()
		}
	}
	for _, hs := range []*http.Server{s.httpServer, s.tunServer} {
		if hs != nil && hs.Shutdown(ctx) != nil {
			_ = hs.Close() // the drain deadline passed: cut what is left
		}
	}
	if s.inproc != nil {
		s.inproc.close() // after the HTTP servers, whose calls it carries
	}
	s.wg.Wait()
	if s.assignments != nil {
		s.assignments.Close() // before closeAll closes the store it reads
	}
	if s.fleet != nil {
		s.fleet.Close()
	}
	s.closeAll()
	if s.obs != nil {
		if err := s.obs.tracing.Shutdown(ctx); err != nil {
			s.log.Warn("flush traces", "err", err)
		}
	}
	s.log.Info("croupier server stopped")
	return nil
}

func (s *Server) closeAll() {
	for _, l := range []net.Listener{s.grpcLis, s.httpLis, s.tunLis} {
		if l != nil {
			_ = l.Close()
		}
	}
	if s.agents != nil {
		s.agents.Close()
	}
	if s.bus != nil {
		s.bus.Close()
	}
	if s.audit != nil {
		if err := s.audit.Close(); err != nil {
			s.log.Error("audit log", "err", err)
		}
	}
	if s.store != nil {
		_ = s.store.Close()
	}
}

// Run starts the server and blocks until ctx is cancelled, then shuts down
// with a 10 s drain.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Shutdown(sctx)
}

// agentCaller sends calls to agents: down this node's tunnel, or through
// the node holding the agent's tunnel (agentdir).
type agentCaller interface {
	Invoke(ctx context.Context, agent string, req *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error)
	StartJob(ctx context.Context, agent string, req *agentv1.StartJobRequest) (*agentv1.StartJobResponse, error)
	CancelJob(ctx context.Context, agent string, req *agentv1.CancelJobRequest) (*agentv1.CancelJobResponse, error)
}

// tunnelCaller sends invocations over the tunnel.
type tunnelCaller struct{ t *tunnel.Server }

// Invoke leaves the game server's result encoded (invoke.DecodeResponse).
func (c tunnelCaller) Invoke(ctx context.Context, agent string, req *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
	// vtprotobuf's encoder (buf.gen.vtproto.yaml), ~4× protobuf's. It does
	// not refuse a string that is not UTF-8, as protobuf's did here; the
	// operator's input was decoded by protobuf's or protojson's decoder,
	// which refuse them, and the game server's SDK refuses such a request
	// (INVALID_ARGUMENT) whatever put it there.
	b, err := req.MarshalVT()
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "encoding tunnel request: %v", err)
	}
	out, err := c.t.CallAny(ctx, agent, &anypb.Any{TypeUrl: invokeRequestType, Value: b})
	if err != nil {
		return nil, err
	}
	return invoke.DecodeResponse(out, agent)
}

// invokeRequestType is the type URL of an agentv1.InvokeRequest.
var invokeRequestType = tunnel.TypeURL(&agentv1.InvokeRequest{})

func (c tunnelCaller) StartJob(ctx context.Context, agent string, req *agentv1.StartJobRequest) (*agentv1.StartJobResponse, error) {
	return tunnel.Call[*agentv1.StartJobResponse](ctx, c.t, agent, req)
}

func (c tunnelCaller) CancelJob(ctx context.Context, agent string, req *agentv1.CancelJobRequest) (*agentv1.CancelJobResponse, error) {
	return tunnel.Call[*agentv1.CancelJobResponse](ctx, c.t, agent, req)
}
