package server

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/approval"
	"github.com/croupier/croupier/internal/audit"
	authsvc "github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/rbac"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// openAccess builds the operator-access services: audit log, users and
// tokens, approvals and rate limits, and bootstraps the administrator.
func (s *Server) openAccess(ctx context.Context) error {
	log := s.log.With("component", "access")
	auditCfg := audit.Config{Store: s.store, Logger: log, Metrics: s.obs.app}
	if s.cfg.DataDir != "" {
		auditCfg.JournalPath = filepath.Join(s.cfg.DataDir, "audit.journal")
	}
	auditLog, err := audit.Open(ctx, auditCfg)
	if err != nil {
		return err
	}
	s.audit = auditLog
	if s.auth, err = authsvc.New(ctx, authsvc.Config{Store: s.store, Audit: auditLog, Logger: log,
		LoginThrottle: s.cfg.Login.Throttle(),
		AccessTTL:     s.cfg.AccessTokenTTL, RefreshTTL: s.cfg.RefreshTokenTTL, RefreshReuseGrace: reuseGrace(s.cfg.RefreshReuseGrace)}); err != nil {
		return err
	}
	if s.bus != nil { // failed logins count on every node (docs/cluster.md)
		if err := s.auth.LoginThrottle().Share(s.bus.Conn(), ratelimit.SubjectOperatorLogins, s.bus.ID(), log); err != nil {
			return fmt.Errorf("cluster: share login throttling: %w", err)
		}
	}
	if s.cfg.AdminPassword != "" {
		created, err := s.auth.Bootstrap(ctx, s.cfg.AdminUser, s.cfg.AdminPassword)
		if err != nil {
			return fmt.Errorf("bootstrap admin %q: %w", s.cfg.AdminUser, err)
		}
		s.log.Info("administrator ready", "user", s.cfg.AdminUser, "created", created)
	}
	approvals, err := approval.New(approval.Config{Store: s.store, Audit: auditLog, Logger: log, TTL: s.cfg.ApprovalTTL,
		IdempotencyWindow: s.cfg.IdempotencyWindow, Execute: s.startApproved})
	if err != nil {
		return err
	}
	limiter, err := ratelimit.New(ratelimit.Config{
		PerUser:     ratelimit.Rate{PerSecond: s.cfg.RateUser, Burst: s.cfg.RateUserBurst},
		PerFunction: ratelimit.Rate{PerSecond: s.cfg.RateFunction, Burst: s.cfg.RateFunctionBurst},
		Metrics:     s.obs.app,
		Nodes: func() int {
			if s.agents == nil {
				return 1
			}
			return s.agents.Nodes()
		},
	})
	if err != nil {
		return err
	}
	s.guard = &guard{limiter: limiter, approvals: approvals, audit: auditLog, highRisk: s.cfg.ApprovalHighRisk, log: log}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		approvals.Run(ctx, time.Minute)
	}()
	return nil
}

// startApproved starts an approved call as a job for its requester.
func (s *Server) startApproved(ctx context.Context, req approval.Request) (string, error) {
	payload := &structpb.Struct{}
	if err := payload.UnmarshalJSON(req.Payload); err != nil {
		return "", fmt.Errorf("approval %s: stored payload: %w", req.ID, err)
	}
	opts := &croupierv1.InvokeOptions{}
	if req.Options != nil {
		opts = proto.Clone(req.Options).(*croupierv1.InvokeOptions)
	}
	opts.IdempotencyKey = "approval:" + req.ID
	call, err := s.jobs.Prepare(ctx, &croupierv1.InvokeJobRequest{GameId: req.Game, Env: req.Env, FunctionId: req.Function, Payload: payload, Options: opts})
	if err != nil {
		return "", err
	}
	// The call runs for its requester, who must still be allowed to make it:
	// a role revoked or an account disabled since the request stops it.
	p, err := s.requester(ctx, req.Requester)
	if err != nil {
		return "", err
	}
	if err := s.guard.authorizeCall(p, rbac.FunctionInvoke, call); err != nil {
		if s.guard.authorizeCall(p, rbac.JobStart, call) != nil {
			return "", err
		}
	}
	resp, err := s.jobs.StartCall(ctx, call, req.Requester)
	if err != nil {
		return "", err
	}
	return resp.GetJobId(), nil
}

// requester is the principal an approved call runs for, as of now (see
// auth.Service.Operator); the anonymous caller only while the server still
// serves one (insecure mode).
func (s *Server) requester(ctx context.Context, who string) (principal.Principal, error) {
	if who == string(principal.Anonymous) && s.cfg.Insecure {
		return anonymousAdmin(), nil
	}
	name, ok := strings.CutPrefix(who, string(principal.Operator)+":")
	if !ok {
		return principal.Principal{}, apierr.New(codes.PermissionDenied, apierr.CodePermissionDenied,
			"the requester "+who+" can no longer make calls")
	}
	return s.auth.Operator(ctx, name)
}

// Auth exposes the users-and-tokens service (used by `croupier dev` to
// bootstrap the admin's profile).
func (s *Server) Auth() *authsvc.Service { return s.auth }

// Fleet exposes the fleet API without authorisation, for the embedding
// process (croupier dev).
func (s *Server) Fleet() croupierv1.FleetServiceServer { return s.fleet.GRPC() }

// reuseGrace maps the configured refresh reuse grace (0: none) to
// auth.Config's (0: the default, negative: none).
func reuseGrace(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
