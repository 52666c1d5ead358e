package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/gse/launchpath"
	"github.com/croupier/croupier/internal/store"
)

// CreateFleet validates f, fills defaults and stores it. The scope must be
// declared.
func (s *Service) CreateFleet(ctx context.Context, f *croupierv1.Fleet) (*croupierv1.Fleet, error) {
	if f == nil {
		return nil, invalidArg("fleet is required")
	}
	f = proto.Clone(f).(*croupierv1.Fleet)
	if f.GetFleetId() == "" {
		f.FleetId = newID("fleet")
	}
	if err := normaliseFleet(f); err != nil {
		return nil, err
	}
	if err := s.checkLaunchPaths(f); err != nil {
		return nil, err
	}
	if err := s.st.Fleets().Create(ctx, f); err != nil {
		switch {
		case errors.Is(err, store.ErrConflict):
			return nil, newErr(codes.AlreadyExists, CodeFleetExists, "fleet %s already exists", f.GetFleetId())
		case errors.Is(err, store.ErrNotFound):
			return nil, newErr(codes.FailedPrecondition, CodeUnknownScope, "scope %s/%s is not declared", f.GetGameId(), f.GetEnv())
		}
		return nil, storeErr(err, CodeFleetNotFound)
	}
	s.agent.SyncFleets(ctx, f.GetGameId(), f.GetEnv())
	return f, nil
}

// GetFleet returns one fleet.
func (s *Service) GetFleet(ctx context.Context, id string) (*croupierv1.Fleet, error) {
	if id == "" {
		return nil, invalidArg("fleet_id is required")
	}
	f, err := s.st.Fleets().Get(ctx, id)
	if err != nil {
		return nil, storeErr(err, CodeFleetNotFound)
	}
	return f, nil
}

// ListFleets returns the fleets of a scope (both empty: all).
func (s *Service) ListFleets(ctx context.Context, gameID, env string) ([]*croupierv1.Fleet, error) {
	if (gameID == "") != (env == "") {
		return nil, invalidArg("give both game_id and env, or neither")
	}
	fs, err := s.st.Fleets().List(ctx, gameID, env)
	return fs, storeErr(err, CodeFleetNotFound)
}

// UpdateFleet replaces a fleet's mutable attributes; a non-zero version
// makes it a compare-and-set.
func (s *Service) UpdateFleet(ctx context.Context, f *croupierv1.Fleet) (*croupierv1.Fleet, error) {
	if f == nil || f.GetFleetId() == "" {
		return nil, invalidArg("fleet.fleet_id is required")
	}
	f = proto.Clone(f).(*croupierv1.Fleet)
	cur, err := s.GetFleet(ctx, f.GetFleetId())
	if err != nil {
		return nil, err
	}
	// Game and env are fixed at creation; fill them so validation passes
	// when the caller left them out.
	if f.GetGameId() == "" && f.GetEnv() == "" {
		f.GameId, f.Env = cur.GetGameId(), cur.GetEnv()
	}
	if f.GetGameId() != cur.GetGameId() || f.GetEnv() != cur.GetEnv() {
		return nil, invalidArg("a fleet cannot move to another game/env (it is %s/%s)", cur.GetGameId(), cur.GetEnv())
	}
	if err := normaliseFleet(f); err != nil {
		return nil, err
	}
	if err := s.checkLaunchPaths(f); err != nil {
		return nil, err
	}
	if err := s.st.Fleets().Update(ctx, f); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, newErr(codes.Aborted, CodeFleetChanged, "%s", store.Message(err))
		}
		return nil, storeErr(err, CodeFleetNotFound)
	}
	s.agent.SyncFleets(ctx, f.GetGameId(), f.GetEnv())
	return f, nil
}

// DeleteFleet deletes a fleet that hosts no live session. Its history
// (sessions, player sessions, placements) goes with it.
func (s *Service) DeleteFleet(ctx context.Context, id string) error {
	f, err := s.GetFleet(ctx, id)
	if err != nil {
		return err
	}
	live, err := s.st.GameServerSessions().ListLive(ctx, id, 1)
	if err != nil {
		return storeErr(err, CodeFleetNotFound)
	}
	if len(live) > 0 {
		return newErr(codes.FailedPrecondition, CodeFleetInUse,
			"fleet %s hosts live game server sessions (e.g. %s); terminate them first", id, live[0].ID)
	}
	if err := s.st.Fleets().Delete(ctx, id); err != nil {
		return storeErr(err, CodeFleetNotFound)
	}
	s.agent.SyncFleets(ctx, f.GetGameId(), f.GetEnv())
	return nil
}

// NoteAgentBuildDirs records the build directories an agent reports (with
// GetAgentFleets), against which CreateFleet and UpdateFleet check launch
// paths.
func (s *Service) NoteAgentBuildDirs(agentID, gameID, env string, labels map[string]string, dirs []string) error {
	if err := checkBuildDirs(dirs); err != nil {
		return err
	}
	s.buildDirs.note(agentID, gameID, env, labels, dirs, s.now())
	return nil
}

// AgentFleets returns the fleets an agent of game/env with these labels
// hosts: those whose agent_selector its labels satisfy.
func (s *Service) AgentFleets(ctx context.Context, gameID, env string, labels map[string]string) ([]*croupierv1.Fleet, error) {
	if gameID == "" || env == "" {
		return nil, invalidArg("game_id and env are required")
	}
	all, err := s.st.Fleets().List(ctx, gameID, env)
	if err != nil {
		return nil, storeErr(err, CodeFleetNotFound)
	}
	out := all[:0]
	for _, f := range all {
		if selects(f.GetAgentSelector(), labels) {
			out = append(out, f)
		}
	}
	return out, nil
}

func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ListProcesses returns a fleet's processes, optionally of one agent or
// status.
func (s *Service) ListProcesses(ctx context.Context, req *croupierv1.ListProcessesRequest) ([]*croupierv1.Process, error) {
	if _, err := s.GetFleet(ctx, req.GetFleetId()); err != nil {
		return nil, err
	}
	ps, err := s.st.Processes().List(ctx, store.ProcessFilter{FleetID: req.GetFleetId(), AgentID: req.GetAgentId(), Status: req.GetStatus()})
	if err != nil {
		return nil, storeErr(err, CodeProcessNotFound)
	}
	out := make([]*croupierv1.Process, len(ps))
	for i := range ps {
		out[i] = processToProto(&ps[i])
	}
	return out, nil
}

// Log reads are bounded so one call never moves a large file through the
// tunnel.
const (
	defaultLogChunk = 64 << 10
	maxLogChunk     = 1 << 20
)

// GetProcessLog reads part of a log file of a process from its agent.
func (s *Service) GetProcessLog(ctx context.Context, req *croupierv1.GetProcessLogRequest) (*croupierv1.FetchProcessLogResult, error) {
	if req.GetPath() == "" {
		return nil, invalidArg("path is required: one of the process's log_paths, or \"stdout\"")
	}
	if req.GetOffset() < 0 {
		return nil, invalidArg("offset must not be negative")
	}
	limit := req.GetLimit()
	switch {
	case limit == 0:
		limit = defaultLogChunk
	case limit < 0 || limit > maxLogChunk:
		return nil, invalidArg("limit %d is out of range 1..%d", limit, maxLogChunk)
	}
	p, err := s.st.Processes().Get(ctx, req.GetProcessId())
	if err != nil {
		return nil, storeErr(err, CodeProcessNotFound)
	}
	if p.FleetID != req.GetFleetId() {
		return nil, newErr(codes.NotFound, CodeProcessNotFound, "process %s is not in fleet %s", p.ID, req.GetFleetId())
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.AgentCommandTimeout)
	defer cancel()
	res, err := s.agent.FetchProcessLog(cctx, p.AgentID, &croupierv1.FetchProcessLogCommand{
		ProcessId: p.ID, Path: req.GetPath(), Offset: req.GetOffset(), Limit: limit,
	})
	if err != nil {
		return nil, agentErr(p.AgentID, err)
	}
	return res, nil
}

// normaliseFleet validates f and fills defaults in place.
func normaliseFleet(f *croupierv1.Fleet) error {
	if !validID(f.GetFleetId(), 64) {
		return invalidArg("fleet_id %q: use 1-64 letters, digits, '-', '_' or '.'", f.GetFleetId())
	}
	if !validID(f.GetGameId(), 64) || !validID(f.GetEnv(), 64) {
		return invalidArg("game_id and env are required (letters, digits, '-', '_', '.')")
	}
	if err := checkText("name", f.GetName(), MaxNameBytes); err != nil {
		return err
	}
	if err := checkText("description", f.GetDescription(), MaxNameBytes); err != nil {
		return err
	}
	if f.RuntimeConfiguration == nil {
		f.RuntimeConfiguration = &croupierv1.RuntimeConfiguration{}
	}
	rc := f.RuntimeConfiguration
	total := 0
	for i, sp := range rc.GetServerProcesses() {
		if err := launchpath.CheckSyntax(sp.GetLaunchPath()); err != nil {
			return invalidArg("runtime_configuration.server_processes[%d]: %v", i, err)
		}
		if sp.GetConcurrentExecutions() < 1 {
			return invalidArg("runtime_configuration.server_processes[%d].concurrent_executions must be at least 1", i)
		}
		total += int(sp.GetConcurrentExecutions())
		if n := len(sp.GetParameters()); n > MaxParameters {
			return invalidArg("runtime_configuration.server_processes[%d].parameters has %d entries; at most %d are allowed", i, n, MaxParameters)
		}
		for j, p := range sp.GetParameters() {
			if err := checkText(fmt.Sprintf("runtime_configuration.server_processes[%d].parameters[%d]", i, j), p, MaxParameterBytes); err != nil {
				return err
			}
		}
		if n := len(sp.GetEnvironment()); n > MaxEnvironment {
			return invalidArg("runtime_configuration.server_processes[%d].environment has %d entries; at most %d are allowed", i, n, MaxEnvironment)
		}
		for k, v := range sp.GetEnvironment() {
			if !validEnvName(k) || len(k) > 128 {
				return invalidArg("runtime_configuration.server_processes[%d].environment: %.32q is not a variable name (letters, digits, '_', at most 128 bytes)", i, k)
			}
			if err := launchpath.CheckEnvName(k); err != nil {
				return invalidArg("runtime_configuration.server_processes[%d].environment: %v (docs/fleet.md, Trust model)", i, err)
			}
			if err := checkText(fmt.Sprintf("runtime_configuration.server_processes[%d].environment[%s]", i, k), v, MaxEnvironmentBytes); err != nil {
				return err
			}
		}
	}
	if total > MaxServerProcesses {
		return invalidArg("runtime_configuration runs %d processes per agent; at most %d are allowed", total, MaxServerProcesses)
	}
	at := rc.GetGameServerSessionActivationTimeoutSeconds()
	switch {
	case at == 0:
		rc.GameServerSessionActivationTimeoutSeconds = int32(DefaultActivationTimeout / time.Second)
	case at < 0 || time.Duration(at)*time.Second > MaxActivationTimeout:
		return invalidArg("game_server_session_activation_timeout_seconds %d is out of range 1..%d", at, int(MaxActivationTimeout/time.Second))
	}
	if rc.GetMaxConcurrentGameServerSessionActivations() < 0 {
		return invalidArg("max_concurrent_game_server_session_activations must not be negative")
	}
	switch f.GetProtectionPolicy() {
	case "":
		f.ProtectionPolicy = NoProtection
	case NoProtection, FullProtection:
	case TimeLimitProtection:
		if m := f.GetProtectionTimeLimitMinutes(); m < 1 || m > MaxProtectionTimeLimit {
			return invalidArg("TimeLimitProtection needs protection_time_limit_minutes in 1..%d, got %d", MaxProtectionTimeLimit, m)
		}
	default:
		return invalidArg("protection_policy %q: use NoProtection, TimeLimitProtection or FullProtection", f.GetProtectionPolicy())
	}
	if f.GetProtectionTimeLimitMinutes() < 0 {
		return invalidArg("protection_time_limit_minutes must not be negative")
	}
	rt := f.GetPlayerSessionReservationTimeoutSeconds()
	switch {
	case rt == 0:
		f.PlayerSessionReservationTimeoutSeconds = int32(DefaultReservationTimeout / time.Second)
	case rt < 0 || time.Duration(rt)*time.Second > MaxReservationTimeout:
		return invalidArg("player_session_reservation_timeout_seconds %d is out of range 1..%d", rt, int(MaxReservationTimeout/time.Second))
	}
	for k := range f.GetAgentSelector() {
		if k == "" {
			return invalidArg("agent_selector has an empty key")
		}
	}
	return nil
}

func validEnvName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func activationTimeout(f *croupierv1.Fleet) time.Duration {
	if s := f.GetRuntimeConfiguration().GetGameServerSessionActivationTimeoutSeconds(); s > 0 {
		return time.Duration(s) * time.Second
	}
	return DefaultActivationTimeout
}

func reservationTimeout(f *croupierv1.Fleet) time.Duration {
	if s := f.GetPlayerSessionReservationTimeoutSeconds(); s > 0 {
		return time.Duration(s) * time.Second
	}
	return DefaultReservationTimeout
}

// agentErr reports a failed command to an agent.
func agentErr(agentID string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return newErr(codes.Unavailable, CodeAgentUnavailable, "agent %s did not answer in time", agentID)
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown && st.Code() != codes.Unavailable && st.Code() != codes.Internal {
		code := CodeInvalidArgument
		if info := apierr.Info(err); info != nil {
			code = info.GetCode()
		} else if st.Code() == codes.NotFound {
			code = CodeProcessNotFound
		}
		return &Error{GRPC: st.Code(), Code: code, Msg: "agent " + agentID + ": " + st.Message(), cause: err}
	}
	e := newErr(codes.Unavailable, CodeAgentUnavailable, "agent %s: %v", agentID, status.Convert(err).Message())
	e.cause = err
	return e
}
