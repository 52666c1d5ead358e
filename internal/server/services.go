package server

import (
	"context"
	"runtime"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/approval"
	"github.com/croupier/croupier/internal/audit"
	authsvc "github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/tunnel"
	"github.com/croupier/croupier/internal/wirecodec"
	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

// service is one entry of the list of services: how to serve it on gRPC,
// on REST (nil: not on REST) and whether the long-poll tunnel listener
// serves its REST routes too (for agents that cannot use HTTP/2).
type service struct {
	grpc   func(grpc.ServiceRegistrar)
	rest   func(context.Context, *gwruntime.ServeMux, grpc.ClientConnInterface) error
	tunnel bool
}

// services is the one list of services the server serves; gRPC, REST and
// the tunnel listener are all registered from it.
func (s *Server) services(fh functionHandler, ch controlHandler, rh registryHandler) []service {
	return []service{
		{grpc: func(r grpc.ServiceRegistrar) { croupierv1.RegisterFunctionServiceServer(r, fh) }, rest: rest(croupierv1.RegisterFunctionServiceHandlerClient, croupierv1.NewFunctionServiceClient)},
		{grpc: func(r grpc.ServiceRegistrar) { croupierv1.RegisterControlServiceServer(r, ch) }, rest: rest(croupierv1.RegisterControlServiceHandlerClient, croupierv1.NewControlServiceClient), tunnel: true},
		{grpc: func(r grpc.ServiceRegistrar) { croupierv1.RegisterRegistryServiceServer(r, rh) }, rest: rest(croupierv1.RegisterRegistryServiceHandlerClient, croupierv1.NewRegistryServiceClient)},
		{grpc: func(r grpc.ServiceRegistrar) { croupierv1.RegisterAuthServiceServer(r, authsvc.NewAuthServer(s.auth)) }, rest: rest(croupierv1.RegisterAuthServiceHandlerClient, croupierv1.NewAuthServiceClient)},
		{grpc: func(r grpc.ServiceRegistrar) { croupierv1.RegisterUserServiceServer(r, authsvc.NewUserServer(s.auth)) }, rest: rest(croupierv1.RegisterUserServiceHandlerClient, croupierv1.NewUserServiceClient)},
		{grpc: func(r grpc.ServiceRegistrar) { croupierv1.RegisterRoleServiceServer(r, authsvc.NewRoleServer(s.auth)) }, rest: rest(croupierv1.RegisterRoleServiceHandlerClient, croupierv1.NewRoleServiceClient)},
		{grpc: func(r grpc.ServiceRegistrar) {
			croupierv1.RegisterApprovalServiceServer(r, approval.NewServer(s.guard.approvals))
		}, rest: rest(croupierv1.RegisterApprovalServiceHandlerClient, croupierv1.NewApprovalServiceClient)},
		{grpc: func(r grpc.ServiceRegistrar) {
			croupierv1.RegisterAuditServiceServer(r, audit.NewServer(s.guard.audit))
		}, rest: rest(croupierv1.RegisterAuditServiceHandlerClient, croupierv1.NewAuditServiceClient)},
		{grpc: func(r grpc.ServiceRegistrar) { croupierv1.RegisterCertificateServiceServer(r, s.certs) }, rest: rest(croupierv1.RegisterCertificateServiceHandlerClient, croupierv1.NewCertificateServiceClient)},
		{grpc: func(r grpc.ServiceRegistrar) { croupierv1.RegisterFleetServiceServer(r, s.fleet.GRPC()) }, rest: rest(croupierv1.RegisterFleetServiceHandlerClient, croupierv1.NewFleetServiceClient)},
		{grpc: func(r grpc.ServiceRegistrar) { croupierv1.RegisterFleetAgentServiceServer(r, s.fleet.AgentAPI()) }, rest: rest(croupierv1.RegisterFleetAgentServiceHandlerClient, croupierv1.NewFleetAgentServiceClient), tunnel: true},
		{grpc: s.tunnel.RegisterGRPC},
		{grpc: func(r grpc.ServiceRegistrar) { healthpb.RegisterHealthServer(r, s.health) }},
	}
}

// rest adapts a generated REST registration to the list of services: the
// gateway calls the service through cc.
func rest[C any](register func(context.Context, *gwruntime.ServeMux, C) error, client func(grpc.ClientConnInterface) C) func(context.Context, *gwruntime.ServeMux, grpc.ClientConnInterface) error {
	return func(ctx context.Context, mux *gwruntime.ServeMux, cc grpc.ClientConnInterface) error {
		return register(ctx, mux, client(cc))
	}
}

// streamWorkers is the gRPC servers' pool of goroutines that serve calls.
// A worker serves a whole stream, so long-lived streams (agents' tunnels on
// the gRPC transport, watches) each hold one while they last.
const streamWorkers = 64

// newGRPCServer builds a gRPC server whose every call passes the edge
// (identity, limits, access, rate limits, audit; see edge.go). tlsConns:
// the listener hands it TLS connections (grpcport.go); false for an
// insecure listener and for the in-process server REST uses.
func (s *Server) newGRPCServer(tlsConns bool, e *edge) *grpc.Server {
	unary := []grpc.UnaryServerInterceptor{e.unary()}
	stream := []grpc.StreamServerInterceptor{s.streamLifetime, e.stream()}
	// Telemetry first (it counts refused calls too), then the codec guard
	// (an undecodable request is INVALID_ARGUMENT before any auth work),
	// then the edge.
	opts := append(append(s.telemetryOptions(), wirecodec.Options()...), tunnel.GRPCServerOptions()...)
	opts = append(opts,
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(s.cfg.MaxRequestBytes),
		// Reused stream workers keep their grown stacks; a fresh goroutine per
		// call spends a measurable share of each call growing its stack
		// (copystack: ~6 % of the CPU in bench/invoke's profile with one
		// worker per core). Enough workers for the concurrent calls a node
		// commonly carries; a call that finds them all busy gets a goroutine
		// of its own, as without workers. 64 took 6 % off InvokeFunction's
		// CPU per call at 64 concurrent calls (docs/benchmarks.md).
		grpc.NumStreamWorkers(uint32(max(streamWorkers, runtime.GOMAXPROCS(0)))),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: keepaliveTimeout}),
	)
	if tlsConns {
		// The listener does the TLS handshake (grpcport.go). No read
		// buffer on TLS connections: crypto/tls already buffers a whole
		// record per connection, so gRPC's own 16 KiB bufio.Reader only
		// copied the data twice and pinned 16 KiB per idle agent
		// (bench/scale: RSS per agent; docs/routing.md).
		opts = append(opts, grpc.Creds(handshakenTLS{}), grpc.ReadBufferSize(0))
	}
	return grpc.NewServer(opts...)
}

// newEdge returns the edge for calls identified by identify.
func (s *Server) newEdge(identify identifyFunc) *edge {
	return &edge{identify: identify, limiter: s.guard.limiter, audit: s.guard.audit, log: s.log.With("component", "edge"),
		methods: s.methods, insecure: s.cfg.Insecure, revocations: s.revocations, sessions: s.auth}
}

// networkIdentity identifies network callers: a bearer token, else the
// client certificate (anonymous admin on an insecure loopback listener).
func (s *Server) networkIdentity(auth authenticator) identifyFunc {
	return func(ctx context.Context, _ string, public bool) (p principal.Principal, _ context.Context, err error) {
		p, err = s.auth.ResolveGRPC(ctx, public, auth.principal)
		return p, ctx, err
	}
}
