package agent

import (
	"context"
	"net/http"
	"net/url"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// restUpstream is the GSE endpoint's link to the server's FleetAgentService
// as REST over HTTP/1.1, for agents on the long-poll transport.
type restUpstream struct{ r restControl }

func processPath(agentID, processID, verb string) string {
	return "/api/v1/agents/" + url.PathEscape(agentID) + "/processes/" + url.PathEscape(processID) + ":" + verb
}

func (u restUpstream) GetAgentFleets(ctx context.Context, req *croupierv1.GetAgentFleetsRequest) (*croupierv1.GetAgentFleetsResponse, error) {
	q := url.Values{}
	q.Set("game_id", req.GetGameId())
	q.Set("env", req.GetEnv())
	for k, v := range req.GetLabels() {
		q.Set("labels["+k+"]", v)
	}
	for _, d := range req.GetBuildDirs() {
		q.Add("build_dirs", d) // grpc-gateway reads a repeated field from repeated parameters
	}
	out := &croupierv1.GetAgentFleetsResponse{}
	return out, u.r.do(ctx, http.MethodGet, "/api/v1/agents/"+url.PathEscape(req.GetAgentId())+"/fleets?"+q.Encode(), nil, out)
}

func (u restUpstream) ReportProcesses(ctx context.Context, req *croupierv1.ReportProcessesRequest) (*croupierv1.ReportProcessesResponse, error) {
	out := &croupierv1.ReportProcessesResponse{}
	return out, u.r.do(ctx, http.MethodPost, "/api/v1/agents/"+url.PathEscape(req.GetAgentId())+"/processes", req, out)
}

func (u restUpstream) ActivateGameServerSession(ctx context.Context, req *croupierv1.ActivateGameServerSessionRequest) (*croupierv1.ActivateGameServerSessionResponse, error) {
	out := &croupierv1.ActivateGameServerSessionResponse{}
	return out, u.r.do(ctx, http.MethodPost, processPath(req.GetAgentId(), req.GetProcessId(), "activateGameServerSession"), req, out)
}

func (u restUpstream) AcceptPlayerSession(ctx context.Context, req *croupierv1.AcceptPlayerSessionRequest) (*croupierv1.AcceptPlayerSessionResponse, error) {
	out := &croupierv1.AcceptPlayerSessionResponse{}
	return out, u.r.do(ctx, http.MethodPost, processPath(req.GetAgentId(), req.GetProcessId(), "acceptPlayerSession"), req, out)
}

func (u restUpstream) RemovePlayerSession(ctx context.Context, req *croupierv1.RemovePlayerSessionRequest) (*croupierv1.RemovePlayerSessionResponse, error) {
	out := &croupierv1.RemovePlayerSessionResponse{}
	return out, u.r.do(ctx, http.MethodPost, processPath(req.GetAgentId(), req.GetProcessId(), "removePlayerSession"), req, out)
}

func (u restUpstream) DescribeProcessPlayerSessions(ctx context.Context, req *croupierv1.DescribeProcessPlayerSessionsRequest) (*croupierv1.DescribeProcessPlayerSessionsResponse, error) {
	out := &croupierv1.DescribeProcessPlayerSessionsResponse{}
	return out, u.r.do(ctx, http.MethodPost, processPath(req.GetAgentId(), req.GetProcessId(), "describePlayerSessions"), req, out)
}

func (u restUpstream) UpdatePlayerSessionCreationPolicy(ctx context.Context, req *croupierv1.UpdatePlayerSessionCreationPolicyRequest) (*croupierv1.UpdatePlayerSessionCreationPolicyResponse, error) {
	out := &croupierv1.UpdatePlayerSessionCreationPolicyResponse{}
	return out, u.r.do(ctx, http.MethodPost, processPath(req.GetAgentId(), req.GetProcessId(), "updatePlayerSessionCreationPolicy"), req, out)
}

func (u restUpstream) EndGameServerSession(ctx context.Context, req *croupierv1.EndGameServerSessionRequest) (*croupierv1.EndGameServerSessionResponse, error) {
	out := &croupierv1.EndGameServerSessionResponse{}
	return out, u.r.do(ctx, http.MethodPost, processPath(req.GetAgentId(), req.GetProcessId(), "endGameServerSession"), req, out)
}

func (u restUpstream) ReportCustomData(ctx context.Context, req *croupierv1.ReportCustomDataRequest) (*croupierv1.ReportCustomDataResponse, error) {
	out := &croupierv1.ReportCustomDataResponse{}
	return out, u.r.do(ctx, http.MethodPost, processPath(req.GetAgentId(), req.GetProcessId(), "reportCustomData"), req, out)
}
