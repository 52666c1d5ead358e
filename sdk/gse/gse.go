// Package gse is a helper for game servers that run under a GSE-compatible
// agent (the Croupier agent, or Tencent GSE itself): it serves the
// callbacks (GameServerGrpcSdkService) on a free port, calls ProcessReady,
// activates sessions handed to the process, and wraps the GSE calls with
// the pid/requestId metadata every call needs.
//
// It speaks only the GSE protos (tencentcloud.gse.grpcsdk), so a game using
// it runs under GSE unchanged, and code written against the raw protos can
// move to it piecemeal.
//
//	srv, err := gse.New(gse.Options{ClientPort: 7000, LogPaths: []string{"/var/log/game.log"},
//		Handlers: gse.Handlers{
//			OnStartGameServerSession: func(ctx context.Context, s *grpcsdk.GameServerSession) error {
//				return world.Load(s.GetGameServerSessionData()) // activated when this returns nil
//			},
//		}})
//	if err := srv.Start(ctx); err != nil { ... }     // ProcessReady
//	...
//	err = srv.AcceptPlayerSession(ctx, playerSessionID) // when a player connects
//	<-srv.Done()                                        // OnProcessTerminate: session ended, ProcessEnding sent
package gse

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/croupier/croupier/api/tencentcloud/gse/grpcsdk"
	"github.com/croupier/croupier/internal/localpeer"
)

// DefaultAgentAddr is the agent's GSE endpoint (GSE's LOCAL_ADDRESS).
const DefaultAgentAddr = "127.0.0.1:5758"

// AgentAddrEnv overrides DefaultAgentAddr; the Croupier agent sets it for
// the processes it launches.
const AgentAddrEnv = "GSE_SDK_ADDR"

// Handlers are the game's callbacks; nil ones take the default.
type Handlers struct {
	// OnHealthCheck reports the process's health (default: healthy).
	OnHealthCheck func(ctx context.Context) bool
	// OnStartGameServerSession prepares a session handed to the process.
	// Returning nil activates it (ActivateGameServerSession, from inside
	// the callback as GSE expects); an error refuses it. Default: accept.
	OnStartGameServerSession func(ctx context.Context, s *grpcsdk.GameServerSession) error
	// OnProcessTerminate is told that the process must end by
	// terminationTime. The helper then ends the current session
	// (TerminateGameServerSession), calls ProcessEnding and closes Done.
	OnProcessTerminate func(ctx context.Context, terminationTime time.Time)
}

// Options configure a Server. Zero values take the defaults.
type Options struct {
	// AgentAddr is the agent's GSE address: default $GSE_SDK_ADDR, else
	// 127.0.0.1:5758.
	AgentAddr string
	// ListenAddr is where the callbacks are served (default 127.0.0.1:0).
	ListenAddr string
	// ClientPort is the port players connect to (ProcessReady.clientPort).
	ClientPort int32
	// LogPaths are the files the agent keeps after the process ends.
	LogPaths []string
	// PID is the pid sent as metadata (default os.Getpid()); set it only
	// to run several game servers in one OS process (tests, benchmarks).
	PID int
	// CallTimeout bounds each call to the agent (default 15 s).
	CallTimeout time.Duration
	Handlers
	Logger *slog.Logger
}

// Error is a GseResponse that was not OK.
type Error struct {
	Method  string
	Status  grpcsdk.GseResponse_Status
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("gse %s: %s: %s", e.Method, e.Status, e.Message) }

// Server is a game process's side of GSE.
type Server struct {
	grpcsdk.UnimplementedGameServerGrpcSdkServiceServer
	opts Options
	pid  string
	log  *slog.Logger

	conn *grpc.ClientConn
	gse  grpcsdk.GseGrpcSdkServiceClient
	lis  net.Listener
	srv  *grpc.Server

	mu       sync.Mutex
	session  *grpcsdk.GameServerSession
	done     chan struct{}
	doneOnce sync.Once
	wg       sync.WaitGroup
}

// New checks opts and dials the agent (lazily: nothing is sent until
// Start).
func New(opts Options) (*Server, error) {
	if opts.AgentAddr == "" {
		opts.AgentAddr = os.Getenv(AgentAddrEnv)
	}
	if opts.AgentAddr == "" {
		opts.AgentAddr = DefaultAgentAddr
	}
	if opts.ListenAddr == "" {
		opts.ListenAddr = "127.0.0.1:0"
	}
	if opts.PID == 0 {
		opts.PID = os.Getpid()
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 15 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ClientPort < 0 || opts.ClientPort > 65535 {
		return nil, fmt.Errorf("gse: ClientPort %d is not a port", opts.ClientPort)
	}
	// WaitForReady: calls made while the agent restarts wait for it.
	conn, err := grpc.NewClient(opts.AgentAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)))
	if err != nil {
		return nil, fmt.Errorf("gse: agent address %s: %w", opts.AgentAddr, err)
	}
	return &Server{opts: opts, pid: strconv.Itoa(opts.PID), log: opts.Logger, conn: conn,
		gse: grpcsdk.NewGseGrpcSdkServiceClient(conn), done: make(chan struct{})}, nil
}

// Start serves the callbacks and calls ProcessReady; the agent may hand
// the process a session as soon as it returns.
func (s *Server) Start(ctx context.Context) error {
	lis, err := net.Listen("tcp", s.opts.ListenAddr)
	if err != nil {
		return fmt.Errorf("gse: listen for callbacks on %s: %w", s.opts.ListenAddr, err)
	}
	// Only the agent calls back (it runs as this process's user, or as
	// root): another user of the host must not end the process or hand
	// it a session of their own.
	s.lis = localpeer.NewListener(lis, "GSE callback", nil, s.log)
	s.srv = grpc.NewServer()
	grpcsdk.RegisterGameServerGrpcSdkServiceServer(s.srv, s)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.srv.Serve(s.lis)
	}()
	port := int32(lis.Addr().(*net.TCPAddr).Port)
	err = s.check(ctx, "ProcessReady", func(ctx context.Context) (*grpcsdk.GseResponse, error) {
		return s.gse.ProcessReady(ctx, &grpcsdk.ProcessReadyRequest{LogPathsToUpload: s.opts.LogPaths, ClientPort: s.opts.ClientPort, GrpcPort: port})
	})
	if err != nil {
		s.Close()
		return err
	}
	return nil
}

// GRPCPort is the port of the callback server (after Start).
func (s *Server) GRPCPort() int { return s.lis.Addr().(*net.TCPAddr).Port }

// Close stops serving callbacks and closes the connection to the agent.
// It does not call ProcessEnding; see End.
func (s *Server) Close() {
	if s.srv != nil {
		s.srv.Stop()
	}
	s.wg.Wait()
	_ = s.conn.Close()
}

// Done is closed once the process has ended its session and sent
// ProcessEnding after OnProcessTerminate (or after End).
func (s *Server) Done() <-chan struct{} { return s.done }

// Session returns the session the process hosts, or nil.
func (s *Server) Session() *grpcsdk.GameServerSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.session
}

// call runs one GSE call with fresh metadata and the call timeout.
func (s *Server) call(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "pid", s.pid, "requestId", requestID())
	return fn(ctx)
}

// check runs a call whose answer is a GseResponse and turns a non-OK
// status into an *Error.
func (s *Server) check(ctx context.Context, method string, fn func(ctx context.Context) (*grpcsdk.GseResponse, error)) error {
	return s.call(ctx, func(ctx context.Context) error {
		resp, err := fn(ctx)
		if err != nil {
			return fmt.Errorf("gse %s: %w", method, err)
		}
		if resp.GetStatus() != grpcsdk.GseResponse_OK {
			return &Error{Method: method, Status: resp.GetStatus(), Message: resp.GetErrorMessage()}
		}
		return nil
	})
}

// requestID is a random UUID v4, as GSE's samples send.
func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// errNoSession is returned by calls that need the current session.
var errNoSession = errors.New("gse: the process hosts no game server session")
