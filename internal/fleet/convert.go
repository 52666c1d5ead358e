package fleet

import (
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/store"
)

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMs(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func propsToProto(p []store.Property) []*croupierv1.GameProperty {
	out := make([]*croupierv1.GameProperty, len(p))
	for i, kv := range p {
		out[i] = &croupierv1.GameProperty{Key: kv.Key, Value: kv.Value}
	}
	return out
}

func propsFromProto(p []*croupierv1.GameProperty) []store.Property {
	out := make([]store.Property, len(p))
	for i, kv := range p {
		out[i] = store.Property{Key: kv.GetKey(), Value: kv.GetValue()}
	}
	return out
}

func sessionToProto(g *store.GameServerSession) *croupierv1.GameServerSession {
	return &croupierv1.GameServerSession{
		GameServerSessionId: g.ID, FleetId: g.FleetID, GameId: g.GameID, Env: g.Env, Name: g.Name,
		CreatorId: g.CreatorID, MaxPlayers: int32(g.MaxPlayers), CurrentPlayerSessionCount: int32(g.PlayerCount),
		Status: g.Status, StatusReason: g.StatusReason, GameProperties: propsToProto(g.Properties),
		IpAddress: g.IPAddress, DnsName: g.DNSName, Port: int32(g.Port), GameServerSessionData: g.SessionData,
		PlayerSessionCreationPolicy: g.CreationPolicy, CreationTimeMs: ms(g.CreatedAt),
		ActivationTimeMs: ms(g.ActivatedAt), TerminationTimeMs: ms(g.TerminatedAt), AgentId: g.AgentID,
		ProcessId: g.ProcessID, CurrentCustomCount: int32(g.CustomCount), MaxCustomCount: int32(g.MaxCustomCount),
		MatchmakerData: g.MatchmakerData,
	}
}

func playerToProto(p *store.PlayerSession) *croupierv1.PlayerSession {
	return &croupierv1.PlayerSession{
		PlayerSessionId: p.ID, PlayerId: p.PlayerID, GameServerSessionId: p.GameServerSessionID, FleetId: p.FleetID,
		IpAddress: p.IPAddress, DnsName: p.DNSName, Port: int32(p.Port), Status: p.Status, PlayerData: p.PlayerData,
		CreationTimeMs: ms(p.CreatedAt), TerminationTimeMs: ms(p.TerminatedAt), GameId: p.GameID, Env: p.Env,
	}
}

func playersToProto(ps []store.PlayerSession) []*croupierv1.PlayerSession {
	out := make([]*croupierv1.PlayerSession, len(ps))
	for i := range ps {
		out[i] = playerToProto(&ps[i])
	}
	return out
}

func placementToProto(p *store.Placement, g *store.GameServerSession) *croupierv1.GameServerSessionPlacement {
	out := &croupierv1.GameServerSessionPlacement{
		PlacementId: p.ID, FleetId: p.FleetID, Status: p.Status, GameServerSessionName: p.Name,
		MaxPlayers: int32(p.MaxPlayers), GameProperties: propsToProto(p.Properties), GameServerSessionData: p.SessionData,
		GameServerSessionId: p.SessionID, StartTimeMs: ms(p.CreatedAt), EndTimeMs: ms(p.EndedAt),
		TimeoutSeconds: int32(p.TimeoutSeconds), GameId: p.GameID, Env: p.Env,
	}
	if g != nil {
		out.IpAddress, out.DnsName, out.Port = g.IPAddress, g.DNSName, int32(g.Port)
	}
	return out
}

func processToProto(p *store.Process) *croupierv1.Process {
	return &croupierv1.Process{
		ProcessId: p.ID, AgentId: p.AgentID, FleetId: p.FleetID, GameId: p.GameID, Env: p.Env, Pid: int32(p.PID),
		Status: p.Status, Healthy: p.Healthy, IpAddress: p.IPAddress, DnsName: p.DNSName,
		ClientPort: int32(p.ClientPort), GrpcPort: int32(p.GRPCPort), LogPaths: p.LogPaths,
		GameServerSessionId: p.GameServerSessionID, CurrentCustomCount: int32(p.CustomCount),
		MaxCustomCount: int32(p.MaxCustomCount), StartTimeMs: ms(p.StartedAt), ReadyTimeMs: ms(p.ReadyAt),
		EndTimeMs: ms(p.EndedAt), StatusReason: p.StatusReason, LaunchPath: p.LaunchPath,
	}
}

func processFromProto(agentID string, p *croupierv1.Process) *store.Process {
	return &store.Process{
		ID: p.GetProcessId(), AgentID: agentID, FleetID: p.GetFleetId(), GameID: p.GetGameId(), Env: p.GetEnv(),
		PID: int(p.GetPid()), Status: p.GetStatus(), Healthy: p.GetHealthy(), IPAddress: p.GetIpAddress(),
		DNSName: p.GetDnsName(), ClientPort: int(p.GetClientPort()), GRPCPort: int(p.GetGrpcPort()),
		LogPaths: p.GetLogPaths(), LaunchPath: p.GetLaunchPath(), StatusReason: p.GetStatusReason(),
		StartedAt: fromMs(p.GetStartTimeMs()), ReadyAt: fromMs(p.GetReadyTimeMs()), EndedAt: fromMs(p.GetEndTimeMs()),
	}
}
