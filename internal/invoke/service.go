// Package invoke runs InvokeFunction: it validates the payload against the
// function's JSON Schema, applies the function's assignment, deduplicates by
// idempotency key, routes the call to game-server instances (lb, broadcast,
// targeted, hash) and sends it over the agents' tunnels.
package invoke

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/registry"
	"github.com/croupier/croupier/internal/schema"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/telemetry"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Registry is what the service reads of the live registry.
type Registry interface {
	Descriptor(game, env, fn string) (*croupierv1.FunctionDescriptor, bool)
	Instances(game, env, fn string) []registry.InstanceRef
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

// Idempotency remembers the first result of a call per key.
type Idempotency interface {
	Begin(ctx context.Context, scopeKey, key, requestHash string, ttl time.Duration) (*store.Record, bool, error)
	Complete(ctx context.Context, scopeKey, key string, response []byte) error
	Release(ctx context.Context, scopeKey, key string) error
}

// Config tunes the service.
type Config struct {
	DefaultTimeout    time.Duration
	MaxTimeout        time.Duration
	IdempotencyWindow time.Duration
	Logger            *slog.Logger
	// Metrics receives invoke latency by function and routing mode; nil
	// records nothing.
	Metrics *telemetry.Metrics
}

// Deps are the service's collaborators.
type Deps struct {
	Registry    Registry
	Caller      Caller
	Assignments Assignments
	Scopes      Scopes
	Idempotency Idempotency
}

// Service implements function invocation, independent of any transport.
type Service struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	schemas *schema.Cache
	router  *router
}

// New returns a Service.
func New(cfg Config, deps Deps) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg, deps: deps, log: cfg.Logger, schemas: schema.NewCache(1024), router: newRouter()}
}

// Call is a validated, routed invocation ready to be sent.
type Call struct {
	Game, Env, Function string
	Descriptor          *croupierv1.FunctionDescriptor
	Payload             *structpb.Struct
	Config              map[string]string
	Targets             []registry.InstanceRef
	Timeout             time.Duration
	Options             *croupierv1.InvokeOptions
}

// Prepare checks scope, function, assignment, payload and options and picks
// the target instances. Nothing has been sent when it returns.
func (s *Service) Prepare(ctx context.Context, game, env, fn string, payload *structpb.Struct, opts *croupierv1.InvokeOptions) (*Call, error) {
	if game == "" || env == "" || fn == "" {
		return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "game_id, env and function_id are required")
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
	desc, ok := s.deps.Registry.Descriptor(game, env, fn)
	if !ok {
		return nil, apierr.New(codes.NotFound, apierr.CodeFunctionNotFound,
			fmt.Sprintf("function %s is not registered in %s/%s (see `croupier registry list`)", fn, game, env), "function_id", fn)
	}
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
	if err := s.validate(desc, payload); err != nil {
		return nil, err
	}
	timeout, err := s.timeout(desc, opts)
	if err != nil {
		return nil, err
	}
	live := s.deps.Registry.Instances(game, env, fn)
	if len(live) == 0 {
		return nil, apierr.New(codes.Unavailable, apierr.CodeNoInstance,
			fmt.Sprintf("no live game-server instance serves %s in %s/%s", fn, game, env), "function_id", fn)
	}
	targets, err := s.router.pick(opts.GetRoutingMode(), opts.GetTargetAgent(), opts.GetHashKey(), live)
	if err != nil {
		return nil, err
	}
	return &Call{Game: game, Env: env, Function: fn, Descriptor: desc, Payload: payload, Config: cfg,
		Targets: targets, Timeout: timeout, Options: opts}, nil
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

// Execute sends a prepared call, deduplicating by its idempotency key.
func (s *Service) Execute(ctx context.Context, call *Call, actor string) (_ *croupierv1.InvokeFunctionResponse, err error) {
	if s.cfg.Metrics != nil {
		defer s.observe(call, time.Now(), &err)
	}
	key := call.Options.GetIdempotencyKey()
	if key == "" {
		return s.send(ctx, call, actor, "")
	}
	scopeKey := call.Game + "/" + call.Env + "/" + call.Function
	hash, err := requestHash(call)
	if err != nil {
		return nil, s.internal(err)
	}
	rec, created, err := s.deps.Idempotency.Begin(ctx, scopeKey, key, hash, s.cfg.IdempotencyWindow)
	if err == nil && !created && rec.State != store.RecordDone && time.Since(rec.CreatedAt) > s.cfg.MaxTimeout+time.Minute {
		// The call that claimed the key cannot still be running (its server
		// died mid-call): free the key and claim it for this call.
		s.log.Warn("reclaiming stale idempotency key", "key", key, "claimed_at", rec.CreatedAt)
		if err = s.deps.Idempotency.Release(ctx, scopeKey, key); err == nil {
			rec, created, err = s.deps.Idempotency.Begin(ctx, scopeKey, key, hash, s.cfg.IdempotencyWindow)
		}
	}
	if err != nil {
		return nil, s.internal(err)
	}
	if !created {
		return s.replay(rec, hash, key)
	}
	resp, err := s.send(ctx, call, actor, key)
	if err != nil {
		// The call did not complete: free the key so a retry can run it.
		if rerr := s.deps.Idempotency.Release(context.WithoutCancel(ctx), scopeKey, key); rerr != nil {
			s.log.Error("release idempotency key", "key", key, "err", rerr)
		}
		return nil, err
	}
	b, err := proto.Marshal(resp)
	if err != nil {
		return nil, s.internal(err)
	}
	if err := s.deps.Idempotency.Complete(context.WithoutCancel(ctx), scopeKey, key, b); err != nil {
		s.log.Error("complete idempotency key", "key", key, "err", err)
	}
	return resp, nil
}

// observe records the latency of an Execute that began at began.
func (s *Service) observe(c *Call, began time.Time, err *error) {
	code := codes.OK
	if *err != nil {
		code = status.Code(*err)
	}
	s.cfg.Metrics.ObserveInvoke(c.Game, c.Env, c.Function, RoutingMode(c.Options), code.String(), time.Since(began))
}

func (s *Service) replay(rec *store.Record, hash, key string) (*croupierv1.InvokeFunctionResponse, error) {
	if rec.RequestHash != hash {
		return nil, apierr.New(codes.AlreadyExists, apierr.CodeIdempotencyConflict,
			"idempotency key "+key+" was already used with a different payload or routing; use a new key", "idempotency_key", key)
	}
	if rec.State != store.RecordDone {
		return nil, apierr.New(codes.Aborted, apierr.CodeIdempotencyPending,
			"a call with idempotency key "+key+" is still running; retry shortly to get its result", "idempotency_key", key)
	}
	resp := &croupierv1.InvokeFunctionResponse{}
	if err := proto.Unmarshal(rec.Response, resp); err != nil {
		return nil, s.internal(fmt.Errorf("decode stored response for key %s: %w", key, err))
	}
	return resp, nil
}

// RoutingMode is the options' routing mode with the default spelled out, so
// "" and "lb" are the same request.
func RoutingMode(o *croupierv1.InvokeOptions) string {
	if m := o.GetRoutingMode(); m != "" {
		return m
	}
	return ModeLB
}

// requestHash identifies what a key was first used for: function, payload
// (canonical JSON: encoding/json sorts map keys) and routing.
func requestHash(c *Call) (string, error) {
	b, err := json.Marshal(c.Payload.AsMap())
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00", c.Function, RoutingMode(c.Options), c.Options.GetTargetAgent(), c.Options.GetHashKey(), b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// send calls the call's targets and shapes the response.
func (s *Service) send(ctx context.Context, c *Call, actor, key string) (*croupierv1.InvokeFunctionResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if c.Options.GetRoutingMode() != ModeBroadcast {
		in := c.Targets[0]
		r, err := s.one(ctx, c, in, actor, key)
		if err != nil {
			return nil, err
		}
		return &croupierv1.InvokeFunctionResponse{Success: r.GetSuccess(), Result: r.GetResult(), Error: r.GetError(),
			ErrorCode: r.GetErrorCode(), Instance: in.Key()}, nil
	}
	results := make([]*croupierv1.InstanceResult, len(c.Targets))
	var wg sync.WaitGroup
	for i, in := range c.Targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := &croupierv1.InstanceResult{Instance: in.Key()}
			r, err := s.one(ctx, c, in, actor, key)
			if err != nil {
				st := status.Convert(err)
				res.Error, res.ErrorCode = st.Message(), st.Code().String()
				if info := apierr.Info(err); info != nil && info.GetCode() != "" {
					res.ErrorCode = info.GetCode() // the stable catalog code, e.g. NO_INSTANCE
				}
			} else {
				res.Success, res.Result, res.Error, res.ErrorCode = r.GetSuccess(), r.GetResult(), r.GetError(), r.GetErrorCode()
			}
			results[i] = res
		}()
	}
	wg.Wait()
	sort.Slice(results, func(i, j int) bool { return results[i].Instance < results[j].Instance })
	resp := &croupierv1.InvokeFunctionResponse{Success: true, Results: results}
	failed := 0
	for _, r := range results {
		if !r.Success {
			failed++
		}
	}
	if failed > 0 {
		resp.Success = false
		resp.ErrorCode = "PARTIAL_FAILURE"
		resp.Error = fmt.Sprintf("%d of %d instances failed", failed, len(results))
	}
	return resp, nil
}

func (s *Service) one(ctx context.Context, c *Call, in registry.InstanceRef, actor, key string) (*agentv1.InvokeResponse, error) {
	s.router.inflight.Inc(in.Key())
	defer s.router.inflight.Dec(in.Key())
	resp, err := s.deps.Caller.Invoke(ctx, in.Agent, &agentv1.InvokeRequest{
		GameId: c.Game, Env: c.Env, FunctionId: c.Function, InstanceId: in.Instance,
		Payload: c.Payload, IdempotencyKey: key, Config: c.Config, Actor: actor,
	})
	if err != nil {
		if ctx.Err() != nil && status.Code(err) != codes.Unavailable {
			return nil, apierr.FromContext(ctx.Err())
		}
		return nil, err
	}
	return resp, nil
}

func (s *Service) internal(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return apierr.FromContext(err)
	}
	return apierr.Internal(s.log, err)
}
