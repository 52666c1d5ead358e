package gse

import (
	"context"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// Upstream is the fleet server as the agent sees it: FleetAgentService.
// *fleet.AgentAPI implements it in-process; ClientUpstream wraps a gRPC
// client of it.
type Upstream interface {
	GetAgentFleets(ctx context.Context, req *croupierv1.GetAgentFleetsRequest) (*croupierv1.GetAgentFleetsResponse, error)
	ReportProcesses(ctx context.Context, req *croupierv1.ReportProcessesRequest) (*croupierv1.ReportProcessesResponse, error)
	ActivateGameServerSession(ctx context.Context, req *croupierv1.ActivateGameServerSessionRequest) (*croupierv1.ActivateGameServerSessionResponse, error)
	AcceptPlayerSession(ctx context.Context, req *croupierv1.AcceptPlayerSessionRequest) (*croupierv1.AcceptPlayerSessionResponse, error)
	RemovePlayerSession(ctx context.Context, req *croupierv1.RemovePlayerSessionRequest) (*croupierv1.RemovePlayerSessionResponse, error)
	DescribeProcessPlayerSessions(ctx context.Context, req *croupierv1.DescribeProcessPlayerSessionsRequest) (*croupierv1.DescribeProcessPlayerSessionsResponse, error)
	UpdatePlayerSessionCreationPolicy(ctx context.Context, req *croupierv1.UpdatePlayerSessionCreationPolicyRequest) (*croupierv1.UpdatePlayerSessionCreationPolicyResponse, error)
	EndGameServerSession(ctx context.Context, req *croupierv1.EndGameServerSessionRequest) (*croupierv1.EndGameServerSessionResponse, error)
	ReportCustomData(ctx context.Context, req *croupierv1.ReportCustomDataRequest) (*croupierv1.ReportCustomDataResponse, error)
}

// ClientUpstream adapts a FleetAgentService gRPC client (the agent's
// connection to the server) to Upstream.
func ClientUpstream(c croupierv1.FleetAgentServiceClient) Upstream { return clientUpstream{c} }

type clientUpstream struct {
	c croupierv1.FleetAgentServiceClient
}

func (u clientUpstream) GetAgentFleets(ctx context.Context, r *croupierv1.GetAgentFleetsRequest) (*croupierv1.GetAgentFleetsResponse, error) {
	return u.c.GetAgentFleets(ctx, r)
}

func (u clientUpstream) ReportProcesses(ctx context.Context, r *croupierv1.ReportProcessesRequest) (*croupierv1.ReportProcessesResponse, error) {
	return u.c.ReportProcesses(ctx, r)
}

func (u clientUpstream) ActivateGameServerSession(ctx context.Context, r *croupierv1.ActivateGameServerSessionRequest) (*croupierv1.ActivateGameServerSessionResponse, error) {
	return u.c.ActivateGameServerSession(ctx, r)
}

func (u clientUpstream) AcceptPlayerSession(ctx context.Context, r *croupierv1.AcceptPlayerSessionRequest) (*croupierv1.AcceptPlayerSessionResponse, error) {
	return u.c.AcceptPlayerSession(ctx, r)
}

func (u clientUpstream) RemovePlayerSession(ctx context.Context, r *croupierv1.RemovePlayerSessionRequest) (*croupierv1.RemovePlayerSessionResponse, error) {
	return u.c.RemovePlayerSession(ctx, r)
}

func (u clientUpstream) DescribeProcessPlayerSessions(ctx context.Context, r *croupierv1.DescribeProcessPlayerSessionsRequest) (*croupierv1.DescribeProcessPlayerSessionsResponse, error) {
	return u.c.DescribeProcessPlayerSessions(ctx, r)
}

func (u clientUpstream) UpdatePlayerSessionCreationPolicy(ctx context.Context, r *croupierv1.UpdatePlayerSessionCreationPolicyRequest) (*croupierv1.UpdatePlayerSessionCreationPolicyResponse, error) {
	return u.c.UpdatePlayerSessionCreationPolicy(ctx, r)
}

func (u clientUpstream) EndGameServerSession(ctx context.Context, r *croupierv1.EndGameServerSessionRequest) (*croupierv1.EndGameServerSessionResponse, error) {
	return u.c.EndGameServerSession(ctx, r)
}

func (u clientUpstream) ReportCustomData(ctx context.Context, r *croupierv1.ReportCustomDataRequest) (*croupierv1.ReportCustomDataResponse, error) {
	return u.c.ReportCustomData(ctx, r)
}
