package invoke_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/control"
	"github.com/croupier/croupier/internal/invoke"
	"github.com/croupier/croupier/internal/registry"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	game = "demo"
	env  = "dev"
	// fnGrant has a schema with a required integer >= 1, for payload errors.
	fnGrant = "player.grant"
)

var grantSchema = mustStruct(map[string]any{
	"type":     "object",
	"required": []any{"player_id", "count"},
	"properties": map[string]any{
		"player_id": map[string]any{"type": "string"},
		"count":     map[string]any{"type": "integer", "minimum": 1},
	},
})

func mustStruct(m map[string]any) *structpb.Struct {
	s, err := structpb.NewStruct(m)
	if err != nil {
		panic(err)
	}
	return s
}

func grantPayload(count int) *structpb.Struct {
	return mustStruct(map[string]any{"player_id": "p1", "count": count})
}

// callRecord is one invocation the fake caller received.
type callRecord struct {
	agent    string
	req      *agentv1.InvokeRequest
	deadline time.Time
	hasDL    bool
}

func (c callRecord) key() string { return c.agent + "/" + c.req.GetInstanceId() }

// fakeCaller stands in for the tunnel (a network boundary). It records every
// call and answers with answer, by default a success naming the instance.
type fakeCaller struct {
	mu     sync.Mutex
	calls  []callRecord
	answer func(ctx context.Context, agent string, req *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error)
	// entered receives the instance key of every call as it starts, when
	// non-nil (buffered by the test).
	entered chan string
}

func (f *fakeCaller) Invoke(ctx context.Context, agent string, req *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
	dl, ok := ctx.Deadline()
	rec := callRecord{agent: agent, req: req, deadline: dl, hasDL: ok}
	f.mu.Lock()
	f.calls = append(f.calls, rec)
	answer, entered := f.answer, f.entered
	f.mu.Unlock()
	if entered != nil {
		entered <- rec.key()
	}
	if answer != nil {
		return answer(ctx, agent, req)
	}
	return served(rec.key()), nil
}

func (f *fakeCaller) setAnswer(fn func(ctx context.Context, agent string, req *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error)) {
	f.mu.Lock()
	f.answer = fn
	f.mu.Unlock()
}

// setEntered makes every call announce its instance key on ch.
func (f *fakeCaller) setEntered(ch chan string) {
	f.mu.Lock()
	f.entered = ch
	f.mu.Unlock()
}

func (f *fakeCaller) recorded() []callRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]callRecord(nil), f.calls...)
}

func served(key string) *agentv1.InvokeResponse {
	return &agentv1.InvokeResponse{Success: true, Result: mustStruct(map[string]any{"served_by": key})}
}

// harness is an invoke.Service over a real registry, a real SQLite store
// (scopes, assignments, idempotency) and a fake caller.
type harness struct {
	svc         *invoke.Service
	reg         *registry.Registry
	caller      *fakeCaller
	st          *store.Store
	assignments *control.Assignments
	// clockOffset shifts the store's clock (idempotency claim times).
	clockOffset *atomic.Int64
}

type harnessOpt func(*invoke.Config)

func newHarness(t testing.TB, opts ...harnessOpt) *harness {
	t.Helper()
	offset := new(atomic.Int64)
	st := storetest.SQLite(t, storetest.WithClock(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }))
	ctx := context.Background()
	scopes := control.NewScopes(st.Scopes())
	if err := scopes.Declare(ctx, game, env); err != nil {
		t.Fatal(err)
	}
	assignments := control.NewAssignments(st.Assignments(), time.Hour)
	reg := registry.New(registry.Options{})
	caller := &fakeCaller{}
	cfg := invoke.Config{
		DefaultTimeout: 30 * time.Second, MaxTimeout: 5 * time.Minute, IdempotencyWindow: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, o := range opts {
		o(&cfg)
	}
	svc := invoke.New(cfg, invoke.Deps{
		Registry: reg, Caller: caller, Assignments: assignments, Scopes: scopes, Idempotency: st.Idempotency(),
	})
	return &harness{svc: svc, reg: reg, caller: caller, st: st, assignments: assignments, clockOffset: offset}
}

// addAgent registers agent with instances, each serving fns (descriptors
// without a schema, except fnGrant).
func (h *harness) addAgent(t testing.TB, agent string, instances []string, fns ...string) {
	t.Helper()
	descs := make([]*croupierv1.FunctionDescriptor, 0, len(fns))
	for _, fn := range fns {
		d := &croupierv1.FunctionDescriptor{Id: fn}
		if fn == fnGrant {
			d.ParamsSchema = grantSchema
		}
		descs = append(descs, d)
	}
	h.addAgentDescs(t, agent, instances, descs...)
}

// addAgentDescs registers (or replaces) agent with instances that each serve
// every descriptor.
func (h *harness) addAgentDescs(t testing.TB, agent string, instances []string, descs ...*croupierv1.FunctionDescriptor) {
	t.Helper()
	a := registry.Agent{ID: agent, GameID: game, Env: env, Descriptors: descs}
	fns := make([]string, 0, len(descs))
	for _, d := range descs {
		fns = append(fns, d.GetId())
	}
	for _, in := range instances {
		a.Instances = append(a.Instances, registry.Instance{ID: in, Functions: fns})
	}
	if err := h.reg.Upsert(a); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) invoke(fn string, payload *structpb.Struct, opts *croupierv1.InvokeOptions) (*croupierv1.InvokeFunctionResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return h.svc.Invoke(ctx, &croupierv1.InvokeFunctionRequest{GameId: game, Env: env, FunctionId: fn, Payload: payload, Options: opts}, "op:alice")
}

// wantStatus fails unless err is a status with code c and ErrorInfo code
// info; it returns the ErrorInfo.
func wantStatus(t *testing.T, err error, c codes.Code, info string) *croupierv1.ErrorInfo {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error; want %s %s", c, info)
	}
	if got := status.Code(err); got != c {
		t.Fatalf("status %s (%v); want %s", got, err, c)
	}
	ei := apierr.Info(err)
	if ei.GetCode() != info {
		t.Fatalf("ErrorInfo code %q (%v); want %q", ei.GetCode(), err, info)
	}
	return ei
}

var errUnavailable = status.Error(codes.Unavailable, "agent tunnel closed")

// notSentErr is how the transport marks a failure before anything was sent.
type notSentErr struct{ error }

func (e notSentErr) Unwrap() error { return e.error }
func (notSentErr) NotSent() bool   { return true }

// scopeOf is the store scope of the invoke idempotency keys of fn for caller.
func scopeOf(fn, caller string) string { return "invoke/" + game + "/" + env + "/" + fn + "/" + caller }

// isStatus reports whether err carries code c.
func isStatus(err error, c codes.Code) bool {
	var se interface{ GRPCStatus() *status.Status }
	return errors.As(err, &se) && se.GRPCStatus().Code() == c
}
