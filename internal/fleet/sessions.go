package fleet

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/store"
)

// Status reasons of sessions and processes ended by the fleet service.
const (
	ReasonActivationTimeout   = "ACTIVATION_TIMEOUT"
	ReasonActivationFailed    = "ACTIVATION_FAILED"
	ReasonProcessEnded        = "PROCESS_ENDED"
	ReasonInterrupted         = "INTERRUPTED"
	ReasonTerminatedByProcess = "TERMINATED_BY_PROCESS"
	ReasonTerminatedByUser    = "TERMINATED_BY_OPERATOR"
	ReasonForceTerminated     = "FORCE_TERMINATED"
)

var liveStatuses = []string{store.GSSActivating, store.GSSActive, store.GSSTerminating}

// sessionSpec is what a new session is made of, from a create request or a
// placement.
type sessionSpec struct {
	id, name, creator, data, token string
	maxPlayers                     int32
	props                          []*croupierv1.GameProperty
}

func (sp *sessionSpec) validate() error {
	if err := checkMaxPlayers(sp.maxPlayers); err != nil {
		return err
	}
	if sp.id != "" && !validID(sp.id, MaxIDBytes) {
		return invalidArg("game_server_session_id %q: use 1-%d letters, digits, '-', '_' or '.'", sp.id, MaxIDBytes)
	}
	if sp.token != "" && !validID(sp.token, MaxIDBytes) {
		return invalidArg("idempotency_token: use 1-%d letters, digits, '-', '_' or '.'", MaxIDBytes)
	}
	for _, c := range []struct {
		field, v string
		max      int
	}{{"name", sp.name, MaxNameBytes}, {"creator_id", sp.creator, MaxNameBytes}, {"game_server_session_data", sp.data, MaxSessionDataBytes}} {
		if err := checkText(c.field, c.v, c.max); err != nil {
			return err
		}
	}
	return checkProperties(sp.props)
}

func (s *Service) newSession(f *croupierv1.Fleet, sp *sessionSpec) *store.GameServerSession {
	id := sp.id
	if id == "" {
		id = newID("gssn")
	}
	return &store.GameServerSession{
		ID: id, FleetID: f.GetFleetId(), GameID: f.GetGameId(), Env: f.GetEnv(), Name: sp.name, CreatorID: sp.creator,
		MaxPlayers: int(sp.maxPlayers), Properties: propsFromProto(sp.props), SessionData: sp.data,
		IdempotencyToken: sp.token, CreationPolicy: store.PolicyAcceptAll,
		ActivationDeadline: s.now().Add(activationTimeout(f)),
	}
}

// CreateGameServerSession places a new session on a free process of the
// fleet (ACTIVATING) and hands it to the process in the background; the
// process activates it. RESOURCE_EXHAUSTED when no process is free.
func (s *Service) CreateGameServerSession(ctx context.Context, req *croupierv1.CreateGameServerSessionRequest) (*croupierv1.GameServerSession, error) {
	sp := &sessionSpec{id: req.GetGameServerSessionId(), name: req.GetName(), creator: req.GetCreatorId(),
		data: req.GetGameServerSessionData(), token: req.GetIdempotencyToken(), maxPlayers: req.GetMaxPlayers(),
		props: req.GetGameProperties()}
	if err := sp.validate(); err != nil {
		return nil, err
	}
	f, err := s.GetFleet(ctx, req.GetFleetId())
	if err != nil {
		return nil, err
	}
	placed, existing, err := s.st.GameServerSessions().Place(ctx, s.newSession(f, sp), "")
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, newErr(codes.AlreadyExists, CodeSessionExists, "game server session %s already exists", sp.id)
		}
		return nil, storeErr(err, CodeFleetNotFound)
	}
	if !existing {
		s.startOnProcess(placed)
	}
	return sessionToProto(placed), nil
}

// startOnProcess hands a placed session to its process in the background.
// The process normally activates it before its callback returns; a refusal
// or an unreachable agent makes the session ERROR and frees the process. A
// callback still running at the activation deadline is abandoned: the
// sweeper's activation timeout ends the session.
//
// The goroutines are bounded by the fleet's processes: each hosts at most
// one ACTIVATING session.
func (s *Service) startOnProcess(g *store.GameServerSession) {
	s.goBackground(func(ctx context.Context) {
		cctx, cancel := context.WithDeadline(ctx, g.ActivationDeadline)
		defer cancel()
		res, err := s.agent.StartGameServerSession(cctx, g.AgentID, &croupierv1.StartGameServerSessionCommand{
			ProcessId: g.ProcessID, GameServerSession: sessionToProto(g),
		})
		if err == nil && res.GetOk() {
			return
		}
		if ctx.Err() != nil || cctx.Err() != nil {
			return // shutting down, or the activation timeout handles it
		}
		why := res.GetErrorMessage()
		if err != nil {
			why = err.Error()
		}
		s.log.Warn("game server session was not started on its process", "session", g.ID,
			"process", g.ProcessID, "agent", g.AgentID, "reason", why)
		ectx, ecancel := context.WithTimeout(ctx, s.cfg.AgentCommandTimeout)
		defer ecancel()
		if _, applied, err := s.st.GameServerSessions().End(ectx, g.ID, []string{store.GSSActivating}, store.GSSError, ReasonActivationFailed); err != nil {
			s.log.Error("ending a session that failed to start", "session", g.ID, "err", err)
		} else if applied {
			s.wake()
		}
	})
}

// GetGameServerSession returns one session.
func (s *Service) GetGameServerSession(ctx context.Context, id string) (*croupierv1.GameServerSession, error) {
	if id == "" {
		return nil, invalidArg("game_server_session_id is required")
	}
	g, err := s.st.GameServerSessions().Get(ctx, id)
	if err != nil {
		return nil, storeErr(err, CodeSessionNotFound)
	}
	return sessionToProto(g), nil
}

// DescribeGameServerSessions lists a fleet's sessions, newest first.
func (s *Service) DescribeGameServerSessions(ctx context.Context, req *croupierv1.DescribeGameServerSessionsRequest) ([]*croupierv1.GameServerSession, string, error) {
	size, err := pageSize(req.GetLimit())
	if err != nil {
		return nil, "", err
	}
	if _, err := s.GetFleet(ctx, req.GetFleetId()); err != nil {
		return nil, "", err
	}
	var statuses []string
	if st := req.GetStatusFilter(); st != "" {
		switch st {
		case store.GSSActivating, store.GSSActive, store.GSSTerminating, store.GSSTerminated, store.GSSError:
			statuses = []string{st}
		default:
			return nil, "", invalidArg("status_filter %q: use ACTIVATING, ACTIVE, TERMINATING, TERMINATED or ERROR", st)
		}
	}
	list, next, err := s.st.GameServerSessions().List(ctx, store.GSSFilter{
		FleetID: req.GetFleetId(), Statuses: statuses, PageSize: size, PageToken: req.GetNextToken(),
	})
	if err != nil {
		return nil, "", storeErr(err, CodeFleetNotFound)
	}
	out := make([]*croupierv1.GameServerSession, len(list))
	for i := range list {
		out[i] = sessionToProto(&list[i])
	}
	return out, next, nil
}

// UpdateGameServerSession changes a live session's name, capacity or
// player session creation policy.
func (s *Service) UpdateGameServerSession(ctx context.Context, req *croupierv1.UpdateGameServerSessionRequest) (*croupierv1.GameServerSession, error) {
	if req.GetGameServerSessionId() == "" {
		return nil, invalidArg("game_server_session_id is required")
	}
	var u store.GSSUpdate
	if req.Name != nil {
		if err := checkText("name", req.GetName(), MaxNameBytes); err != nil {
			return nil, err
		}
		u.Name = req.Name
	}
	if req.MaxPlayers != nil {
		if err := checkMaxPlayers(req.GetMaxPlayers()); err != nil {
			return nil, err
		}
		n := int(req.GetMaxPlayers())
		u.MaxPlayers = &n
	}
	if req.PlayerSessionCreationPolicy != nil {
		if err := checkPolicy(req.GetPlayerSessionCreationPolicy()); err != nil {
			return nil, err
		}
		u.CreationPolicy = req.PlayerSessionCreationPolicy
	}
	if u.Name == nil && u.MaxPlayers == nil && u.CreationPolicy == nil {
		return nil, invalidArg("nothing to update: set name, max_players or player_session_creation_policy")
	}
	g, err := s.st.GameServerSessions().Update(ctx, req.GetGameServerSessionId(), u)
	if err != nil {
		return nil, storeErr(err, CodeSessionNotFound)
	}
	return sessionToProto(g), nil
}

func checkPolicy(p string) error {
	if p != store.PolicyAcceptAll && p != store.PolicyDenyAll {
		return invalidArg("player session creation policy %q: use ACCEPT_ALL or DENY_ALL", p)
	}
	return nil
}

// TerminateGameServerSession ends a session. Gracefully, the session is
// TERMINATING and its process is asked to end (OnProcessTerminate); the
// session is TERMINATED when the process ends it or exits. With force it is
// TERMINATED at once and the process is killed. Terminating an ended
// session returns it unchanged.
func (s *Service) TerminateGameServerSession(ctx context.Context, id string, force bool) (*croupierv1.GameServerSession, error) {
	g, err := s.st.GameServerSessions().Get(ctx, id)
	if err != nil {
		return nil, storeErr(err, CodeSessionNotFound)
	}
	if store.GSSEnded(g.Status) {
		return sessionToProto(g), nil
	}
	now := s.now()
	cmd := &croupierv1.TerminateProcessCommand{ProcessId: g.ProcessID, Force: force, Reason: ReasonTerminatedByUser,
		TerminationTimeMs: now.Add(DefaultTerminationGrace).UnixMilli()}
	if force {
		cmd.Reason, cmd.TerminationTimeMs = ReasonForceTerminated, now.UnixMilli()
		g, _, err = s.st.GameServerSessions().End(ctx, id, liveStatuses, store.GSSTerminated, ReasonForceTerminated)
	} else if g.Status != store.GSSTerminating {
		g, err = s.st.GameServerSessions().SetStatus(ctx, id, []string{store.GSSActivating, store.GSSActive}, store.GSSTerminating, ReasonTerminatedByUser)
	}
	if err != nil {
		return nil, storeErr(err, CodeSessionNotFound)
	}
	s.endProcess(g.AgentID, g.ProcessID, cmd)
	return sessionToProto(g), nil
}

// endProcess marks a process TERMINATING (so it gets no new session) and
// sends its agent the command in the background.
func (s *Service) endProcess(agentID, processID string, cmd *croupierv1.TerminateProcessCommand) {
	s.goBackground(func(ctx context.Context) {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.AgentCommandTimeout)
		defer cancel()
		if _, err := s.st.Processes().MarkTerminating(cctx, processID, cmd.GetReason()); err != nil {
			s.log.Warn("marking a process terminating", "process", processID, "err", err)
		}
		if err := s.agent.TerminateProcess(cctx, agentID, cmd); err != nil && ctx.Err() == nil {
			s.log.Warn("agent did not take a terminate command; the process ends when the agent reports it gone",
				"agent", agentID, "process", processID, "err", err)
		}
	})
}

// expireActivations ends ACTIVATING sessions past their deadline and ends
// their processes, which failed to activate in time.
func (s *Service) expireActivations(ctx context.Context, now time.Time) {
	expired, err := s.st.GameServerSessions().ExpiredActivations(ctx, now, sweepBatch)
	if err != nil {
		s.log.Warn("sweep: activation timeouts", "err", err)
		return
	}
	for _, g := range expired {
		_, applied, err := s.st.GameServerSessions().End(ctx, g.ID, []string{store.GSSActivating}, store.GSSTerminated, ReasonActivationTimeout)
		if err != nil {
			s.log.Warn("sweep: ending a session past its activation deadline", "session", g.ID, "err", err)
			continue
		}
		if !applied {
			continue
		}
		s.log.Info("game server session was not activated in time", "session", g.ID, "process", g.ProcessID)
		s.endProcess(g.AgentID, g.ProcessID, &croupierv1.TerminateProcessCommand{
			ProcessId: g.ProcessID, TerminationTimeMs: now.Add(activationTimeoutGrace).UnixMilli(), Reason: ReasonActivationTimeout,
		})
	}
}

// activationTimeoutGrace is how long a process whose session timed out
// gets to end by itself before its agent kills it.
const activationTimeoutGrace = 30 * time.Second
