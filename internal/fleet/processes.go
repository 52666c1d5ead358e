package fleet

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/store"
)

// ReasonLost marks a process its agent no longer reports (it ended while
// the agent was down or disconnected).
const ReasonLost = "LOST"

// ReportProcesses records an agent's processes. A process that ended takes
// its live session with it (TERMINATED; INTERRUPTED when it crashed). With
// full, the agent's live processes missing from the report are recorded as
// crashed.
func (s *Service) ReportProcesses(ctx context.Context, agentID string, procs []*croupierv1.Process, full bool) error {
	if !validID(agentID, 64) {
		return invalidArg("agent_id %q is not a valid agent id", agentID)
	}
	seen := make(map[string]bool, len(procs))
	fleetScopes := map[string][2]string{}
	for _, p := range procs {
		if p.GetProcessId() == "" || p.GetFleetId() == "" {
			return invalidArg("every process needs a process_id and a fleet_id")
		}
		// A process belongs to the scope of its fleet: an agent of one game
		// must not offer capacity to another game's fleet.
		sc, ok := fleetScopes[p.GetFleetId()]
		if !ok {
			f, err := s.st.Fleets().Get(ctx, p.GetFleetId())
			if err != nil {
				return storeErr(err, CodeFleetNotFound)
			}
			sc = [2]string{f.GetGameId(), f.GetEnv()}
			fleetScopes[p.GetFleetId()] = sc
		}
		if sc != [2]string{p.GetGameId(), p.GetEnv()} {
			return newErr(codes.PermissionDenied, CodeNotOwner, "process %s reports fleet %s, which is not a fleet of %s/%s", p.GetProcessId(), p.GetFleetId(), p.GetGameId(), p.GetEnv())
		}
		if p.GetAgentId() != "" && p.GetAgentId() != agentID {
			return newErr(codes.PermissionDenied, CodeNotOwner, "agent %s cannot report process %s of agent %s", agentID, p.GetProcessId(), p.GetAgentId())
		}
		stored, err := s.st.Processes().Upsert(ctx, processFromProto(agentID, p))
		if err != nil {
			if errors.Is(err, store.ErrConflict) {
				return newErr(codes.PermissionDenied, CodeNotOwner, "%s", store.Message(err))
			}
			return storeErr(err, CodeProcessNotFound)
		}
		seen[stored.ID] = true
		switch {
		case store.ProcessEnded(stored.Status):
			s.processGone(ctx, stored)
		case stored.Status == store.ProcessActive && stored.Healthy && stored.GameServerSessionID == "":
			s.wake() // new capacity for queued placements
		}
	}
	if !full {
		return nil
	}
	live, err := s.st.Processes().List(ctx, store.ProcessFilter{AgentID: agentID, Live: true})
	if err != nil {
		return storeErr(err, CodeProcessNotFound)
	}
	for i := range live {
		if seen[live[i].ID] {
			continue
		}
		ended, err := s.st.Processes().MarkEnded(ctx, live[i].ID, store.ProcessCrashed, ReasonLost)
		if err != nil {
			return storeErr(err, CodeProcessNotFound)
		}
		s.processGone(ctx, ended)
	}
	return nil
}

// processGone ends the live session of a process that ended.
func (s *Service) processGone(ctx context.Context, p *store.Process) {
	g, err := s.st.GameServerSessions().LiveOnProcess(ctx, p.ID)
	if errors.Is(err, store.ErrNotFound) {
		return
	}
	if err != nil {
		s.log.Warn("finding the session of an ended process", "process", p.ID, "err", err)
		return
	}
	reason := ReasonProcessEnded
	if p.Status == store.ProcessCrashed {
		reason = ReasonInterrupted
	}
	if _, _, err := s.st.GameServerSessions().End(ctx, g.ID, liveStatuses, store.GSSTerminated, reason); err != nil {
		s.log.Warn("ending the session of an ended process", "process", p.ID, "session", g.ID, "err", err)
	}
}

// ownProcess returns a process the calling agent reported.
func (s *Service) ownProcess(ctx context.Context, agentID, processID string) (*store.Process, error) {
	if processID == "" {
		return nil, invalidArg("process_id is required")
	}
	p, err := s.st.Processes().Get(ctx, processID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, newErr(codes.NotFound, CodeProcessNotFound, "process %s is unknown to the server; it must call ProcessReady first", processID)
	}
	if err != nil {
		return nil, storeErr(err, CodeProcessNotFound)
	}
	if p.AgentID != agentID {
		return nil, newErr(codes.PermissionDenied, CodeNotOwner, "process %s belongs to agent %s, not %s", processID, p.AgentID, agentID)
	}
	return p, nil
}

// ActivateGameServerSession is the process's ActivateGameServerSession:
// its ACTIVATING session becomes ACTIVE.
func (s *Service) ActivateGameServerSession(ctx context.Context, req *croupierv1.ActivateGameServerSessionRequest) (*croupierv1.GameServerSession, error) {
	p, err := s.ownProcess(ctx, req.GetAgentId(), req.GetProcessId())
	if err != nil {
		return nil, err
	}
	if req.GetGameServerSessionId() == "" {
		return nil, invalidArg("gameServerSessionId is required")
	}
	if err := checkMaxPlayers(req.GetMaxPlayers()); err != nil {
		return nil, err
	}
	g, err := s.st.GameServerSessions().Activate(ctx, req.GetGameServerSessionId(), p.ID, int(req.GetMaxPlayers()))
	if err != nil {
		return nil, storeErr(err, CodeSessionNotFound)
	}
	return sessionToProto(g), nil
}

// AcceptPlayerSession is the process's AcceptPlayerSession: a RESERVED
// player session of its session becomes ACTIVE.
func (s *Service) AcceptPlayerSession(ctx context.Context, req *croupierv1.AcceptPlayerSessionRequest) (*croupierv1.PlayerSession, error) {
	p, err := s.ownProcess(ctx, req.GetAgentId(), req.GetProcessId())
	if err != nil {
		return nil, err
	}
	if req.GetGameServerSessionId() == "" || req.GetPlayerSessionId() == "" {
		return nil, invalidArg("gameServerSessionId and playerSessionId are required")
	}
	ps, err := s.st.PlayerSessions().Accept(ctx, req.GetGameServerSessionId(), req.GetPlayerSessionId(), p.ID)
	if err != nil {
		return nil, storeErr(err, CodePlayerNotFound)
	}
	return playerToProto(ps), nil
}

// RemovePlayerSession is the process's RemovePlayerSession: the player
// session is COMPLETED and its seat free.
func (s *Service) RemovePlayerSession(ctx context.Context, req *croupierv1.RemovePlayerSessionRequest) (*croupierv1.PlayerSession, error) {
	p, err := s.ownProcess(ctx, req.GetAgentId(), req.GetProcessId())
	if err != nil {
		return nil, err
	}
	if req.GetGameServerSessionId() == "" || req.GetPlayerSessionId() == "" {
		return nil, invalidArg("gameServerSessionId and playerSessionId are required")
	}
	ps, err := s.st.PlayerSessions().Remove(ctx, req.GetGameServerSessionId(), req.GetPlayerSessionId(), p.ID)
	if err != nil {
		return nil, storeErr(err, CodePlayerNotFound)
	}
	return playerToProto(ps), nil
}

// DescribeProcessPlayerSessions is the process's DescribePlayerSessions,
// limited to its fleet.
func (s *Service) DescribeProcessPlayerSessions(ctx context.Context, req *croupierv1.DescribeProcessPlayerSessionsRequest) ([]*croupierv1.PlayerSession, string, error) {
	p, err := s.ownProcess(ctx, req.GetAgentId(), req.GetProcessId())
	if err != nil {
		return nil, "", err
	}
	return s.describePlayers(ctx, &croupierv1.DescribePlayerSessionsRequest{
		GameServerSessionId: req.GetGameServerSessionId(), PlayerId: req.GetPlayerId(),
		PlayerSessionId: req.GetPlayerSessionId(), PlayerSessionStatusFilter: req.GetPlayerSessionStatusFilter(),
		NextToken: req.GetNextToken(), Limit: req.GetLimit(),
	}, p.FleetID)
}

// UpdatePlayerSessionCreationPolicy is the process's call of the same name.
func (s *Service) UpdatePlayerSessionCreationPolicy(ctx context.Context, req *croupierv1.UpdatePlayerSessionCreationPolicyRequest) (*croupierv1.GameServerSession, error) {
	p, err := s.ownProcess(ctx, req.GetAgentId(), req.GetProcessId())
	if err != nil {
		return nil, err
	}
	policy := req.GetNewPlayerSessionCreationPolicy()
	if err := checkPolicy(policy); err != nil {
		return nil, err
	}
	g, err := s.st.GameServerSessions().Update(ctx, req.GetGameServerSessionId(), store.GSSUpdate{CreationPolicy: &policy, ProcessID: p.ID})
	if err != nil {
		return nil, storeErr(err, CodeSessionNotFound)
	}
	return sessionToProto(g), nil
}

// EndGameServerSession is the process's TerminateGameServerSession: its
// session is TERMINATED, its player sessions COMPLETED, and the process
// can host a new session. Ending an ended session again is a no-op.
func (s *Service) EndGameServerSession(ctx context.Context, req *croupierv1.EndGameServerSessionRequest) (*croupierv1.GameServerSession, error) {
	p, err := s.ownProcess(ctx, req.GetAgentId(), req.GetProcessId())
	if err != nil {
		return nil, err
	}
	g, err := s.st.GameServerSessions().Get(ctx, req.GetGameServerSessionId())
	if err != nil {
		return nil, storeErr(err, CodeSessionNotFound)
	}
	if g.ProcessID != p.ID {
		return nil, newErr(codes.PermissionDenied, CodeNotOwner, "game server session %s is hosted by another process", g.ID)
	}
	g, applied, err := s.st.GameServerSessions().End(ctx, g.ID, liveStatuses, store.GSSTerminated, ReasonTerminatedByProcess)
	if err != nil {
		return nil, storeErr(err, CodeSessionNotFound)
	}
	if applied {
		s.wake()
	}
	return sessionToProto(g), nil
}

// ReportCustomData is the process's ReportCustomData.
func (s *Service) ReportCustomData(ctx context.Context, req *croupierv1.ReportCustomDataRequest) error {
	p, err := s.ownProcess(ctx, req.GetAgentId(), req.GetProcessId())
	if err != nil {
		return err
	}
	if req.GetCurrentCustomCount() < 0 || req.GetMaxCustomCount() < 0 {
		return invalidArg("custom counts must not be negative")
	}
	return storeErr(s.st.Processes().SetCustomData(ctx, p.ID, int(req.GetCurrentCustomCount()), int(req.GetMaxCustomCount())), CodeProcessNotFound)
}
