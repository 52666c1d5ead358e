package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/approval"
	"github.com/croupier/croupier/internal/audit"
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
	log       *slog.Logger
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
// (started for the requester) once another operator approves. Under an
// idempotency key a retry gets the same request (approval.Service.Submit).
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
	return g.approvals.Submit(ctx, p, approval.Request{
		Game: c.Game, Env: c.Env, Function: c.Function, Payload: payload, Body: c.Payload, Options: c.Options,
		SensitiveFields: c.Descriptor.GetAuth().GetSensitiveFields(),
	})
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
