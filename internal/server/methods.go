package server

import (
	"context"

	tunnelv1 "github.com/croupier/croupier/api/croupier/tunnel/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/rbac"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// access says who may call a method.
type access int

const (
	_ access = iota
	// accessPublic: anyone; these methods are how a caller obtains or drops
	// a credential.
	accessPublic
	// accessAuthenticated: any authenticated caller; the service decides
	// the rest (e.g. a user may change their own password, approvals are
	// checked against the approval's function).
	accessAuthenticated
	// accessAgent: agents only (the anonymous developer of an insecure
	// loopback server too); the service checks the agent acts as itself
	// and in its game/env unless the rule's agentSelf does.
	accessAgent
	// accessOperator: an operator (not an agent) holding perm on the scope
	// the rule's resolver finds in the request.
	accessOperator
)

// rateClass says what a method spends from the rate limiter.
type rateClass int

const (
	// rateRefusals: only refused calls take a token from the caller's
	// bucket (every method but the public and agent ones).
	rateRefusals rateClass = iota
	// rateCall: every call takes a token from the caller's and the
	// function's buckets (invoke and job start).
	rateCall
)

// resolver finds what a request is about.
type resolver func(ctx context.Context, req any) (scope, error)

// rule is one method's entry in the method table.
type rule struct {
	access access
	perm   string   // accessOperator: the permission checked on scope
	scope  resolver // nil: a global check (game, env and function "")
	// audit is the action of the audit row a write writes; "" for reads and
	// for agent traffic (heartbeats, reports: the data plane, not operator
	// actions).
	audit string
	// auditInService: the service writes the row itself once the call
	// reaches it (internal/auth, internal/approval); the edge writes one
	// only for a call it refuses.
	auditInService bool
	read           bool // an operator method that changes nothing
	rate           rateClass
	// agentSelf returns the agent a request acts as (accessAgent).
	agentSelf func(req any) string
	// limits overrides the byte limit of identifier fields by name.
	limits map[string]int
	// request returns an empty request of a server-streaming method, which
	// the edge reads to check it before the handler runs.
	request func() proto.Message
}

// methodTable is the edge's policy: one entry for every method the server
// serves (TestMethodTableCoversEveryMethod fails otherwise).
func (s *Server) methodTable() map[string]rule {
	op := func(perm string, sc resolver, action string) rule {
		return rule{access: accessOperator, perm: perm, scope: sc, audit: action}
	}
	read := func(perm string, sc resolver) rule {
		return rule{access: accessOperator, perm: perm, scope: sc, read: true}
	}
	self := func(action string) rule {
		return rule{access: accessAuthenticated, audit: action, auditInService: true}
	}
	selfRead := rule{access: accessAuthenticated, read: true}
	agent := rule{access: accessAgent}
	public := rule{access: accessPublic}
	fleet := s.fleetScope
	job := s.jobScope

	t := map[string]rule{
		// Sign-in: public; internal/auth audits logins and logouts.
		croupierv1.AuthService_Login_FullMethodName:   {access: accessPublic, audit: audit.ActionLogin, auditInService: true},
		croupierv1.AuthService_Refresh_FullMethodName: public,
		croupierv1.AuthService_Logout_FullMethodName:  {access: accessPublic, audit: audit.ActionLogout, auditInService: true},
		croupierv1.AuthService_WhoAmI_FullMethodName:  selfRead,

		// Users and roles: internal/auth checks user:admin / role:admin
		// (a user may set their own password) and audits each change.
		croupierv1.UserService_CreateUser_FullMethodName:  self(audit.ActionUserCreate),
		croupierv1.UserService_SetPassword_FullMethodName: self(audit.ActionUserPassword),
		croupierv1.UserService_DisableUser_FullMethodName: self(audit.ActionUserDisable),
		croupierv1.UserService_EnableUser_FullMethodName:  self(audit.ActionUserEnable),
		croupierv1.UserService_ListUsers_FullMethodName:   selfRead,
		croupierv1.UserService_GrantRole_FullMethodName:   self(audit.ActionRoleGrant),
		croupierv1.UserService_RevokeRole_FullMethodName:  self(audit.ActionRoleRevoke),
		croupierv1.RoleService_CreateRole_FullMethodName:  self(audit.ActionRoleCreate),
		croupierv1.RoleService_DeleteRole_FullMethodName:  self(audit.ActionRoleDelete),
		croupierv1.RoleService_ListRoles_FullMethodName:   selfRead,

		// Approvals and the audit log: checked per approval / filter by
		// internal/approval and internal/audit.
		croupierv1.ApprovalService_ListApprovals_FullMethodName: selfRead,
		croupierv1.ApprovalService_GetApproval_FullMethodName:   selfRead,
		croupierv1.ApprovalService_Approve_FullMethodName:       self(audit.ActionApprovalApprove),
		croupierv1.ApprovalService_Reject_FullMethodName:        self(audit.ActionApprovalReject),
		croupierv1.AuditService_ListAudit_FullMethodName:        selfRead,
		croupierv1.AuditService_VerifyAudit_FullMethodName:      selfRead,

		croupierv1.CertificateService_RevokeCertificate_FullMethodName:       op(rbac.CertRevoke, nil, "certificate.revoke"),
		croupierv1.CertificateService_ListRevokedCertificates_FullMethodName: read(rbac.CertRevoke, nil),

		// Agents: internal/control checks each acts as itself in its scope.
		croupierv1.ControlService_RegisterAgent_FullMethodName:   agent,
		croupierv1.ControlService_Heartbeat_FullMethodName:       agent,
		croupierv1.ControlService_UpdateInstances_FullMethodName: agent,
		croupierv1.ControlService_GetAssignments_FullMethodName:  agent,
		croupierv1.ControlService_ReportJobEvents_FullMethodName: {access: accessAgent,
			agentSelf: func(r any) string { return r.(*croupierv1.ReportJobEventsRequest).GetAgentId() }},
		croupierv1.ControlService_UpdateAssignment_FullMethodName: op(rbac.AssignmentWrite, fromRequest, "assignment.update"),

		croupierv1.RegistryService_GetRegistrations_FullMethodName: read(rbac.RegistryRead, fromRequest),
		croupierv1.RegistryService_WatchRegistrations_FullMethodName: {access: accessOperator, perm: rbac.RegistryRead,
			scope: fromRequest, read: true, request: func() proto.Message { return &croupierv1.WatchRegistrationsRequest{} }},
		croupierv1.RegistryService_ListAgents_FullMethodName: read(rbac.AgentRead, fromRequest),

		// Invoke and job start: the edge checks the base permission and the
		// rate limits; the admission path (functionHandler.admit, handlers.go) adds the
		// descriptor's permissions, roles and approval, and the audit row's
		// payload and masks.
		croupierv1.FunctionService_InvokeFunction_FullMethodName: {access: accessOperator, perm: rbac.FunctionInvoke,
			scope: fromRequest, audit: audit.ActionInvoke, rate: rateCall},
		croupierv1.FunctionService_InvokeJob_FullMethodName: {access: accessOperator, perm: rbac.JobStart,
			scope: fromRequest, audit: audit.ActionJobStart, rate: rateCall},
		croupierv1.FunctionService_StreamJobEvents_FullMethodName: {access: accessOperator, perm: rbac.JobRead,
			scope: job, read: true, request: func() proto.Message { return &croupierv1.StreamJobEventsRequest{} }},
		croupierv1.FunctionService_CancelJob_FullMethodName:        op(rbac.JobCancel, job, audit.ActionJobCancel),
		croupierv1.FunctionService_RegisterFunction_FullMethodName: op(rbac.FunctionRegister, registeredFunction, "function.register"),
		croupierv1.FunctionService_GetJob_FullMethodName:           read(rbac.JobRead, job),
		croupierv1.FunctionService_ListJobs_FullMethodName:         read(rbac.JobRead, fromRequest),

		croupierv1.FleetService_CreateFleet_FullMethodName:                        op(rbac.FleetWrite, fleet, "fleet.create"),
		croupierv1.FleetService_GetFleet_FullMethodName:                           read(rbac.FleetRead, fleet),
		croupierv1.FleetService_ListFleets_FullMethodName:                         read(rbac.FleetRead, fleet),
		croupierv1.FleetService_UpdateFleet_FullMethodName:                        op(rbac.FleetWrite, fleet, "fleet.update"),
		croupierv1.FleetService_DeleteFleet_FullMethodName:                        op(rbac.FleetWrite, fleet, "fleet.delete"),
		croupierv1.FleetService_ListProcesses_FullMethodName:                      read(rbac.FleetRead, fleet),
		croupierv1.FleetService_GetProcessLog_FullMethodName:                      read(rbac.FleetRead, fleet),
		croupierv1.FleetService_CreateGameServerSession_FullMethodName:            op(rbac.FleetWrite, fleet, "session.create"),
		croupierv1.FleetService_GetGameServerSession_FullMethodName:               read(rbac.FleetRead, fleet),
		croupierv1.FleetService_DescribeGameServerSessions_FullMethodName:         read(rbac.FleetRead, fleet),
		croupierv1.FleetService_SearchGameServerSessions_FullMethodName:           read(rbac.FleetRead, fleet),
		croupierv1.FleetService_UpdateGameServerSession_FullMethodName:            op(rbac.FleetWrite, fleet, "session.update"),
		croupierv1.FleetService_TerminateGameServerSession_FullMethodName:         op(rbac.FleetWrite, fleet, "session.terminate"),
		croupierv1.FleetService_StartGameServerSessionPlacement_FullMethodName:    op(rbac.FleetWrite, fleet, "placement.start"),
		croupierv1.FleetService_DescribeGameServerSessionPlacement_FullMethodName: read(rbac.FleetRead, fleet),
		croupierv1.FleetService_StopGameServerSessionPlacement_FullMethodName:     op(rbac.FleetWrite, fleet, "placement.stop"),
		croupierv1.FleetService_JoinGameServerSession_FullMethodName:              op(rbac.FleetWrite, fleet, "player.join"),
		croupierv1.FleetService_JoinGameServerSessionBatch_FullMethodName:         op(rbac.FleetWrite, fleet, "player.join_batch"),
		croupierv1.FleetService_DescribePlayerSessions_FullMethodName:             read(rbac.FleetRead, fleet),

		// The agent side of the fleet plane: internal/fleet's AgentAPI
		// checks the agent acts as itself (authorizeFleetAgent).
		croupierv1.FleetAgentService_GetAgentFleets_FullMethodName:                    agent,
		croupierv1.FleetAgentService_ReportProcesses_FullMethodName:                   agent,
		croupierv1.FleetAgentService_ActivateGameServerSession_FullMethodName:         agent,
		croupierv1.FleetAgentService_AcceptPlayerSession_FullMethodName:               agent,
		croupierv1.FleetAgentService_RemovePlayerSession_FullMethodName:               agent,
		croupierv1.FleetAgentService_DescribeProcessPlayerSessions_FullMethodName:     agent,
		croupierv1.FleetAgentService_UpdatePlayerSessionCreationPolicy_FullMethodName: agent,
		croupierv1.FleetAgentService_EndGameServerSession_FullMethodName:              agent,
		croupierv1.FleetAgentService_ReportCustomData_FullMethodName:                  agent,

		// The tunnel checks the agent opens it under its own name.
		tunnelv1.TunnelService_Connect_FullMethodName: agent,

		// Health: any authenticated caller (probes use /healthz).
		healthpb.Health_Check_FullMethodName: selfRead,
		healthpb.Health_Watch_FullMethodName: {access: accessAuthenticated, read: true,
			request: func() proto.Message { return &healthpb.HealthCheckRequest{} }},
		healthpb.Health_List_FullMethodName: selfRead,
	}
	return t
}

// fromRequest takes game_id, env and function_id from the request.
func fromRequest(_ context.Context, req any) (scope, error) {
	var sc scope
	if r, ok := req.(interface{ GetGameId() string }); ok {
		sc.game = r.GetGameId()
	}
	if r, ok := req.(interface{ GetEnv() string }); ok {
		sc.env = r.GetEnv()
	}
	if r, ok := req.(interface{ GetFunctionId() string }); ok {
		sc.fn = r.GetFunctionId()
	}
	return sc, nil
}

// registeredFunction is the scope of RegisterFunction: the descriptor's id.
func registeredFunction(_ context.Context, req any) (scope, error) {
	r := req.(*croupierv1.RegisterFunctionRequest)
	return scope{game: r.GetGameId(), env: r.GetEnv(), fn: r.GetDescriptor_().GetId()}, nil
}

// jobScope is the function of the job the request names. A job that does
// not exist has no scope, so only a caller holding the permission on every
// game gets past the edge, to the service's NOT_FOUND; anyone else is
// refused as for a job outside their scopes (rbac.CheckNamed).
func (s *Server) jobScope(ctx context.Context, req any) (scope, error) {
	r, ok := req.(interface{ GetJobId() string })
	if !ok {
		return scope{}, nil
	}
	sc := scope{named: "job " + r.GetJobId()}
	j, err := s.jobs.Get(ctx, r.GetJobId())
	if status.Code(err) == codes.NotFound {
		return sc, nil
	}
	if err != nil {
		return scope{}, err
	}
	sc.game, sc.env, sc.fn = j.GetGameId(), j.GetEnv(), j.GetFunctionId()
	return sc, nil
}
