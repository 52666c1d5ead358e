// Package stack starts what the benchmark harnesses measure: a server on
// SQLite in a temporary directory, an agent connected to it over mTLS, and a
// game-server SDK client with the caller's functions, all in this process
// but talking over real loopback sockets.
package stack

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/croupier/croupier/internal/agent"
	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/config"
	"github.com/croupier/croupier/internal/server"
	"github.com/croupier/croupier/internal/tlsconf"
	"github.com/croupier/croupier/sdk"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Stack is a running server, agent and game server.
type Stack struct {
	Server *server.Server
	Agent  *agent.Agent
	// Conn is an operator connection (client certificate of an administrator).
	Conn   *grpc.ClientConn
	Bundle *certs.Bundle

	dir    string
	cancel context.CancelFunc
}

// Options adjust the stack; the zero value is the defaults.
type Options struct {
	// AgentTransport is the agent's tunnel transport to the server ("auto",
	// "grpc" or "conn"; empty: the agent's default, auto).
	AgentTransport string
	// SDK adjusts the game server's SDK options.
	SDK func(*sdk.Options)
}

// Start brings the stack up for scope demo/dev. register adds the game
// server's functions; Start returns once fn is registered on the server.
func Start(register func(*sdk.Client) error, fn string, opts Options) (*Stack, error) {
	ctx, cancel := context.WithCancel(context.Background())
	st := &Stack{cancel: cancel}
	ok := false
	defer func() {
		if !ok {
			st.Close()
		}
	}()
	dir, err := os.MkdirTemp("", "croupier-bench-")
	if err != nil {
		return nil, err
	}
	st.dir = dir
	if st.Bundle, err = certs.EnsureDev(filepath.Join(dir, "certs")); err != nil {
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	scfg := config.DefaultServer()
	scfg.DataDir, scfg.GRPCAddr, scfg.HTTPAddr, scfg.TunnelHTTPAddr = dir, "127.0.0.1:0", "127.0.0.1:0", ""
	scfg.Scopes = []string{"demo/dev"}
	// The client certificate acts as user "operator", an administrator;
	// rate limits off: this measures the platform, not the limiter.
	scfg.AdminUser, scfg.AdminPassword, scfg.RateUser, scfg.RateFunction = "operator", "bench-password-1", 0, 0
	if st.Server, err = server.New(scfg, quiet); err != nil {
		return nil, err
	}
	if err := st.Server.Start(ctx); err != nil {
		return nil, err
	}

	acfg := config.DefaultAgent()
	acfg.ID, acfg.Game, acfg.Env, acfg.DataDir = certs.DevAgentName, "demo", "dev", dir
	acfg.Server, acfg.SDKAddr, acfg.TLSServerName, acfg.GSEAddr = st.Server.GRPCAddr(), "127.0.0.1:0", "localhost", ""
	if opts.AgentTransport != "" {
		acfg.Transport = opts.AgentTransport
	}
	if st.Agent, err = agent.New(acfg, quiet); err != nil {
		return nil, err
	}
	if err := st.Agent.Start(ctx); err != nil {
		return nil, err
	}

	sopts := sdk.Options{AgentAddr: st.Agent.SDKAddr(), InstanceID: "bench-1", Logger: quiet, MaxConcurrent: 256}
	if opts.SDK != nil {
		opts.SDK(&sopts)
	}
	client := sdk.New(sopts)
	if err := register(client); err != nil {
		return nil, err
	}
	go func() { _ = client.Serve(ctx) }()
	for len(st.Server.Registry().Instances("demo", "dev", fn)) == 0 {
		time.Sleep(10 * time.Millisecond)
	}

	ctls, err := tlsconf.ClientConfig(st.Bundle.CACert, st.Bundle.ClientCert, st.Bundle.ClientKey, "localhost")
	if err != nil {
		return nil, err
	}
	if st.Conn, err = grpc.NewClient(st.Server.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(ctls))); err != nil {
		return nil, err
	}
	ok = true
	return st, nil
}

// Close stops everything and removes the temporary directory.
func (s *Stack) Close() {
	if s.Conn != nil {
		_ = s.Conn.Close()
	}
	if s.Agent != nil {
		_ = s.Agent.Shutdown(context.Background())
	}
	if s.Server != nil {
		_ = s.Server.Shutdown(context.Background())
	}
	s.cancel()
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}
