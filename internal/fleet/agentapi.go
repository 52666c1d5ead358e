package fleet

import (
	"context"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// AgentAPI serves FleetAgentService: agents' process reports and the GSE
// calls of their game processes. Its methods have the signatures of
// gse.Upstream, so an in-process agent can use it directly.
type AgentAPI struct {
	croupierv1.UnimplementedFleetAgentServiceServer
	s *Service
}

// AgentAPI returns the FleetAgentService server of s; register it with
// croupierv1.RegisterFleetAgentServiceServer on the agents' listener.
func (s *Service) AgentAPI() *AgentAPI { return &AgentAPI{s: s} }

var _ croupierv1.FleetAgentServiceServer = (*AgentAPI)(nil)

func (a *AgentAPI) authorize(ctx context.Context, agentID string) error {
	return a.authorizeScope(ctx, agentID, "", "")
}

func (a *AgentAPI) authorizeScope(ctx context.Context, agentID, gameID, env string) error {
	if agentID == "" {
		return a.s.toStatus(invalidArg("agent_id is required"))
	}
	if a.s.cfg.AuthorizeAgent != nil {
		return a.s.cfg.AuthorizeAgent(ctx, agentID, gameID, env)
	}
	return nil
}

func (a *AgentAPI) GetAgentFleets(ctx context.Context, req *croupierv1.GetAgentFleetsRequest) (*croupierv1.GetAgentFleetsResponse, error) {
	if err := a.authorizeScope(ctx, req.GetAgentId(), req.GetGameId(), req.GetEnv()); err != nil {
		return nil, err
	}
	if err := a.s.NoteAgentBuildDirs(req.GetAgentId(), req.GetGameId(), req.GetEnv(), req.GetLabels(), req.GetBuildDirs()); err != nil {
		return nil, a.s.toStatus(err)
	}
	fs, err := a.s.AgentFleets(ctx, req.GetGameId(), req.GetEnv(), req.GetLabels())
	if err != nil {
		return nil, a.s.toStatus(err)
	}
	return &croupierv1.GetAgentFleetsResponse{Fleets: fs}, nil
}

func (a *AgentAPI) ReportProcesses(ctx context.Context, req *croupierv1.ReportProcessesRequest) (*croupierv1.ReportProcessesResponse, error) {
	if err := a.authorize(ctx, req.GetAgentId()); err != nil {
		return nil, err
	}
	seen := map[[2]string]bool{}
	for _, p := range req.GetProcesses() {
		scope := [2]string{p.GetGameId(), p.GetEnv()}
		if seen[scope] {
			continue
		}
		seen[scope] = true
		if err := a.authorizeScope(ctx, req.GetAgentId(), scope[0], scope[1]); err != nil {
			return nil, err
		}
	}
	if err := a.s.ReportProcesses(ctx, req.GetAgentId(), req.GetProcesses(), req.GetFullSnapshot()); err != nil {
		return nil, a.s.toStatus(err)
	}
	return &croupierv1.ReportProcessesResponse{}, nil
}

func (a *AgentAPI) ActivateGameServerSession(ctx context.Context, req *croupierv1.ActivateGameServerSessionRequest) (*croupierv1.ActivateGameServerSessionResponse, error) {
	if err := a.authorize(ctx, req.GetAgentId()); err != nil {
		return nil, err
	}
	if _, err := a.s.ActivateGameServerSession(ctx, req); err != nil {
		return nil, a.s.toStatus(err)
	}
	return &croupierv1.ActivateGameServerSessionResponse{}, nil
}

func (a *AgentAPI) AcceptPlayerSession(ctx context.Context, req *croupierv1.AcceptPlayerSessionRequest) (*croupierv1.AcceptPlayerSessionResponse, error) {
	if err := a.authorize(ctx, req.GetAgentId()); err != nil {
		return nil, err
	}
	if _, err := a.s.AcceptPlayerSession(ctx, req); err != nil {
		return nil, a.s.toStatus(err)
	}
	return &croupierv1.AcceptPlayerSessionResponse{}, nil
}

func (a *AgentAPI) RemovePlayerSession(ctx context.Context, req *croupierv1.RemovePlayerSessionRequest) (*croupierv1.RemovePlayerSessionResponse, error) {
	if err := a.authorize(ctx, req.GetAgentId()); err != nil {
		return nil, err
	}
	if _, err := a.s.RemovePlayerSession(ctx, req); err != nil {
		return nil, a.s.toStatus(err)
	}
	return &croupierv1.RemovePlayerSessionResponse{}, nil
}

func (a *AgentAPI) DescribeProcessPlayerSessions(ctx context.Context, req *croupierv1.DescribeProcessPlayerSessionsRequest) (*croupierv1.DescribeProcessPlayerSessionsResponse, error) {
	if err := a.authorize(ctx, req.GetAgentId()); err != nil {
		return nil, err
	}
	ps, next, err := a.s.DescribeProcessPlayerSessions(ctx, req)
	if err != nil {
		return nil, a.s.toStatus(err)
	}
	return &croupierv1.DescribeProcessPlayerSessionsResponse{PlayerSessions: ps, NextToken: next}, nil
}

func (a *AgentAPI) UpdatePlayerSessionCreationPolicy(ctx context.Context, req *croupierv1.UpdatePlayerSessionCreationPolicyRequest) (*croupierv1.UpdatePlayerSessionCreationPolicyResponse, error) {
	if err := a.authorize(ctx, req.GetAgentId()); err != nil {
		return nil, err
	}
	if _, err := a.s.UpdatePlayerSessionCreationPolicy(ctx, req); err != nil {
		return nil, a.s.toStatus(err)
	}
	return &croupierv1.UpdatePlayerSessionCreationPolicyResponse{}, nil
}

func (a *AgentAPI) EndGameServerSession(ctx context.Context, req *croupierv1.EndGameServerSessionRequest) (*croupierv1.EndGameServerSessionResponse, error) {
	if err := a.authorize(ctx, req.GetAgentId()); err != nil {
		return nil, err
	}
	if _, err := a.s.EndGameServerSession(ctx, req); err != nil {
		return nil, a.s.toStatus(err)
	}
	return &croupierv1.EndGameServerSessionResponse{}, nil
}

func (a *AgentAPI) ReportCustomData(ctx context.Context, req *croupierv1.ReportCustomDataRequest) (*croupierv1.ReportCustomDataResponse, error) {
	if err := a.authorize(ctx, req.GetAgentId()); err != nil {
		return nil, err
	}
	if err := a.s.ReportCustomData(ctx, req); err != nil {
		return nil, a.s.toStatus(err)
	}
	return &croupierv1.ReportCustomDataResponse{}, nil
}
