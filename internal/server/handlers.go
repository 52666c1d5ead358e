package server

import (
	"context"
	"fmt"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/control"
	"github.com/croupier/croupier/internal/invoke"
	"github.com/croupier/croupier/internal/jobs"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/rbac"
	"github.com/croupier/croupier/internal/registry"
	"github.com/croupier/croupier/internal/schema"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// requireOperator refuses agent credentials on operator APIs: an agent
// certificate must not be usable to invoke functions.
func requireOperator(ctx context.Context) error {
	if p := principal.FromContext(ctx); p.Kind == principal.Agent {
		return apierr.New(codes.PermissionDenied, apierr.CodeScopeMismatch,
			fmt.Sprintf("%s holds an agent credential; operator APIs need an operator credential", p))
	}
	return nil
}

// allow is requireOperator plus an RBAC check on game/env/fn.
func allow(ctx context.Context, perm, game, env, fn string) error {
	if err := requireOperator(ctx); err != nil {
		return err
	}
	return rbac.Check(principal.FromContext(ctx), perm, game, env, fn)
}

// controlHandler adapts control.Service to gRPC.
type controlHandler struct {
	croupierv1.UnimplementedControlServiceServer
	svc  *control.Service
	jobs *jobs.Service
}

func (h controlHandler) RegisterAgent(ctx context.Context, r *croupierv1.RegisterAgentRequest) (*croupierv1.RegisterAgentResponse, error) {
	return h.svc.RegisterAgent(ctx, r)
}

func (h controlHandler) Heartbeat(ctx context.Context, r *croupierv1.HeartbeatRequest) (*croupierv1.HeartbeatResponse, error) {
	return h.svc.Heartbeat(ctx, r)
}

func (h controlHandler) GetAssignments(ctx context.Context, r *croupierv1.GetAssignmentsRequest) (*croupierv1.GetAssignmentsResponse, error) {
	return h.svc.GetAssignments(ctx, r)
}

func (h controlHandler) ReportJobEvents(ctx context.Context, r *croupierv1.ReportJobEventsRequest) (*croupierv1.ReportJobEventsResponse, error) {
	if p := principal.FromContext(ctx); p.Kind != principal.Anonymous && (p.Kind != principal.Agent || p.Name != r.GetAgentId()) {
		return nil, apierr.Newf(codes.PermissionDenied, apierr.CodeScopeMismatch, "%s cannot report events as agent %q", p, r.GetAgentId())
	}
	return h.jobs.Report(ctx, r)
}

func (h controlHandler) UpdateAssignment(ctx context.Context, r *croupierv1.UpdateAssignmentRequest) (*croupierv1.UpdateAssignmentResponse, error) {
	if err := allow(ctx, rbac.AssignmentWrite, r.GetGameId(), r.GetEnv(), r.GetFunctionId()); err != nil {
		return nil, err
	}
	return h.svc.UpdateAssignment(ctx, r)
}

// functionHandler serves FunctionService: authorisation, approval and audit
// around the invoke and jobs services.
type functionHandler struct {
	croupierv1.UnimplementedFunctionServiceServer
	invoke  *invoke.Service
	jobs    *jobs.Service
	catalog *catalog
	reg     *registry.Registry
	guard   *guard
}

// sensitive returns the fields to mask in the audit row of a call.
func (h functionHandler) sensitive(c *invoke.Call, game, env, fn string) []string {
	if c != nil {
		return c.Descriptor.GetAuth().GetSensitiveFields()
	}
	d, _ := h.reg.Descriptor(game, env, fn)
	return d.GetAuth().GetSensitiveFields()
}

func (h functionHandler) InvokeFunction(ctx context.Context, r *croupierv1.InvokeFunctionRequest) (resp *croupierv1.InvokeFunctionResponse, err error) {
	start := time.Now()
	var call *invoke.Call
	defer func() {
		h.guard.record(ctx, audit.ActionInvoke, r.GetGameId(), r.GetEnv(), r.GetFunctionId(), r.GetPayload(),
			h.sensitive(call, r.GetGameId(), r.GetEnv(), r.GetFunctionId()), err, start)
	}()
	if err = allow(ctx, rbac.FunctionInvoke, r.GetGameId(), r.GetEnv(), r.GetFunctionId()); err != nil {
		return nil, err
	}
	if call, err = h.invoke.Prepare(ctx, r.GetGameId(), r.GetEnv(), r.GetFunctionId(), r.GetPayload(), r.GetOptions()); err != nil {
		return nil, err
	}
	p := principal.FromContext(ctx)
	if err = h.guard.authorizeCall(p, rbac.FunctionInvoke, call); err != nil {
		return nil, err
	}
	if h.guard.needsApproval(call.Descriptor) {
		req, err := h.guard.submit(ctx, p, call)
		if err != nil {
			return nil, err
		}
		return &croupierv1.InvokeFunctionResponse{Success: false, ErrorCode: "APPROVAL_REQUIRED", ApprovalId: req.ID,
			Error: fmt.Sprintf("%s needs a second operator's approval: approval %s is pending until %s; it runs as a job once approved",
				call.Function, req.ID, req.ExpiresAt.UTC().Format(time.RFC3339))}, nil
	}
	return h.invoke.Execute(ctx, call, p.String())
}

func (h functionHandler) InvokeJob(ctx context.Context, r *croupierv1.InvokeJobRequest) (resp *croupierv1.InvokeJobResponse, err error) {
	start := time.Now()
	var call *invoke.Call
	defer func() {
		h.guard.record(ctx, audit.ActionJobStart, r.GetGameId(), r.GetEnv(), r.GetFunctionId(), r.GetPayload(),
			h.sensitive(call, r.GetGameId(), r.GetEnv(), r.GetFunctionId()), err, start)
	}()
	if err = allow(ctx, rbac.JobStart, r.GetGameId(), r.GetEnv(), r.GetFunctionId()); err != nil {
		return nil, err
	}
	if call, err = h.jobs.Prepare(ctx, r); err != nil {
		return nil, err
	}
	p := principal.FromContext(ctx)
	if err = h.guard.authorizeCall(p, rbac.JobStart, call); err != nil {
		return nil, err
	}
	if h.guard.needsApproval(call.Descriptor) {
		req, err := h.guard.submit(ctx, p, call)
		if err != nil {
			return nil, err
		}
		return &croupierv1.InvokeJobResponse{Success: false, Status: "awaiting_approval", ApprovalId: req.ID}, nil
	}
	return h.jobs.StartCall(ctx, call, p.String())
}

// jobScope loads a job and checks perm on its function.
func (h functionHandler) jobScope(ctx context.Context, perm, id string) (*croupierv1.Job, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	j, err := h.jobs.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := rbac.Check(principal.FromContext(ctx), perm, j.GetGameId(), j.GetEnv(), j.GetFunctionId()); err != nil {
		return nil, err
	}
	return j, nil
}

func (h functionHandler) StreamJobEvents(r *croupierv1.StreamJobEventsRequest, stream grpc.ServerStreamingServer[croupierv1.JobEvent]) error {
	if _, err := h.jobScope(stream.Context(), rbac.JobRead, r.GetJobId()); err != nil {
		return err
	}
	return h.jobs.Stream(stream.Context(), r.GetJobId(), r.GetFromSeq(), stream.Send)
}

func (h functionHandler) CancelJob(ctx context.Context, r *croupierv1.CancelJobRequest) (resp *croupierv1.CancelJobResponse, err error) {
	start := time.Now()
	var j *croupierv1.Job
	defer func() { // refusals are recorded too
		h.guard.record(ctx, audit.ActionJobCancel, j.GetGameId(), j.GetEnv(), j.GetFunctionId(),
			map[string]string{"job_id": r.GetJobId(), "reason": r.GetReason()}, nil, err, start)
	}()
	if j, err = h.jobScope(ctx, rbac.JobCancel, r.GetJobId()); err != nil {
		return nil, err
	}
	return h.jobs.Cancel(ctx, r)
}

func (h functionHandler) GetJob(ctx context.Context, r *croupierv1.GetJobRequest) (*croupierv1.GetJobResponse, error) {
	j, err := h.jobScope(ctx, rbac.JobRead, r.GetJobId())
	if err != nil {
		return nil, err
	}
	return &croupierv1.GetJobResponse{Job: j}, nil
}

func (h functionHandler) ListJobs(ctx context.Context, r *croupierv1.ListJobsRequest) (*croupierv1.ListJobsResponse, error) {
	if err := allow(ctx, rbac.JobRead, r.GetGameId(), r.GetEnv(), r.GetFunctionId()); err != nil {
		return nil, err
	}
	return h.jobs.List(ctx, r)
}

func (h functionHandler) RegisterFunction(ctx context.Context, r *croupierv1.RegisterFunctionRequest) (*croupierv1.RegisterFunctionResponse, error) {
	if err := allow(ctx, rbac.FunctionRegister, r.GetGameId(), r.GetEnv(), r.GetDescriptor_().GetId()); err != nil {
		return nil, err
	}
	if len(h.reg.Instances(r.GetGameId(), r.GetEnv(), r.GetDescriptor_().GetId())) > 0 {
		// The game servers that serve it own its descriptor (its auth rules
		// included); an operator must not be able to replace them.
		return nil, apierr.New(codes.FailedPrecondition, "FUNCTION_SERVED",
			fmt.Sprintf("function %s is served by game servers, whose descriptor applies; RegisterFunction only declares functions nobody serves yet", r.GetDescriptor_().GetId()),
			"function_id", r.GetDescriptor_().GetId())
	}
	if err := h.catalog.Register(ctx, r.GetGameId(), r.GetEnv(), r.GetDescriptor_()); err != nil {
		return nil, err
	}
	return &croupierv1.RegisterFunctionResponse{Success: true}, nil
}

// registryHandler serves RegistryService from the live registry.
type registryHandler struct {
	croupierv1.UnimplementedRegistryServiceServer
	reg *registry.Registry
}

func (h registryHandler) GetRegistrations(ctx context.Context, r *croupierv1.GetRegistrationsRequest) (*croupierv1.GetRegistrationsResponse, error) {
	if err := allow(ctx, rbac.RegistryRead, r.GetGameId(), r.GetEnv(), r.GetFunctionId()); err != nil {
		return nil, err
	}
	return &croupierv1.GetRegistrationsResponse{Registrations: h.reg.Registrations(registry.Filter{
		Game: r.GetGameId(), Env: r.GetEnv(), Function: r.GetFunctionId(),
	})}, nil
}

func (h registryHandler) WatchRegistrations(r *croupierv1.WatchRegistrationsRequest, stream grpc.ServerStreamingServer[croupierv1.RegistrationEvent]) error {
	ctx := stream.Context()
	if err := allow(ctx, rbac.RegistryRead, r.GetGameId(), r.GetEnv(), r.GetFunctionId()); err != nil {
		return err
	}
	events, err := h.reg.Watch(ctx, registry.Filter{Game: r.GetGameId(), Env: r.GetEnv(), Function: r.GetFunctionId()})
	if err != nil {
		return apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, err.Error())
	}
	for ev := range events {
		if err := stream.Send(ev); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return apierr.New(codes.Unavailable, apierr.CodeUnavailable, "watch interrupted (server shutting down); watch again")
	}
	return apierr.New(codes.Unavailable, apierr.CodeUnavailable,
		"watch fell too far behind and was cut off; watch again to get a fresh snapshot")
}

func (h registryHandler) ListAgents(ctx context.Context, r *croupierv1.ListAgentsRequest) (*croupierv1.ListAgentsResponse, error) {
	if err := allow(ctx, rbac.AgentRead, r.GetGameId(), r.GetEnv(), ""); err != nil {
		return nil, err
	}
	return &croupierv1.ListAgentsResponse{Agents: h.reg.Agents(r.GetGameId(), r.GetEnv())}, nil
}

// catalog handles functions registered directly with RegisterFunction: they
// are persisted and put in the registry, so they survive restarts.
type catalog struct {
	store  functionStore
	reg    *registry.Registry
	scopes *control.Scopes
}

type functionStore interface {
	Put(ctx context.Context, game, env string, d *croupierv1.FunctionDescriptor) error
}

func (c *catalog) Register(ctx context.Context, game, env string, d *croupierv1.FunctionDescriptor) error {
	if game == "" || env == "" || d == nil {
		return apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "game_id, env and descriptor are required")
	}
	if ok, err := c.scopes.Declared(ctx, game, env); err != nil {
		return err
	} else if !ok {
		return apierr.New(codes.NotFound, apierr.CodeUnknownScope, fmt.Sprintf("scope %s/%s is not declared", game, env))
	}
	if err := schema.ValidateDescriptor(d); err != nil {
		return apierr.New(codes.InvalidArgument, apierr.CodeInvalidDescriptor,
			fmt.Sprintf("descriptor %q: %v", d.GetId(), err), "function_id", d.GetId())
	}
	if err := c.store.Put(ctx, game, env, d); err != nil {
		return err
	}
	return c.reg.PutDescriptor(game, env, d)
}
