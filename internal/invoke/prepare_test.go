package invoke_test

import (
	"context"
	"strings"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/invoke"
	"github.com/croupier/croupier/internal/schema"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestPrepareRefusals checks every refusal before anything is sent: the
// status code, the stable ErrorInfo code, the details that tell the caller
// what to fix, and that the caller was never reached.
func TestPrepareRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addAgent(t, "a", []string{"1"}, fnGrant, "game.stats")
	if err := h.reg.PutDescriptor(game, env, &croupierv1.FunctionDescriptor{Id: "mail.send"}); err != nil {
		t.Fatal(err) // registered, but no instance serves it
	}
	if _, err := h.assignments.Set(context.Background(), game, env, "game.stats", false, nil); err != nil {
		t.Fatal(err)
	}
	ok := grantPayload(1)
	tests := []struct {
		name       string
		game, env  string
		fn         string
		payload    *structpb.Struct
		opts       *croupierv1.InvokeOptions
		code       codes.Code
		info       string
		details    map[string]string
		msgContain string
	}{
		{name: "missing game", env: env, fn: fnGrant, code: codes.InvalidArgument, info: "INVALID_ARGUMENT", msgContain: "required"},
		{name: "missing env", game: game, fn: fnGrant, code: codes.InvalidArgument, info: "INVALID_ARGUMENT"},
		{name: "missing function", game: game, env: env, code: codes.InvalidArgument, info: "INVALID_ARGUMENT"},
		{name: "unknown scope", game: game, env: "prod", fn: fnGrant, payload: ok, code: codes.NotFound, info: "UNKNOWN_SCOPE",
			details: map[string]string{"game_id": game, "env": "prod"}, msgContain: "--scopes"},
		{name: "unknown function", game: game, env: env, fn: "nope", code: codes.NotFound, info: "FUNCTION_NOT_FOUND",
			details: map[string]string{"function_id": "nope"}},
		{name: "disabled", game: game, env: env, fn: "game.stats", code: codes.FailedPrecondition, info: "FUNCTION_DISABLED",
			details: map[string]string{"function_id": "game.stats"}},
		{name: "payload below minimum", game: game, env: env, fn: fnGrant, payload: grantPayload(0), code: codes.InvalidArgument,
			info: "INVALID_PAYLOAD", details: map[string]string{"pointer": "/count"}, msgContain: `at "/count"`},
		{name: "payload wrong type", game: game, env: env, fn: fnGrant,
			payload: mustStruct(map[string]any{"player_id": 7.0, "count": 1}), code: codes.InvalidArgument,
			info: "INVALID_PAYLOAD", details: map[string]string{"pointer": "/player_id"}},
		{name: "nil payload misses required", game: game, env: env, fn: fnGrant, code: codes.InvalidArgument, info: "INVALID_PAYLOAD"},
		{name: "negative timeout", game: game, env: env, fn: fnGrant, payload: ok, opts: &croupierv1.InvokeOptions{Timeout: -1},
			code: codes.InvalidArgument, info: "INVALID_ARGUMENT", details: map[string]string{"field": "options.timeout"}},
		{name: "timeout over max", game: game, env: env, fn: fnGrant, payload: ok, opts: &croupierv1.InvokeOptions{Timeout: 301},
			code: codes.InvalidArgument, info: "INVALID_ARGUMENT", details: map[string]string{"field": "options.timeout", "max_seconds": "300"},
			msgContain: "exceeds the server maximum"},
		{name: "no live instance", game: game, env: env, fn: "mail.send", code: codes.Unavailable, info: "NO_INSTANCE",
			details: map[string]string{"function_id": "mail.send"}},
		{name: "unknown routing mode", game: game, env: env, fn: fnGrant, payload: ok, opts: &croupierv1.InvokeOptions{RoutingMode: "random"},
			code: codes.InvalidArgument, info: "INVALID_ARGUMENT", details: map[string]string{"field": "options.routing_mode"}},
		{name: "targeted without target", game: game, env: env, fn: fnGrant, payload: ok, opts: &croupierv1.InvokeOptions{RoutingMode: invoke.ModeTargeted},
			code: codes.InvalidArgument, info: "INVALID_ARGUMENT", details: map[string]string{"field": "options.target_agent"}},
		{name: "hash without key", game: game, env: env, fn: fnGrant, payload: ok, opts: &croupierv1.InvokeOptions{RoutingMode: invoke.ModeHash},
			code: codes.InvalidArgument, info: "INVALID_ARGUMENT", details: map[string]string{"field": "options.hash_key"}},
		{name: "unknown target", game: game, env: env, fn: fnGrant, payload: ok,
			opts: &croupierv1.InvokeOptions{RoutingMode: invoke.ModeTargeted, TargetAgent: "a/9"},
			code: codes.NotFound, info: "TARGET_NOT_FOUND", details: map[string]string{"target_agent": "a/9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			call, err := h.svc.Prepare(ctx, tt.game, tt.env, tt.fn, tt.payload, tt.opts)
			if call != nil {
				t.Errorf("Prepare returned a call with its error")
			}
			ei := wantStatus(t, err, tt.code, tt.info)
			for k, v := range tt.details {
				if got := ei.GetDetails()[k]; got != v {
					t.Errorf("detail %s = %q, want %q (all: %v)", k, got, v, ei.GetDetails())
				}
			}
			if tt.msgContain != "" && !strings.Contains(ei.GetMessage(), tt.msgContain) {
				t.Errorf("message %q does not contain %q", ei.GetMessage(), tt.msgContain)
			}
			// Invoke refuses the same way.
			_, err = h.svc.Invoke(ctx, &croupierv1.InvokeFunctionRequest{GameId: tt.game, Env: tt.env, FunctionId: tt.fn,
				Payload: tt.payload, Options: tt.opts}, "op")
			wantStatus(t, err, tt.code, tt.info)
		})
	}
	if n := len(h.caller.recorded()); n != 0 {
		t.Fatalf("refused calls reached the caller %d times", n)
	}
	// The payload error carries the validator's reason too.
	_, err := h.svc.Prepare(context.Background(), game, env, fnGrant, grantPayload(0), nil)
	if ei := wantStatus(t, err, codes.InvalidArgument, "INVALID_PAYLOAD"); ei.GetDetails()["reason"] == "" {
		t.Errorf("INVALID_PAYLOAD has no reason detail: %v", ei.GetDetails())
	}
}

func TestPrepareAccepts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addAgent(t, "a", []string{"1"}, fnGrant, "game.stats")
	if _, err := h.assignments.Set(context.Background(), game, env, fnGrant, true, map[string]string{"limit": "5"}); err != nil {
		t.Fatal(err)
	}
	call, err := h.svc.Prepare(context.Background(), game, env, fnGrant, grantPayload(3), nil)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if call.Game != game || call.Env != env || call.Function != fnGrant || call.Config["limit"] != "5" ||
		len(call.Targets) != 1 || call.Targets[0].Key() != "a/1" || call.Options == nil || call.Descriptor.GetId() != fnGrant {
		t.Fatalf("Prepare = %+v", call)
	}
	// A nil payload becomes an empty object for a function without schema.
	call, err = h.svc.Prepare(context.Background(), game, env, "game.stats", nil, nil)
	if err != nil {
		t.Fatalf("Prepare(nil payload): %v", err)
	}
	if call.Payload == nil || len(call.Payload.GetFields()) != 0 {
		t.Fatalf("nil payload became %v", call.Payload)
	}
}

// TestPrepareTimeout covers the timeout precedence: caller option, else the
// descriptor's semantics, else the server default, never above the max.
func TestPrepareTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *invoke.Config) { c.DefaultTimeout, c.MaxTimeout = 20*time.Second, time.Minute })
	h.addAgent(t, "a", []string{"1"}, "plain")
	h.addAgentDescs(t, "b", []string{"1"},
		&croupierv1.FunctionDescriptor{Id: "slow", Semantics: &croupierv1.Semantics{TimeoutSeconds: 45}},
		&croupierv1.FunctionDescriptor{Id: "too_slow", Semantics: &croupierv1.Semantics{TimeoutSeconds: 600}})
	tests := []struct {
		fn   string
		opt  int32
		want time.Duration
	}{
		{"plain", 0, 20 * time.Second},
		{"plain", 5, 5 * time.Second},
		{"plain", 60, time.Minute},
		{"slow", 0, 45 * time.Second},
		{"slow", 2, 2 * time.Second},
		{"too_slow", 0, time.Minute}, // clamped to the server maximum
	}
	for _, tt := range tests {
		call, err := h.svc.Prepare(context.Background(), game, env, tt.fn, nil, &croupierv1.InvokeOptions{Timeout: tt.opt})
		if err != nil {
			t.Fatalf("%s timeout %d: %v", tt.fn, tt.opt, err)
		}
		if call.Timeout != tt.want {
			t.Errorf("%s with options.timeout %d: Timeout = %s, want %s", tt.fn, tt.opt, call.Timeout, tt.want)
		}
	}
}

// TestPrepareRefusesDeepPayload (issue 9, defect 8): a payload nested past
// schema.MaxDepth is INVALID_PAYLOAD before validation, whatever the
// schema; 64 levels pass.
func TestPrepareRefusesDeepPayload(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addAgent(t, "a", []string{"1"}, fnStats) // no schema: anything validates
	deep := func(depth int) *structpb.Struct {
		s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		for range depth - 1 {
			s = &structpb.Struct{Fields: map[string]*structpb.Value{"a": structpb.NewStructValue(s)}}
		}
		return s
	}
	for _, d := range []int{schema.MaxDepth + 1, 3000} {
		_, err := h.invoke(fnStats, deep(d), nil)
		wantStatus(t, err, codes.InvalidArgument, "INVALID_PAYLOAD")
		if m := status.Convert(err).Message(); len(m) > 300 {
			t.Fatalf("depth %d: a %d-byte message", d, len(m))
		}
	}
	if n := len(h.caller.recorded()); n != 0 {
		t.Fatalf("a too-deep payload was sent (%d calls)", n)
	}
	if _, err := h.invoke(fnStats, deep(schema.MaxDepth), nil); err != nil {
		t.Fatalf("depth %d: %v", schema.MaxDepth, err)
	}
}
