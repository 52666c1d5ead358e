// Package sdk is the Croupier Go SDK for game servers.
//
// A game server creates a Client, registers functions (each with a
// FunctionDescriptor whose params are described by JSON Schema) and calls
// Serve. The client connects to the local croupier agent (127.0.0.1:19090 by
// default, or $CROUPIER_AGENT_ADDR), registers its functions, and runs the
// handlers when operators invoke them. When the agent restarts, the client
// reconnects and registers again by itself.
//
//	c := sdk.New(sdk.Options{})
//	c.Register(&croupierv1.FunctionDescriptor{
//		Id:           "player.get",
//		ParamsSchema: sdk.MustSchema(`{"type":"object","required":["player_id"],"properties":{"player_id":{"type":"string"}}}`),
//	}, sdk.Func(func(ctx context.Context, inv *sdk.Invocation, p GetPlayer) (*Player, error) { ... }))
//	err := c.Serve(ctx)
package sdk

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/schema"
	"github.com/croupier/croupier/internal/tunnel"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// DefaultAgentAddr is where the agent listens for game servers.
const DefaultAgentAddr = "127.0.0.1:19090"

// Options configure a Client. Zero values take the defaults.
type Options struct {
	// AgentAddr is the agent's SDK address, host:port; default
	// $CROUPIER_AGENT_ADDR or 127.0.0.1:19090.
	AgentAddr string
	// InstanceID names this game-server process among the agent's instances;
	// default $CROUPIER_INSTANCE_ID or "<hostname>-<pid>". Operators target
	// it as "<agent>/<instance>".
	InstanceID string
	// Labels describe the instance (region, shard, ...).
	Labels map[string]string
	// MaxConcurrent caps handlers running at once (default 64).
	MaxConcurrent int
	// StreamTransport carries the agent's calls on a gRPC stream instead
	// of the tunnel's conn transport (frames straight on the TCP
	// connection, ~37 % less CPU per round trip under load; see
	// docs/tunnel.md). For agents older than the conn transport.
	StreamTransport bool
	Logger          *slog.Logger
	// TracerProvider, if set, gives every handler run a span that continues
	// the operator's trace (it crosses server and agent in the tunnel
	// frames). Without it the handler's ctx still carries the caller's span
	// context, so spans a handler starts with its own tracer join the trace.
	TracerProvider trace.TracerProvider
}

// Handler runs one invocation and returns its result. Returning an *Error
// (see Errorf) reports a function error with a code; any other error is a
// function error with code FUNCTION_ERROR.
type Handler func(ctx context.Context, inv *Invocation) (*structpb.Struct, error)

// Invocation is one call of a function.
type Invocation struct {
	ID             string
	GameID, Env    string
	FunctionID     string
	IdempotencyKey string
	// Actor is the operator on whose behalf the call runs.
	Actor   string
	Payload *structpb.Struct
	// Config is the function's assignment config set by operators.
	Config map[string]string
}

// Decode unmarshals the payload into v (through JSON).
func (inv *Invocation) Decode(v any) error {
	// encoding/json on AsMap is several times faster than protojson here.
	b, err := json.Marshal(inv.Payload.AsMap())
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// Error is a function error with a machine-readable code.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns a function error with code.
func Errorf(code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Func adapts a typed handler: the payload is decoded into P and the result
// R is encoded as a JSON object.
func Func[P, R any](fn func(ctx context.Context, inv *Invocation, params P) (R, error)) Handler {
	return func(ctx context.Context, inv *Invocation) (*structpb.Struct, error) {
		var p P
		if err := inv.Decode(&p); err != nil {
			return nil, Errorf("BAD_PAYLOAD", "decode payload: %v", err)
		}
		r, err := fn(ctx, inv, p)
		if err != nil {
			return nil, err
		}
		return ToStruct(r)
	}
}

// ToStruct encodes v (a struct or map) as a Struct through JSON.
func ToStruct(v any) (*structpb.Struct, error) {
	if m, ok := v.(map[string]any); ok {
		return structpb.NewStruct(m)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("result must encode as a JSON object: %w", err)
	}
	return structpb.NewStruct(m)
}

// MustSchema parses a JSON Schema document for a descriptor; it panics on
// malformed JSON, so use it with literals.
func MustSchema(js string) *structpb.Struct {
	s := &structpb.Struct{}
	if err := s.UnmarshalJSON([]byte(js)); err != nil {
		panic(fmt.Sprintf("sdk.MustSchema: %v", err))
	}
	return s
}

// Client connects a game server to its agent.
type Client struct {
	opts Options
	log  *slog.Logger

	incarnation string // random per Client: tells the server this process restarted

	mu        sync.RWMutex
	functions map[string]registered
	order     []string
	serving   bool
	serveCtx  context.Context
}

type registered struct {
	desc    *croupierv1.FunctionDescriptor
	handler Handler
	job     JobHandler
}

// New returns a Client.
func New(opts Options) *Client {
	if opts.AgentAddr == "" {
		opts.AgentAddr = os.Getenv("CROUPIER_AGENT_ADDR")
	}
	if opts.AgentAddr == "" {
		opts.AgentAddr = DefaultAgentAddr
	}
	if opts.InstanceID == "" {
		opts.InstanceID = os.Getenv("CROUPIER_INSTANCE_ID")
	}
	if opts.InstanceID == "" {
		host, _ := os.Hostname()
		opts.InstanceID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = 64
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &Client{opts: opts, log: opts.Logger.With("instance", opts.InstanceID), functions: map[string]registered{},
		incarnation: hex.EncodeToString(b[:])}
}

// InstanceID is the id this client registers under.
func (c *Client) InstanceID() string { return c.opts.InstanceID }

// Register adds a function. It refuses a descriptor whose id is invalid or
// whose schemas do not compile, with a message that says why. Functions
// must be registered before Serve.
func (c *Client) Register(d *croupierv1.FunctionDescriptor, h Handler) error {
	if h == nil {
		return errors.New("sdk: nil handler for " + d.GetId())
	}
	return c.add(d, registered{desc: d, handler: h})
}

// RegisterJob adds a long-running function, started with InvokeJob. Its
// handler reports progress through *Job. Invoked synchronously
// (InvokeFunction) it runs with its reports discarded. Plain functions
// registered with Register can be started as jobs too: they report START
// and then DONE or ERROR.
func (c *Client) RegisterJob(d *croupierv1.FunctionDescriptor, h JobHandler) error {
	if h == nil {
		return errors.New("sdk: nil job handler for " + d.GetId())
	}
	discard := func(ctx context.Context, inv *Invocation) (*structpb.Struct, error) {
		run := newJobRun(ctx, inv.ID)
		run.discard = true // nobody watches a synchronous call
		return h(run.ctx, &Job{Invocation: inv, JobID: inv.ID, run: run})
	}
	return c.add(d, registered{desc: d, handler: discard, job: h})
}

func (c *Client) add(d *croupierv1.FunctionDescriptor, r registered) error {
	if err := schema.ValidateDescriptor(d); err != nil {
		return fmt.Errorf("sdk: descriptor %q: %w", d.GetId(), err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.serving {
		return errors.New("sdk: Register must be called before Serve")
	}
	if _, dup := c.functions[d.GetId()]; dup {
		return fmt.Errorf("sdk: function %q registered twice", d.GetId())
	}
	c.functions[d.GetId()] = r
	c.order = append(c.order, d.GetId())
	return nil
}

// Serve connects to the agent and serves invocations until ctx ends,
// reconnecting (and registering again) whenever the agent goes away.
func (c *Client) Serve(ctx context.Context) error {
	c.mu.Lock()
	if c.serving {
		c.mu.Unlock()
		return errors.New("sdk: Serve called twice")
	}
	c.serving, c.serveCtx = true, ctx
	descs := make([]*croupierv1.FunctionDescriptor, 0, len(c.order))
	for _, id := range c.order {
		descs = append(descs, c.functions[id].desc)
	}
	c.mu.Unlock()

	conn, err := grpc.NewClient(c.opts.AgentAddr, append(tunnel.GRPCDialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		return fmt.Errorf("sdk: agent address %s: %w", c.opts.AgentAddr, err)
	}
	defer conn.Close()
	local := agentv1.NewLocalAgentServiceClient(conn)

	js := &jobs{c: c, running: map[string]*jobRun{}, report: func(ctx context.Context, r *agentv1.ReportJobEventsRequest) (*agentv1.ReportJobEventsResponse, error) {
		return local.ReportJobEvents(ctx, r)
	}}
	defer js.wg.Wait()
	handlers := tunnel.NewHandlerRegistry()
	for _, err := range []error{
		tunnel.RegisterVT(handlers, func(ctx context.Context, req *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
			fillValues(req.GetPayload())
			return c.invoke(ctx, req)
		}, checkInvokeRequest),
		tunnel.Register(handlers, js.start),
		tunnel.Register(handlers, js.cancelJob),
	} {
		if err != nil {
			return err
		}
	}
	newClient := func(opts tunnel.ClientOptions) *tunnel.Client {
		var d net.Dialer
		return tunnel.NewConnClient(func(ctx context.Context) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", c.opts.AgentAddr)
		}, opts)
	}
	if c.opts.StreamTransport {
		newClient = func(opts tunnel.ClientOptions) *tunnel.Client { return tunnel.NewGRPCClient(conn, opts) }
	}
	client := newClient(tunnel.ClientOptions{
		Name: c.opts.InstanceID, Handlers: handlers, MaxInFlight: c.opts.MaxConcurrent,
		Logger: c.log, MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second,
		TracerProvider: c.opts.TracerProvider,
		OnConnected: func(ctx context.Context) {
			// Retry until it works or this connection ends: an instance
			// whose tunnel is up but not registered would never be called.
			backoff := 100 * time.Millisecond
			for {
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				resp, err := local.RegisterInstance(rctx, &agentv1.RegisterInstanceRequest{
					InstanceId: c.opts.InstanceID, Functions: descs, Labels: c.opts.Labels, Incarnation: c.incarnation,
				})
				cancel()
				if err == nil {
					c.log.Info("registered with agent", "agent", resp.GetAgentId(), "game", resp.GetGameId(), "env", resp.GetEnv(), "functions", len(descs))
					return
				}
				if status.Code(err) == codes.InvalidArgument {
					c.log.Error("the agent refused this instance's functions", "err", err)
					return
				}
				c.log.Error("register with agent failed; retrying", "err", err, "retry_in", backoff)
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 5*time.Second)
			}
		},
	})
	err = client.Run(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func invocationOf(req *agentv1.InvokeRequest) *Invocation {
	inv := &Invocation{
		ID: req.GetInvocationId(), GameID: req.GetGameId(), Env: req.GetEnv(), FunctionID: req.GetFunctionId(),
		IdempotencyKey: req.GetIdempotencyKey(), Actor: req.GetActor(), Payload: req.GetPayload(), Config: req.GetConfig(),
	}
	if inv.Payload == nil {
		inv.Payload = &structpb.Struct{}
	}
	return inv
}

func (c *Client) invoke(ctx context.Context, req *agentv1.InvokeRequest) (resp *agentv1.InvokeResponse, err error) {
	c.mu.RLock()
	fn, ok := c.functions[req.GetFunctionId()]
	c.mu.RUnlock()
	if !ok {
		return &agentv1.InvokeResponse{Success: false, ErrorCode: "UNKNOWN_FUNCTION",
			Error: "this instance does not serve " + req.GetFunctionId()}, nil
	}
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("handler panicked", "function", req.GetFunctionId(), "panic", r, "stack", string(debug.Stack()))
			resp, err = &agentv1.InvokeResponse{Success: false, ErrorCode: "PANIC", Error: fmt.Sprint("handler panicked: ", r)}, nil
		}
	}()
	inv := invocationOf(req)
	result, herr := fn.handler(ctx, inv)
	if herr != nil {
		var fe *Error
		if errors.As(herr, &fe) {
			return &agentv1.InvokeResponse{Success: false, Error: fe.Message, ErrorCode: fe.Code}, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return &agentv1.InvokeResponse{Success: false, Error: herr.Error(), ErrorCode: "FUNCTION_ERROR"}, nil
	}
	return &agentv1.InvokeResponse{Success: true, Result: result}, nil
}
