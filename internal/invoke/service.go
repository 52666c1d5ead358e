// Package invoke runs InvokeFunction: it validates the payload against the
// function's JSON Schema, applies the function's assignment, deduplicates by
// idempotency key, routes the call to game-server instances (lb, broadcast,
// targeted, hash) and sends it over the agents' tunnels.
package invoke

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/apierr/storeerr"
	"github.com/croupier/croupier/internal/idempotency"
	"github.com/croupier/croupier/internal/registry"
	"github.com/croupier/croupier/internal/schema"
	"github.com/croupier/croupier/internal/telemetry"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// Registry is what the service reads of the live registry: the function's
// immutable routing snapshot, read without locks.
type Registry interface {
	Route(game, env, fn string) (*registry.Route, bool)
}

// Caller sends one invocation to an agent over its tunnel.
type Caller interface {
	Invoke(ctx context.Context, agent string, req *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error)
}

// Assignments says whether a function is enabled and with which config.
type Assignments interface {
	Assignment(ctx context.Context, game, env, fn string) (enabled bool, config map[string]string, err error)
}

// Scopes says whether a game/env pair is declared.
type Scopes interface {
	Declared(ctx context.Context, game, env string) (bool, error)
}

// Idempotency remembers the first outcome of a call per key.
type Idempotency = idempotency.Store

// Config tunes the service.
type Config struct {
	DefaultTimeout    time.Duration
	MaxTimeout        time.Duration
	IdempotencyWindow time.Duration
	Logger            *slog.Logger
	// Metrics receives invoke latency by function and routing mode; nil
	// records nothing.
	Metrics *telemetry.Metrics
	// BroadcastWorkers bounds the calls one broadcast has in flight
	// (DefaultBroadcastWorkers when <= 0).
	BroadcastWorkers int
}

// DefaultBroadcastWorkers is how many instances one broadcast calls at once.
const DefaultBroadcastWorkers = 256

// Deps are the service's collaborators.
type Deps struct {
	Registry    Registry
	Caller      Caller
	Assignments Assignments
	Scopes      Scopes
	Idempotency Idempotency
	// Remote, when set (several server nodes), reports whether an agent's
	// tunnel ends on another node; lb prefers this node's instances while
	// they are no busier (see pick).
	Remote func(agent string) bool
}

// Service implements function invocation, independent of any transport.
type Service struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	schemas *schema.Cache
	keys    *idempotency.Keeper
}

// New returns a Service.
func New(cfg Config, deps Deps) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BroadcastWorkers <= 0 {
		cfg.BroadcastWorkers = DefaultBroadcastWorkers
	}
	keys := idempotency.New(idempotency.Config{Window: cfg.IdempotencyWindow, StaleAfter: cfg.MaxTimeout + time.Minute, Logger: cfg.Logger},
		deps.Idempotency)
	return &Service{cfg: cfg, deps: deps, log: cfg.Logger, schemas: schema.NewCache(1024), keys: keys}
}

// Call is a validated, routed invocation ready to be sent.
type Call struct {
	Game, Env, Function string
	Descriptor          *croupierv1.FunctionDescriptor
	Payload             *structpb.Struct
	Config              map[string]string
	Targets             []registry.InstanceRef
	// routes are Targets' routing entries (their in-flight counters), in
	// the same order; nil for a Call built elsewhere (tests, fakes).
	routes  []*registry.RouteInstance
	Timeout time.Duration
	Options *croupierv1.InvokeOptions
}

// Prepare checks scope, function, assignment, payload and options and picks
// the target instances. Nothing has been sent when it returns.
func (s *Service) Prepare(ctx context.Context, game, env, fn string, payload *structpb.Struct, opts *croupierv1.InvokeOptions) (*Call, error) {
	if game == "" || env == "" || fn == "" {
		return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "game_id, env and function_id are required")
	}
	if err := idempotency.CheckKey(opts.GetIdempotencyKey()); err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &croupierv1.InvokeOptions{}
	}
	if ok, err := s.deps.Scopes.Declared(ctx, game, env); err != nil {
		return nil, s.internal(err)
	} else if !ok {
		return nil, apierr.New(codes.NotFound, apierr.CodeUnknownScope,
			fmt.Sprintf("scope %s/%s is not declared on this server (declare it with --scopes)", game, env), "game_id", game, "env", env)
	}
	rt, ok := s.deps.Registry.Route(game, env, fn)
	if !ok {
		return nil, apierr.New(codes.NotFound, apierr.CodeFunctionNotFound,
			fmt.Sprintf("function %s is not registered in %s/%s (see `croupier registry list`)", fn, game, env), "function_id", fn)
	}
	desc := rt.Descriptor
	enabled, cfg, err := s.deps.Assignments.Assignment(ctx, game, env, fn)
	if err != nil {
		return nil, s.internal(err)
	}
	if !enabled {
		return nil, apierr.New(codes.FailedPrecondition, apierr.CodeFunctionDisabled,
			fmt.Sprintf("function %s is disabled in %s/%s by its assignment", fn, game, env), "function_id", fn)
	}
	if payload == nil {
		payload = &structpb.Struct{Fields: map[string]*structpb.Value{}}
	}
	if err := schema.CheckDepth(payload, schema.MaxDepth); err != nil {
		// Before the validator, the hash and the audit walk the document.
		return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidPayload, err.Error(),
			"max_depth", fmt.Sprint(schema.MaxDepth))
	}
	if err := s.validate(desc, payload); err != nil {
		return nil, err
	}
	timeout, err := s.timeout(desc, opts)
	if err != nil {
		return nil, err
	}
	if len(rt.Instances) == 0 {
		return nil, apierr.New(codes.Unavailable, apierr.CodeNoInstance,
			fmt.Sprintf("no live game-server instance serves %s in %s/%s", fn, game, env), "function_id", fn)
	}
	targets, err := pick(opts.GetRoutingMode(), opts.GetTargetAgent(), opts.GetHashKey(), rt, s.deps.Remote)
	if err != nil {
		return nil, err
	}
	return &Call{Game: game, Env: env, Function: fn, Descriptor: desc, Payload: payload, Config: cfg,
		Targets: refs(targets), routes: targets, Timeout: timeout, Options: opts}, nil
}

func (s *Service) validate(desc *croupierv1.FunctionDescriptor, payload *structpb.Struct) error {
	sch, err := s.schemas.Get(desc.GetParamsSchema())
	if err != nil {
		// Descriptors are validated at registration, so this is our bug.
		return s.internal(fmt.Errorf("compile params schema of %s: %w", desc.GetId(), err))
	}
	if verr := sch.Validate(payload.AsMap()); verr != nil {
		ptr := verr.Pointer
		return apierr.New(codes.InvalidArgument, apierr.CodeInvalidPayload,
			fmt.Sprintf("payload does not match the params schema of %s at %q: %s", desc.GetId(), ptr, verr.Message),
			"pointer", ptr, "reason", verr.Message)
	}
	return nil
}

func (s *Service) timeout(desc *croupierv1.FunctionDescriptor, opts *croupierv1.InvokeOptions) (time.Duration, error) {
	t := s.cfg.DefaultTimeout
	if d := desc.GetSemantics().GetTimeoutSeconds(); d > 0 {
		t = time.Duration(d) * time.Second
	}
	if opts.GetTimeout() < 0 {
		return 0, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "options.timeout must not be negative", "field", "options.timeout")
	}
	if opts.GetTimeout() > 0 {
		t = time.Duration(opts.GetTimeout()) * time.Second
		if t > s.cfg.MaxTimeout {
			return 0, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument,
				fmt.Sprintf("options.timeout %ds exceeds the server maximum %s", opts.GetTimeout(), s.cfg.MaxTimeout),
				"field", "options.timeout", "max_seconds", fmt.Sprint(int(s.cfg.MaxTimeout.Seconds())))
		}
	}
	return min(t, s.cfg.MaxTimeout), nil
}

// Invoke runs InvokeFunction for actor: Prepare, then Execute.
func (s *Service) Invoke(ctx context.Context, req *croupierv1.InvokeFunctionRequest, actor string) (*croupierv1.InvokeFunctionResponse, error) {
	call, err := s.Prepare(ctx, req.GetGameId(), req.GetEnv(), req.GetFunctionId(), req.GetPayload(), req.GetOptions())
	if err != nil {
		return nil, err
	}
	return s.Execute(ctx, call, actor)
}

// Execute sends a prepared call, deduplicating by its idempotency key (per
// caller: actor is the principal's identity).
func (s *Service) Execute(ctx context.Context, call *Call, actor string) (_ *croupierv1.InvokeFunctionResponse, err error) {
	if s.cfg.Metrics != nil {
		defer s.observe(call, time.Now(), &err)
	}
	key := call.Options.GetIdempotencyKey()
	if key == "" {
		return s.send(ctx, call, actor, "")
	}
	resp := &croupierv1.InvokeFunctionResponse{}
	claim, err := s.keys.Begin(ctx, idempotency.Request{Op: "invoke", Caller: actor, Game: call.Game, Env: call.Env,
		Function: call.Function, Options: call.Options, Payload: call.Payload}, resp)
	if err != nil {
		return nil, err
	}
	if claim.Replayed {
		return resp, nil
	}
	resp, err = s.send(ctx, call, actor, key)
	switch {
	case err == nil:
		claim.Complete(ctx, resp)
	case notRun(err):
		claim.Release(ctx) // nothing reached a game server: a retry may run it
	default:
		claim.Fail(ctx, err) // it may have run: a retry gets this outcome, not a second run
	}
	return resp, err
}

// observe records the latency of an Execute that began at began.
func (s *Service) observe(c *Call, began time.Time, err *error) {
	code := codes.OK
	if *err != nil {
		code = status.Code(*err)
	}
	s.cfg.Metrics.ObserveInvoke(c.Game, c.Env, c.Function, RoutingMode(c.Options), code.String(), time.Since(began))
}

// notRun reports whether err proves the function did not run: the tunnel
// never sent the request, or the agent refused it before passing it to a
// game server (no such instance, function disabled on the agent).
func notRun(err error) bool {
	if idempotency.NotSent(err) {
		return true
	}
	switch apierr.Info(err).GetCode() {
	case apierr.CodeNoInstance, apierr.CodeFunctionDisabled:
		return true
	}
	return false
}

// RoutingMode is the options' routing mode with the default spelled out, so
// "" and "lb" are the same request.
func RoutingMode(o *croupierv1.InvokeOptions) string { return idempotency.RoutingMode(o) }

// send calls the call's targets and shapes the response.
func (s *Service) send(ctx context.Context, c *Call, actor, key string) (*croupierv1.InvokeFunctionResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if c.Options.GetRoutingMode() != ModeBroadcast {
		in := c.Targets[0]
		r, err := s.one(ctx, c, 0, actor, key)
		if err != nil {
			return nil, err
		}
		out := &croupierv1.InvokeFunctionResponse{Success: r.GetSuccess(), Result: r.GetResult(), Error: r.GetError(),
			ErrorCode: r.GetErrorCode(), Instance: in.Key()}
		if raw := encodedResult(r); len(raw) > 0 {
			out.ProtoReflect().SetUnknown(raw) // the result still encoded (see encoded.go)
		}
		return out, nil
	}
	results, failed := s.broadcast(ctx, c, actor, key)
	resp := &croupierv1.InvokeFunctionResponse{Success: true, Results: results}
	if failed > 0 {
		resp.Success = false
		resp.ErrorCode = apierr.ResultPartialFailure
		resp.Error = fmt.Sprintf("%d of %d instances failed", failed, len(results))
	}
	return resp, nil
}

// broadcast calls every target with at most cfg.BroadcastWorkers calls in
// flight, recording each result as it arrives, and returns the results
// sorted by instance with the number that failed.
func (s *Service) broadcast(ctx context.Context, c *Call, actor, key string) ([]*croupierv1.InstanceResult, int) {
	results := make([]*croupierv1.InstanceResult, len(c.Targets))
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range min(s.cfg.BroadcastWorkers, len(c.Targets)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(c.Targets) {
					return
				}
				in := c.Targets[i]
				res := &croupierv1.InstanceResult{Instance: in.Key()}
				r, err := s.one(ctx, c, i, actor, key)
				if err != nil {
					st := status.Convert(err)
					res.Error, res.ErrorCode = st.Message(), st.Code().String()
					if info := apierr.Info(err); info != nil && info.GetCode() != "" {
						res.ErrorCode = info.GetCode() // the stable catalog code, e.g. NO_INSTANCE
					}
				} else {
					res.Success, res.Result, res.Error, res.ErrorCode = r.GetSuccess(), r.GetResult(), r.GetError(), r.GetErrorCode()
					// The result stays encoded, as for one instance (encoded.go).
					if raw := encodedResult(r); len(raw) > 0 {
						res.ProtoReflect().SetUnknown(retag(raw, instanceResultField))
					}
				}
				if !res.Success {
					failed.Add(1)
				}
				results[i] = res
			}
		})
	}
	wg.Wait()
	slices.SortFunc(results, func(a, b *croupierv1.InstanceResult) int { return strings.Compare(a.Instance, b.Instance) })
	return results, int(failed.Load())
}

// refs returns the routing entries' names.
func refs(ins []*registry.RouteInstance) []registry.InstanceRef {
	out := make([]registry.InstanceRef, len(ins))
	for i, in := range ins {
		out[i] = in.InstanceRef
	}
	return out
}

// one calls target i of c, counting the call in flight on its instance.
func (s *Service) one(ctx context.Context, c *Call, i int, actor, key string) (*agentv1.InvokeResponse, error) {
	in := c.Targets[i]
	if i < len(c.routes) {
		c.routes[i].Begin()
		defer c.routes[i].End()
	}
	resp, err := s.deps.Caller.Invoke(ctx, in.Agent, &agentv1.InvokeRequest{
		GameId: c.Game, Env: c.Env, FunctionId: c.Function, InstanceId: in.Instance,
		Payload: c.Payload, IdempotencyKey: key, Config: c.Config, Actor: actor,
	})
	if err != nil {
		if ctx.Err() != nil && status.Code(err) != codes.Unavailable {
			cerr := apierr.FromContext(ctx.Err())
			if idempotency.NotSent(err) {
				cerr = idempotency.MarkNotSent(cerr)
			}
			return nil, cerr
		}
		return nil, err
	}
	return resp, nil
}

func (s *Service) internal(err error) error {
	return storeerr.ToStatus(context.Background(), s.log, err)
}
