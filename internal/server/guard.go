package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/approval"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/idempotency"
	"github.com/croupier/croupier/internal/invoke"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/rbac"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
)

// guard holds the access policy the edge and the invoke admission path
// share: rate limits, the descriptor's extra permissions and roles,
// two-person approval for risky functions, and the audit log.
type guard struct {
	limiter   *ratelimit.Limiter
	approvals *approval.Service
	audit     *audit.Log
	highRisk  bool // HIGH-risk functions need approval even if the descriptor does not ask
	// keys makes an idempotency key of a call that needs approval stand
	// for its approval request: a retry gets the same request back.
	keys *idempotency.Keeper
	log  *slog.Logger
}

// authorizeCall checks perm plus the descriptor's extras on a prepared call
// (the edge took the rate-limit tokens).
func (g *guard) authorizeCall(p principal.Principal, perm string, c *invoke.Call) error {
	a := c.Descriptor.GetAuth()
	return rbac.CheckFunction(p, perm, c.Game, c.Env, c.Function,
		rbac.FunctionAuth{Permissions: a.GetPermissions(), AllowedRoles: a.GetAllowedRoles()})
}

// needsApproval reports whether calls of d wait for a second operator.
func (g *guard) needsApproval(d *croupierv1.FunctionDescriptor) bool {
	return d.GetAuth().GetRequireApproval() || g.highRisk && d.GetSemantics().GetRisk() == croupierv1.RiskLevel_RISK_LEVEL_HIGH
}

// submit turns a call into an approval request; the call runs as a job
// (started for the requester) once another operator approves.
func (g *guard) submit(ctx context.Context, p principal.Principal, c *invoke.Call) (approval.Request, error) {
	if c.Options.GetRoutingMode() == invoke.ModeBroadcast {
		return approval.Request{}, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument,
			"function "+c.Function+" needs approval and approved calls run as a job on one instance: use lb, targeted or hash routing",
			"field", "options.routing_mode")
	}
	payload, err := protojson.Marshal(c.Payload)
	if err != nil {
		return approval.Request{}, apierr.Internal(g.log, err)
	}
	// Under an idempotency key the outcome of the call is its approval
	// request: a retry with the key gets the same request (a different
	// payload under it is IDEMPOTENCY_KEY_REUSED), never a second one.
	prev := &croupierv1.Approval{}
	claim, err := g.keys.Begin(ctx, idempotency.Request{Op: "approval", Caller: p.String(), Game: c.Game, Env: c.Env,
		Function: c.Function, Options: c.Options, Payload: c.Payload}, prev)
	if err != nil {
		return approval.Request{}, err
	}
	if claim.Replayed {
		return approval.Request{ID: prev.GetId(), ExpiresAt: time.UnixMilli(prev.GetExpiresAtMs())}, nil
	}
	req, err := g.approvals.Submit(ctx, p, approval.Request{
		Game: c.Game, Env: c.Env, Function: c.Function, Payload: payload, Options: c.Options,
		SensitiveFields: c.Descriptor.GetAuth().GetSensitiveFields(),
	})
	if err != nil {
		claim.Release(ctx) // no request was made: a retry may make it
		return approval.Request{}, err
	}
	claim.Complete(ctx, &croupierv1.Approval{Id: req.ID, ExpiresAtMs: req.ExpiresAt.UnixMilli()})
	return req, nil
}

// requestID is the caller's x-request-id, or a fresh one.
func requestID(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, "x-request-id"); len(v) == 1 && len(v[0]) <= 128 {
		return v[0]
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
