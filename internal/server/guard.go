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
	"github.com/croupier/croupier/internal/invoke"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/rbac"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
)

// guard applies operator access policy around the ops services: RBAC on the
// function's scope (with the descriptor's extra permissions and roles), rate
// limits, two-person approval for risky functions, and the audit trail.
type guard struct {
	limiter   *ratelimit.Limiter
	approvals *approval.Service
	audit     *audit.Log
	highRisk  bool // HIGH-risk functions need approval even if the descriptor does not ask
	log       *slog.Logger
}

// authorizeCall checks perm plus the descriptor's extras on a prepared call
// and takes a rate-limit token.
func (g *guard) authorizeCall(p principal.Principal, perm string, c *invoke.Call) error {
	a := c.Descriptor.GetAuth()
	if err := rbac.CheckFunction(p, perm, c.Game, c.Env, c.Function,
		rbac.FunctionAuth{Permissions: a.GetPermissions(), AllowedRoles: a.GetAllowedRoles()}); err != nil {
		return err
	}
	return g.limiter.Allow(p.String(), c.Game, c.Env, c.Function)
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
	return g.approvals.Submit(ctx, p, approval.Request{
		Game: c.Game, Env: c.Env, Function: c.Function, Payload: payload, Options: c.Options,
		SensitiveFields: c.Descriptor.GetAuth().GetSensitiveFields(),
	})
}

// record writes an audit row for an ops-plane action. The payload is masked
// with the descriptor's sensitive fields.
func (g *guard) record(ctx context.Context, action string, game, env, fn string, payload any, sensitive []string, err error, start time.Time) {
	p := principal.FromContext(ctx)
	if rerr := g.audit.Record(ctx, audit.Entry{
		Actor: p.String(), Action: action, Game: game, Env: env, Function: fn,
		Payload: payload, SensitiveFields: sensitive, Err: err, Duration: time.Since(start), RequestID: requestID(ctx),
	}); rerr != nil {
		g.log.Error("audit record failed", "action", action, "err", rerr)
	}
}

// requestID is the caller's x-request-id, or a fresh one.
func requestID(ctx context.Context) string {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("x-request-id"); len(v) == 1 && len(v[0]) <= 128 {
			return v[0]
		}
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
