package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/structjson"
	"github.com/croupier/croupier/internal/tlsconf"
	"github.com/croupier/croupier/internal/tunnel"
	"github.com/croupier/croupier/sdk"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// floorCaller returns the relay floor: the hops of an InvokeFunction and
// nothing else. The caller's unary gRPC call (mTLS, as direct) reaches a
// handler that forwards it over a tunnel (mTLS; the conn transport, as the
// agent's default takes on the server's port, or with -agent-transport grpc
// a gRPC stream) to an agent,
// whose handler relays it still encoded over a second tunnel (the conn
// transport, loopback plaintext) to the game server's handler — the topology and the
// transports of a real call, with no identity, authorisation, rate limit,
// validation, routing table or audit. Croupier's CPU per call minus the
// floor's is what the edge costs; the floor's ratio to direct is the least
// a call through server and agent costs with this tunnel.
//
// With audited set, the front also records each call in an audit log the
// server's way (journal file, then batches into a hash-chained SQLite table,
// both in a temporary directory): the one part of the edge the issue
// requires of every call.
func floorCaller(bundle *certs.Bundle, handler sdk.Handler, payload *structpb.Struct, audited bool, hops hops) (caller, func(), error) {
	stls, err := tlsconf.ServerConfig(bundle.CACert, bundle.ServerCert, bundle.ServerKey, true)
	if err != nil {
		return nil, nil, err
	}
	ctls, err := tlsconf.ClientConfig(bundle.CACert, bundle.ClientCert, bundle.ClientKey, "localhost")
	if err != nil {
		return nil, nil, err
	}
	f := &floor{}
	ok := false
	defer func() {
		if !ok {
			f.stop()
		}
	}()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel

	// Server ↔ agent: a tunnel over mTLS, as the server's gRPC port: the
	// conn transport on a TLS listener, as that port serves it (what
	// transport auto, the agent's default, uses there), or with
	// hops.agentTransport "grpc" the gRPC stream.
	toAgent := tunnel.NewServer(tunnel.ServerOptions{Logger: quiet})
	f.closers = append(f.closers, toAgent.Close)
	var agentAddr string
	if hops.agentTransport != "grpc" {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		agentAddr = lis.Addr().String()
		c := stls.Clone()
		c.NextProtos = []string{tunnel.ConnALPN}
		agentMux := tunnel.NewConnMux(tls.NewListener(lis, c), toAgent)
		f.wg.Go(func() { _ = agentMux.Serve(ctx) })
		f.closers = append(f.closers, func() { _ = agentMux.Close() })
	} else if agentAddr, err = f.serve(append(tunnel.GRPCServerOptions(), grpc.Creds(credentials.NewTLS(stls.Clone()))), toAgent.RegisterGRPC); err != nil {
		return nil, nil, err
	}
	// Agent ↔ game server: the conn transport on loopback without TLS, as
	// the SDK port and the SDK (with hops.sdkStream a gRPC stream, as the SDK's
	// StreamTransport).
	toGame := tunnel.NewServer(tunnel.ServerOptions{Logger: quiet})
	f.closers = append(f.closers, toGame.Close)
	gameLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	gameMux := tunnel.NewConnMux(gameLis, toGame)
	f.wg.Go(func() { _ = gameMux.Serve(ctx) })
	f.closers = append(f.closers, func() { _ = gameMux.Close() })
	gs := grpc.NewServer(tunnel.GRPCServerOptions()...)
	toGame.RegisterGRPC(gs)
	f.wg.Go(func() { _ = gs.Serve(gameMux.Other()) })
	f.closers = append(f.closers, gs.Stop)

	relay := tunnel.NewHandlerRegistry()
	requestName := (&agentv1.InvokeRequest{}).ProtoReflect().Descriptor().FullName()
	if err := tunnel.RegisterRaw(relay, requestName, func(ctx context.Context, in *anypb.Any) (*anypb.Any, error) {
		return toGame.CallAny(ctx, "floor-game", in)
	}); err != nil {
		return nil, nil, err
	}
	game := tunnel.NewHandlerRegistry()
	if err := tunnel.Register(game, func(ctx context.Context, req *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
		return runHandler(ctx, handler, req), nil
	}); err != nil {
		return nil, nil, err
	}
	if hops.agentTransport != "grpc" {
		c := ctls.Clone()
		c.NextProtos = []string{tunnel.ConnALPN}
		d := tls.Dialer{Config: c}
		ac := tunnel.NewConnClient(func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", agentAddr) },
			tunnel.ClientOptions{Name: "floor-agent", Handlers: relay, Logger: quiet})
		f.wg.Go(func() { _ = ac.Run(ctx) })
	} else if err := f.client(ctx, agentAddr, credentials.NewTLS(ctls), "floor-agent", relay); err != nil {
		return nil, nil, err
	}
	if hops.sdkStream {
		if err := f.client(ctx, gameLis.Addr().String(), insecure.NewCredentials(), "floor-game", game); err != nil {
			return nil, nil, err
		}
	} else {
		var d net.Dialer
		gc := tunnel.NewConnClient(func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", gameLis.Addr().String()) },
			tunnel.ClientOptions{Name: "floor-game", Handlers: game, Logger: quiet})
		f.wg.Go(func() { _ = gc.Run(ctx) })
	}
	if err := waitConnected(toAgent, "floor-agent"); err != nil {
		return nil, nil, err
	}
	if err := waitConnected(toGame, "floor-game"); err != nil {
		return nil, nil, err
	}

	var log *audit.Log
	if audited {
		if log, err = f.auditLog(ctx); err != nil {
			return nil, nil, err
		}
	}
	// The server's front: a unary method that forwards to the agent, on a
	// gRPC server with the croupier server's stream workers.
	frontAddr, err := f.serve([]grpc.ServerOption{grpc.Creds(credentials.NewTLS(stls.Clone())), grpc.NumStreamWorkers(64)}, func(gs grpc.ServiceRegistrar) {
		forward := func(ctx context.Context, req *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
			in, err := anypb.New(req)
			if err != nil {
				return nil, err
			}
			out, err := toAgent.CallAny(ctx, "floor-agent", in)
			if err != nil {
				return nil, err
			}
			resp := &agentv1.InvokeResponse{}
			return resp, out.UnmarshalTo(resp)
		}
		gs.RegisterService(invokeService("croupier.bench.Floor", func(ctx context.Context, req *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
			start := time.Now()
			resp, err := forward(ctx, req)
			if log != nil {
				// Before the answer, as the edge records; a row that cannot
				// be written fails the call, so the harness sees it.
				if rerr := recordInvoke(ctx, log, req, start, err); rerr != nil {
					return nil, rerr
				}
			}
			return resp, err
		}), struct{}{})
	})
	if err != nil {
		return nil, nil, err
	}
	cc, err := grpc.NewClient(frontAddr, grpc.WithTransportCredentials(credentials.NewTLS(ctls)))
	if err != nil {
		return nil, nil, err
	}
	f.closers = append(f.closers, func() { _ = cc.Close() })
	ok = true
	return func(ctx context.Context) error {
		out := &agentv1.InvokeResponse{}
		if err := cc.Invoke(ctx, "/croupier.bench.Floor/Invoke", &agentv1.InvokeRequest{FunctionId: "player.get", Payload: payload}, out); err != nil {
			return err
		}
		if !out.GetSuccess() {
			return errors.New(out.GetError())
		}
		return nil
	}, f.stop, nil
}

// auditLog opens an audit log as the server does: a migrated SQLite store
// and a journal, both in a temporary directory.
func (f *floor) auditLog(ctx context.Context) (*audit.Log, error) {
	dir, err := os.MkdirTemp("", "croupier-floor-")
	if err != nil {
		return nil, err
	}
	f.closers = append(f.closers, func() { _ = os.RemoveAll(dir) })
	st, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, DSN: filepath.Join(dir, "floor.db")})
	if err != nil {
		return nil, err
	}
	f.closers = append(f.closers, func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		return nil, err
	}
	log, err := audit.Open(ctx, audit.Config{Store: st, JournalPath: filepath.Join(dir, "floor-audit.journal")})
	if err != nil {
		return nil, err
	}
	f.closers = append(f.closers, func() { _ = log.Close() })
	return log, nil
}

// recordInvoke records req, which ended with callErr, as the server records
// an invoke.
func recordInvoke(ctx context.Context, log *audit.Log, req *agentv1.InvokeRequest, start time.Time, callErr error) error {
	payload, err := structjson.AppendStruct(nil, req.GetPayload())
	if err != nil {
		return err
	}
	return log.Record(ctx, audit.Entry{Actor: "operator:bench", Action: audit.ActionInvoke, Game: "demo", Env: "dev",
		Function: req.GetFunctionId(), Payload: payload, Err: callErr, Duration: time.Since(start)})
}

// floor owns the relay floor's servers and tunnel clients.
type floor struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closers []func()
}

// serve starts a gRPC server on 127.0.0.1:0 with opts and what register
// adds, and returns its address.
func (f *floor) serve(opts []grpc.ServerOption, register func(grpc.ServiceRegistrar)) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	gs := grpc.NewServer(opts...)
	register(gs)
	f.wg.Go(func() { _ = gs.Serve(l) })
	f.closers = append(f.closers, gs.Stop)
	return l.Addr().String(), nil
}

// client runs a tunnel client named name, serving handlers, against the
// tunnel at addr until the floor stops.
func (f *floor) client(ctx context.Context, addr string, creds credentials.TransportCredentials, name string, handlers *tunnel.HandlerRegistry) error {
	cc, err := grpc.NewClient(addr, append(tunnel.GRPCDialOptions(), grpc.WithTransportCredentials(creds))...)
	if err != nil {
		return err
	}
	c := tunnel.NewGRPCClient(cc, tunnel.ClientOptions{Name: name, Handlers: handlers, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	f.wg.Go(func() {
		_ = c.Run(ctx)
		_ = cc.Close()
	})
	return nil
}

// stop ends the clients, then the servers, and waits for their goroutines.
func (f *floor) stop() {
	if f.cancel != nil {
		f.cancel()
	}
	for i := len(f.closers) - 1; i >= 0; i-- {
		f.closers[i]()
	}
	f.wg.Wait()
}

// waitConnected waits up to 10 s for the tunnel client name to connect.
func waitConnected(s *tunnel.Server, name string) error {
	deadline := time.Now().Add(10 * time.Second)
	for !s.Connected(name) {
		if time.Now().After(deadline) {
			return fmt.Errorf("floor: tunnel client %s did not connect within 10s", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// runHandler runs the game's handler on req as the SDK does.
func runHandler(ctx context.Context, handler sdk.Handler, req *agentv1.InvokeRequest) *agentv1.InvokeResponse {
	res, err := handler(ctx, &sdk.Invocation{FunctionID: req.GetFunctionId(), Payload: req.GetPayload()})
	if err != nil {
		return &agentv1.InvokeResponse{Success: false, Error: err.Error()}
	}
	return &agentv1.InvokeResponse{Success: true, Result: res}
}

// invokeService is a gRPC service named name with one unary method, Invoke,
// taking an InvokeRequest to h.
func invokeService(name string, h func(context.Context, *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error)) *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: name,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Invoke",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				req := &agentv1.InvokeRequest{}
				if err := dec(req); err != nil {
					return nil, err
				}
				return h(ctx, req)
			},
		}},
	}
}
