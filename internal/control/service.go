// Package control implements ControlService: agents register their
// functions and game-server instances, heartbeat, and fetch assignments.
package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/apierr/storeerr"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/registry"
	"github.com/croupier/croupier/internal/schema"
	"google.golang.org/grpc/codes"
)

// Tunnel tells whether an agent's tunnel is connected.
type Tunnel interface {
	Connected(name string) bool
}

// Config tunes the service.
type Config struct {
	HeartbeatInterval time.Duration
	Logger            *slog.Logger
	// Departed is told which instances an agent reports as gone (their
	// process exited), as instance id -> incarnation.
	Departed func(agentID string, gone map[string]string)
}

// Service is the ControlService logic.
type Service struct {
	cfg         Config
	log         *slog.Logger
	reg         *registry.Registry
	assignments *Assignments
	scopes      *Scopes
	tunnel      Tunnel
	now         func() time.Time
	// validated compiles each distinct descriptor's schemas once, not once
	// per agent registration.
	validated *schema.Validated
}

// New returns a Service.
func New(cfg Config, reg *registry.Registry, assignments *Assignments, scopes *Scopes, tunnel Tunnel) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg, log: cfg.Logger, reg: reg, assignments: assignments, scopes: scopes, tunnel: tunnel, now: time.Now,
		validated: schema.NewValidated(0)}
}

// AuthorizeAgent checks that the caller may act as agentID in game/env: the
// one agent check of the control and fleet planes (the server's edge admits
// only agents to their agent methods; this checks which agent).
func AuthorizeAgent(p principal.Principal, agentID, game, env string) error {
	switch p.Kind {
	case principal.Anonymous:
		return nil // plaintext loopback: trusted by configuration
	case principal.Agent:
		if p.Name != agentID {
			return apierr.New(codes.PermissionDenied, apierr.CodeScopeMismatch,
				fmt.Sprintf("credential is for agent %q, not %q", p.Name, agentID), "agent_id", agentID)
		}
		if p.Game != "" && (game != "" && p.Game != game || env != "" && p.Env != env) {
			return apierr.New(codes.PermissionDenied, apierr.CodeScopeMismatch,
				fmt.Sprintf("agent %s is confined to %s/%s by its credential and cannot register for %s/%s", agentID, p.Game, p.Env, game, env),
				"game_id", game, "env", env)
		}
		return nil
	default:
		return apierr.New(codes.PermissionDenied, apierr.CodeScopeMismatch, "only agents may call agent methods")
	}
}

// holdsTunnel refuses a change to agent id's record unless this node holds
// its tunnel: in a cluster the record on other nodes is a copy of the
// holder's, and an agent whose calls reach another node must move its
// tunnel there first.
func (s *Service) holdsTunnel(id string) error {
	if s.tunnel.Connected(id) {
		return nil
	}
	return apierr.New(codes.FailedPrecondition, apierr.CodeAgentNotConnected,
		"agent "+id+" has no open tunnel to this server node; connect the tunnel to it first", "agent_id", id)
}

// RegisterAgent adds or replaces the registration of an agent.
func (s *Service) RegisterAgent(ctx context.Context, req *croupierv1.RegisterAgentRequest) (*croupierv1.RegisterAgentResponse, error) {
	id, game, env := req.GetAgentId(), req.GetGameId(), req.GetEnv()
	if id == "" || game == "" || env == "" {
		return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "agent_id, game_id and env are required")
	}
	if err := AuthorizeAgent(principal.FromContext(ctx), id, game, env); err != nil {
		return nil, err
	}
	if ok, err := s.scopes.Declared(ctx, game, env); err != nil {
		return nil, s.internal(err)
	} else if !ok {
		return nil, apierr.New(codes.FailedPrecondition, apierr.CodeUnknownScope,
			fmt.Sprintf("scope %s/%s is not declared on the server; an administrator must declare it (server --scopes)", game, env),
			"game_id", game, "env", env)
	}
	if err := s.holdsTunnel(id); err != nil {
		return nil, err
	}
	agent, err := buildAgent(req, s.now(), s.validated)
	if err != nil {
		return nil, err
	}
	if err := s.reg.Upsert(agent); err != nil {
		return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, err.Error())
	}
	s.log.Info("agent registered", "agent", id, "game", game, "env", env, "instances", len(agent.Instances), "functions", len(agent.Descriptors))
	s.departed(id, req.GetDeparted())
	return &croupierv1.RegisterAgentResponse{Success: true, AgentId: id, HeartbeatInterval: int64(max(1, s.cfg.HeartbeatInterval/time.Second))}, nil
}

// UpdateInstances applies a change to some of a registered agent's
// instances (see registry.UpdateInstances).
func (s *Service) UpdateInstances(ctx context.Context, req *croupierv1.UpdateInstancesRequest) (*croupierv1.UpdateInstancesResponse, error) {
	id := req.GetAgentId()
	game, env, ok := s.reg.AgentScope(id)
	if !ok {
		return nil, apierr.New(codes.NotFound, apierr.CodeAgentNotFound,
			"agent "+id+" is not registered; call RegisterAgent", "agent_id", id)
	}
	if err := AuthorizeAgent(principal.FromContext(ctx), id, game, env); err != nil {
		return nil, err
	}
	if err := s.holdsTunnel(id); err != nil {
		return nil, err
	}
	for _, d := range req.GetDescriptors() {
		if err := s.validated.Validate(d); err != nil {
			return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidDescriptor,
				fmt.Sprintf("descriptor %q: %v", d.GetId(), err), "function_id", d.GetId())
		}
	}
	upsert := make([]registry.Instance, 0, len(req.GetUpserted()))
	for _, in := range req.GetUpserted() {
		upsert = append(upsert, registry.Instance{ID: in.GetInstanceId(), Functions: in.GetFunctions(), Labels: in.GetLabels(), Incarnation: in.GetIncarnation()})
	}
	switch err := s.reg.UpdateInstances(id, upsert, req.GetRemoved(), req.GetDescriptors()); {
	case errors.Is(err, registry.ErrNotFound):
		return nil, apierr.New(codes.NotFound, apierr.CodeAgentNotFound, err.Error()+"; call RegisterAgent", "agent_id", id)
	case err != nil:
		return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, err.Error())
	}
	s.departed(id, req.GetDeparted())
	return &croupierv1.UpdateInstancesResponse{}, nil
}

// departed tells the jobs service which instances an agent reports gone.
func (s *Service) departed(agentID string, infos []*croupierv1.InstanceInfo) {
	if len(infos) == 0 || s.cfg.Departed == nil {
		return
	}
	gone := make(map[string]string, len(infos))
	for _, d := range infos {
		gone[d.GetInstanceId()] = d.GetIncarnation()
	}
	s.cfg.Departed(agentID, gone)
}

// buildAgent turns a request into a registry entry, validating every
// descriptor so a bad schema is refused with a message that says why.
// Functions listed without a descriptor get the registry's lowest-ranked
// stand-in, so they never shadow a descriptor registered elsewhere.
func buildAgent(req *croupierv1.RegisterAgentRequest, now time.Time, validated *schema.Validated) (registry.Agent, error) {
	descs := map[string]*croupierv1.FunctionDescriptor{}
	for _, d := range req.GetDescriptors() {
		if err := validated.Validate(d); err != nil {
			return registry.Agent{}, apierr.New(codes.InvalidArgument, apierr.CodeInvalidDescriptor,
				fmt.Sprintf("descriptor %q: %v", d.GetId(), err), "function_id", d.GetId())
		}
		descs[d.GetId()] = d
	}
	instances := req.GetInstances()
	if len(instances) == 0 && len(req.GetFunctions()) > 0 {
		// A seed-style agent that lists functions without instances is one instance.
		instances = []*croupierv1.InstanceInfo{{InstanceId: "default", Functions: req.GetFunctions()}}
	}
	a := registry.Agent{
		ID: req.GetAgentId(), GameID: req.GetGameId(), Env: req.GetEnv(), Version: req.GetVersion(),
		Labels: req.GetLabels(), LastHeartbeat: now,
	}
	for _, in := range instances {
		if in.GetInstanceId() == "" {
			return registry.Agent{}, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "instance_id is required for every instance")
		}
		a.Instances = append(a.Instances, registry.Instance{ID: in.GetInstanceId(), Functions: in.GetFunctions(), Labels: in.GetLabels(), Incarnation: in.GetIncarnation()})
	}
	ids := make([]string, 0, len(descs))
	for id := range descs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		a.Descriptors = append(a.Descriptors, descs[id])
	}
	return a, nil
}

// Heartbeat records that an agent is alive. It copies nothing: the agent's
// scope is all it reads of the registration.
func (s *Service) Heartbeat(ctx context.Context, req *croupierv1.HeartbeatRequest) (*croupierv1.HeartbeatResponse, error) {
	id := req.GetAgentId()
	game, env, ok := s.reg.AgentScope(id)
	if !ok {
		return nil, apierr.New(codes.NotFound, apierr.CodeAgentNotFound,
			"agent "+id+" is not registered; call RegisterAgent again", "agent_id", id)
	}
	if err := AuthorizeAgent(principal.FromContext(ctx), id, game, env); err != nil {
		return nil, err
	}
	if err := s.reg.Heartbeat(id, s.now()); err != nil {
		return nil, apierr.New(codes.NotFound, apierr.CodeAgentNotFound, err.Error(), "agent_id", id)
	}
	v, err := s.assignments.Version(ctx, game, env)
	if err != nil {
		return nil, s.internal(err)
	}
	return &croupierv1.HeartbeatResponse{Success: true, AssignmentsVersion: v}, nil
}

// TunnelHeartbeat counts a ping on agentID's tunnel as its heartbeat and
// returns the assignment version of its game/env, for the pong
// (tunnel.ServerOptions.OnPing). The tunnel admitted the connection under
// this name, which is the authorization Heartbeat checks per call. ok is
// false when the agent is not registered (the agent then calls Heartbeat,
// which answers NOT_FOUND, and registers again) or the scope's version was
// never read on this node (the agent then calls Heartbeat once, which reads
// it).
//
// It runs on the tunnel's reader, so it never waits for the store: the
// version is the cached one, possibly up to a refresh old
// (Assignments.CachedVersion), which the agent sees on its next ping.
func (s *Service) TunnelHeartbeat(agentID string) (version int64, ok bool) {
	game, env, found := s.reg.AgentScope(agentID)
	if !found || s.reg.Heartbeat(agentID, s.now()) != nil {
		return 0, false
	}
	return s.assignments.CachedVersion(game, env)
}

// GetAssignments returns the assignments of the functions the agent serves.
func (s *Service) GetAssignments(ctx context.Context, req *croupierv1.GetAssignmentsRequest) (*croupierv1.GetAssignmentsResponse, error) {
	a, ok := s.reg.Agent(req.GetAgentId())
	if !ok {
		return nil, apierr.New(codes.NotFound, apierr.CodeAgentNotFound, "agent "+req.GetAgentId()+" is not registered", "agent_id", req.GetAgentId())
	}
	if err := AuthorizeAgent(principal.FromContext(ctx), a.ID, a.GameID, a.Env); err != nil {
		return nil, err
	}
	fns := make([]string, 0, len(a.Descriptors))
	for _, d := range a.Descriptors {
		fns = append(fns, d.GetId())
	}
	list, v, err := s.assignments.ForFunctions(ctx, a.GameID, a.Env, fns)
	if err != nil {
		return nil, s.internal(err)
	}
	return &croupierv1.GetAssignmentsResponse{Assignments: list, Version: v}, nil
}

// UpdateAssignment sets one function's assignment (operator call).
func (s *Service) UpdateAssignment(ctx context.Context, req *croupierv1.UpdateAssignmentRequest) (*croupierv1.UpdateAssignmentResponse, error) {
	game, env, fn := req.GetGameId(), req.GetEnv(), req.GetFunctionId()
	if game == "" || env == "" || fn == "" {
		return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "game_id, env and function_id are required")
	}
	if ok, err := s.scopes.Declared(ctx, game, env); err != nil {
		return nil, s.internal(err)
	} else if !ok {
		return nil, apierr.New(codes.NotFound, apierr.CodeUnknownScope, fmt.Sprintf("scope %s/%s is not declared", game, env))
	}
	v, err := s.assignments.Set(ctx, game, env, fn, req.GetEnabled(), req.GetConfig())
	if err != nil {
		return nil, s.internal(err)
	}
	s.reg.SetEnabled(game, env, fn, req.GetEnabled())
	return &croupierv1.UpdateAssignmentResponse{
		Assignment: &croupierv1.FunctionAssignment{FunctionId: fn, Enabled: req.GetEnabled(), Config: req.GetConfig()},
		Version:    v,
	}, nil
}

// Expire removes agents that missed three heartbeats and returns their ids.
func (s *Service) Expire() []string {
	ids := s.reg.Expired(s.now().Add(-3 * s.cfg.HeartbeatInterval))
	for _, id := range ids {
		s.reg.Remove(id)
		s.log.Warn("agent missed three heartbeats; removed", "agent", id)
	}
	return ids
}

// internal maps a store failure to its status (storeerr.ToStatus): a
// caller that went away or ran out of time is not the server's fault and
// is reported as such, an unavailable database as UNAVAILABLE, anything
// else as INTERNAL, logged with an id.
func (s *Service) internal(err error) error {
	return storeerr.ToStatus(context.Background(), s.log, err)
}
