package server

import (
	"context"
	"fmt"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/approval"
	"github.com/croupier/croupier/internal/control"
	"github.com/croupier/croupier/internal/invoke"
	"github.com/croupier/croupier/internal/jobs"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/rbac"
	"github.com/croupier/croupier/internal/registry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
)

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

func (h controlHandler) UpdateInstances(ctx context.Context, r *croupierv1.UpdateInstancesRequest) (*croupierv1.UpdateInstancesResponse, error) {
	return h.svc.UpdateInstances(ctx, r)
}

func (h controlHandler) GetAssignments(ctx context.Context, r *croupierv1.GetAssignmentsRequest) (*croupierv1.GetAssignmentsResponse, error) {
	return h.svc.GetAssignments(ctx, r)
}

func (h controlHandler) ReportJobEvents(ctx context.Context, r *croupierv1.ReportJobEventsRequest) (*croupierv1.ReportJobEventsResponse, error) {
	return h.jobs.Report(ctx, r) // the edge checked the caller is agent r.agent_id
}

func (h controlHandler) UpdateAssignment(ctx context.Context, r *croupierv1.UpdateAssignmentRequest) (*croupierv1.UpdateAssignmentResponse, error) {
	return h.svc.UpdateAssignment(ctx, r)
}

// functionHandler serves FunctionService. The edge (method table) has
// checked the base permission, the rate limits and the request's limits,
// and writes the audit row; admit adds what needs the function's
// descriptor.
type functionHandler struct {
	croupierv1.UnimplementedFunctionServiceServer
	invoke *invoke.Service
	jobs   *jobs.Service
	cat    *control.Catalog
	reg    *registry.Registry
	guard  *guard
}

// admit is the admission path InvokeFunction and InvokeJob share, after the
// edge's identity, base permission and rate checks: the descriptor's extra
// permissions and roles, then approval. It returns a pending approval
// instead of admitting a call that needs one.
func (h functionHandler) admit(ctx context.Context, perm string, call *invoke.Call) (*approval.Request, error) {
	note := noteOf(ctx)
	note.payload, note.sensitive = call.Payload, call.Descriptor.GetAuth().GetSensitiveFields()
	p := principal.FromContext(ctx)
	if err := h.guard.authorizeCall(p, perm, call); err != nil {
		return nil, err
	}
	if !h.guard.needsApproval(call.Descriptor) {
		return nil, nil
	}
	req, err := h.guard.submit(ctx, p, call)
	if err != nil {
		return nil, err
	}
	// The call only created an approval, which the approval service
	// records (approval.request); the call itself runs, and is recorded,
	// once approved.
	note.skip = true
	return &req, nil
}

// notePayload makes the call's payload, masked with the descriptor's
// sensitive fields, the payload of its audit row.
func (h functionHandler) notePayload(ctx context.Context, game, env, fn string, payload *structpb.Struct) {
	d, _ := h.reg.Descriptor(game, env, fn)
	n := noteOf(ctx)
	n.payload, n.sensitive = payload, d.GetAuth().GetSensitiveFields()
}

func (h functionHandler) InvokeFunction(ctx context.Context, r *croupierv1.InvokeFunctionRequest) (*croupierv1.InvokeFunctionResponse, error) {
	h.notePayload(ctx, r.GetGameId(), r.GetEnv(), r.GetFunctionId(), r.GetPayload())
	call, err := h.invoke.Prepare(ctx, r.GetGameId(), r.GetEnv(), r.GetFunctionId(), r.GetPayload(), r.GetOptions())
	if err != nil {
		return nil, err
	}
	pending, err := h.admit(ctx, rbac.FunctionInvoke, call)
	switch {
	case err != nil:
		return nil, err
	case pending != nil:
		return &croupierv1.InvokeFunctionResponse{Success: false, ErrorCode: apierr.ResultApprovalRequired, ApprovalId: pending.ID,
			Error: fmt.Sprintf("%s needs a second operator's approval: approval %s is pending until %s; it runs as a job once approved",
				call.Function, pending.ID, pending.ExpiresAt.UTC().Format(time.RFC3339))}, nil
	}
	return h.invoke.Execute(ctx, call, principal.FromContext(ctx).String())
}

func (h functionHandler) InvokeJob(ctx context.Context, r *croupierv1.InvokeJobRequest) (*croupierv1.InvokeJobResponse, error) {
	h.notePayload(ctx, r.GetGameId(), r.GetEnv(), r.GetFunctionId(), r.GetPayload())
	call, err := h.jobs.Prepare(ctx, r)
	if err != nil {
		return nil, err
	}
	pending, err := h.admit(ctx, rbac.JobStart, call)
	switch {
	case err != nil:
		return nil, err
	case pending != nil:
		return &croupierv1.InvokeJobResponse{Success: false, Status: "awaiting_approval", ApprovalId: pending.ID}, nil
	}
	return h.jobs.StartCall(ctx, call, principal.FromContext(ctx).String())
}

func (h functionHandler) StreamJobEvents(r *croupierv1.StreamJobEventsRequest, stream grpc.ServerStreamingServer[croupierv1.JobEvent]) error {
	return h.jobs.Stream(stream.Context(), r.GetJobId(), r.GetFromSeq(), stream.Send)
}

func (h functionHandler) CancelJob(ctx context.Context, r *croupierv1.CancelJobRequest) (*croupierv1.CancelJobResponse, error) {
	return h.jobs.Cancel(ctx, r)
}

func (h functionHandler) GetJob(ctx context.Context, r *croupierv1.GetJobRequest) (*croupierv1.GetJobResponse, error) {
	j, err := h.jobs.Get(ctx, r.GetJobId())
	if err != nil {
		return nil, err
	}
	return &croupierv1.GetJobResponse{Job: j}, nil
}

func (h functionHandler) ListJobs(ctx context.Context, r *croupierv1.ListJobsRequest) (*croupierv1.ListJobsResponse, error) {
	return h.jobs.List(ctx, r)
}

func (h functionHandler) RegisterFunction(ctx context.Context, r *croupierv1.RegisterFunctionRequest) (*croupierv1.RegisterFunctionResponse, error) {
	if err := h.cat.Register(ctx, r.GetGameId(), r.GetEnv(), r.GetDescriptor_()); err != nil {
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
	return &croupierv1.GetRegistrationsResponse{Registrations: h.reg.Registrations(registry.Filter{
		Game: r.GetGameId(), Env: r.GetEnv(), Function: r.GetFunctionId(),
	})}, nil
}

func (h registryHandler) WatchRegistrations(r *croupierv1.WatchRegistrationsRequest, stream grpc.ServerStreamingServer[croupierv1.RegistrationEvent]) error {
	ctx := stream.Context()
	events, err := h.reg.WatchWith(ctx, registry.Filter{Game: r.GetGameId(), Env: r.GetEnv(), Function: r.GetFunctionId()},
		registry.WatchOptions{Deltas: r.GetDeltas()})
	if err != nil {
		return apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, err.Error())
	}
	for ev := range events {
		if err := stream.Send(ev); err != nil {
			return err
		}
	}
	// The registry closes a watch only when ctx ends (it coalesces rather
	// than cutting slow watchers off): the client left or the server stops.
	return apierr.New(codes.Unavailable, apierr.CodeUnavailable, "watch interrupted (server shutting down); watch again")
}

func (h registryHandler) ListAgents(ctx context.Context, r *croupierv1.ListAgentsRequest) (*croupierv1.ListAgentsResponse, error) {
	return &croupierv1.ListAgentsResponse{Agents: h.reg.Agents(r.GetGameId(), r.GetEnv())}, nil
}
