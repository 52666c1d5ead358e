package server

import (
	"context"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/rbac"
)

// fleetGuard authorises FleetService calls for both gRPC and REST (the REST
// gateway calls this server directly, bypassing gRPC interceptors). Reads
// need fleet:read, everything else fleet:write, on the game/env the request
// is about: named in it, or resolved from the fleet, session or placement it
// names. A call about something that does not exist (or a query across
// games, such as a player's sessions everywhere) needs the permission on
// every game, so ids never reveal what exists to someone without access.
type fleetGuard struct {
	croupierv1.UnimplementedFleetServiceServer
	inner croupierv1.FleetServiceServer
}

type scoped interface {
	GetGameId() string
	GetEnv() string
}

func (g fleetGuard) allow(ctx context.Context, perm string, req any) error {
	if err := requireOperator(ctx); err != nil {
		return err
	}
	game, env := g.scopeOf(ctx, req)
	return allow(ctx, perm, game, env, "")
}

// scopeOf finds the game/env a request is about ("", "" if none).
func (g fleetGuard) scopeOf(ctx context.Context, req any) (string, string) {
	if r, ok := req.(interface{ GetFleet() *croupierv1.Fleet }); ok && r.GetFleet() != nil {
		if r.GetFleet().GetGameId() != "" {
			return r.GetFleet().GetGameId(), r.GetFleet().GetEnv()
		}
		if id := r.GetFleet().GetFleetId(); id != "" {
			return g.fleetScope(ctx, id)
		}
	}
	if r, ok := req.(scoped); ok && r.GetGameId() != "" {
		return r.GetGameId(), r.GetEnv()
	}
	if r, ok := req.(interface{ GetFleetId() string }); ok && r.GetFleetId() != "" {
		return g.fleetScope(ctx, r.GetFleetId())
	}
	if r, ok := req.(interface{ GetGameServerSessionId() string }); ok && r.GetGameServerSessionId() != "" {
		if s, err := g.inner.GetGameServerSession(ctx, &croupierv1.GetGameServerSessionRequest{GameServerSessionId: r.GetGameServerSessionId()}); err == nil {
			return s.GetGameServerSession().GetGameId(), s.GetGameServerSession().GetEnv()
		}
		return "", ""
	}
	if r, ok := req.(interface{ GetPlacementId() string }); ok && r.GetPlacementId() != "" {
		if p, err := g.inner.DescribeGameServerSessionPlacement(ctx, &croupierv1.DescribeGameServerSessionPlacementRequest{PlacementId: r.GetPlacementId()}); err == nil {
			return g.fleetScope(ctx, p.GetPlacement().GetFleetId())
		}
	}
	return "", ""
}

func (g fleetGuard) fleetScope(ctx context.Context, id string) (string, string) {
	f, err := g.inner.GetFleet(ctx, &croupierv1.GetFleetRequest{FleetId: id})
	if err != nil {
		return "", ""
	}
	return f.GetFleet().GetGameId(), f.GetFleet().GetEnv()
}

func (g fleetGuard) CreateFleet(ctx context.Context, r *croupierv1.CreateFleetRequest) (*croupierv1.CreateFleetResponse, error) {
	if err := g.allow(ctx, rbac.FleetWrite, r); err != nil {
		return nil, err
	}
	return g.inner.CreateFleet(ctx, r)
}

func (g fleetGuard) GetFleet(ctx context.Context, r *croupierv1.GetFleetRequest) (*croupierv1.GetFleetResponse, error) {
	if err := g.allow(ctx, rbac.FleetRead, r); err != nil {
		return nil, err
	}
	return g.inner.GetFleet(ctx, r)
}

func (g fleetGuard) ListFleets(ctx context.Context, r *croupierv1.ListFleetsRequest) (*croupierv1.ListFleetsResponse, error) {
	if err := g.allow(ctx, rbac.FleetRead, r); err != nil {
		return nil, err
	}
	return g.inner.ListFleets(ctx, r)
}

func (g fleetGuard) UpdateFleet(ctx context.Context, r *croupierv1.UpdateFleetRequest) (*croupierv1.UpdateFleetResponse, error) {
	if err := g.allow(ctx, rbac.FleetWrite, r); err != nil {
		return nil, err
	}
	return g.inner.UpdateFleet(ctx, r)
}

func (g fleetGuard) DeleteFleet(ctx context.Context, r *croupierv1.DeleteFleetRequest) (*croupierv1.DeleteFleetResponse, error) {
	if err := g.allow(ctx, rbac.FleetWrite, r); err != nil {
		return nil, err
	}
	return g.inner.DeleteFleet(ctx, r)
}

func (g fleetGuard) ListProcesses(ctx context.Context, r *croupierv1.ListProcessesRequest) (*croupierv1.ListProcessesResponse, error) {
	if err := g.allow(ctx, rbac.FleetRead, r); err != nil {
		return nil, err
	}
	return g.inner.ListProcesses(ctx, r)
}

func (g fleetGuard) GetProcessLog(ctx context.Context, r *croupierv1.GetProcessLogRequest) (*croupierv1.GetProcessLogResponse, error) {
	if err := g.allow(ctx, rbac.FleetRead, r); err != nil {
		return nil, err
	}
	return g.inner.GetProcessLog(ctx, r)
}

func (g fleetGuard) CreateGameServerSession(ctx context.Context, r *croupierv1.CreateGameServerSessionRequest) (*croupierv1.CreateGameServerSessionResponse, error) {
	if err := g.allow(ctx, rbac.FleetWrite, r); err != nil {
		return nil, err
	}
	return g.inner.CreateGameServerSession(ctx, r)
}

func (g fleetGuard) GetGameServerSession(ctx context.Context, r *croupierv1.GetGameServerSessionRequest) (*croupierv1.GetGameServerSessionResponse, error) {
	if err := g.allow(ctx, rbac.FleetRead, r); err != nil {
		return nil, err
	}
	return g.inner.GetGameServerSession(ctx, r)
}

func (g fleetGuard) DescribeGameServerSessions(ctx context.Context, r *croupierv1.DescribeGameServerSessionsRequest) (*croupierv1.DescribeGameServerSessionsResponse, error) {
	if err := g.allow(ctx, rbac.FleetRead, r); err != nil {
		return nil, err
	}
	return g.inner.DescribeGameServerSessions(ctx, r)
}

func (g fleetGuard) SearchGameServerSessions(ctx context.Context, r *croupierv1.SearchGameServerSessionsRequest) (*croupierv1.SearchGameServerSessionsResponse, error) {
	if err := g.allow(ctx, rbac.FleetRead, r); err != nil {
		return nil, err
	}
	return g.inner.SearchGameServerSessions(ctx, r)
}

func (g fleetGuard) UpdateGameServerSession(ctx context.Context, r *croupierv1.UpdateGameServerSessionRequest) (*croupierv1.UpdateGameServerSessionResponse, error) {
	if err := g.allow(ctx, rbac.FleetWrite, r); err != nil {
		return nil, err
	}
	return g.inner.UpdateGameServerSession(ctx, r)
}

func (g fleetGuard) TerminateGameServerSession(ctx context.Context, r *croupierv1.TerminateGameServerSessionRequest) (*croupierv1.TerminateGameServerSessionResponse, error) {
	if err := g.allow(ctx, rbac.FleetWrite, r); err != nil {
		return nil, err
	}
	return g.inner.TerminateGameServerSession(ctx, r)
}

func (g fleetGuard) StartGameServerSessionPlacement(ctx context.Context, r *croupierv1.StartGameServerSessionPlacementRequest) (*croupierv1.StartGameServerSessionPlacementResponse, error) {
	if err := g.allow(ctx, rbac.FleetWrite, r); err != nil {
		return nil, err
	}
	return g.inner.StartGameServerSessionPlacement(ctx, r)
}

func (g fleetGuard) DescribeGameServerSessionPlacement(ctx context.Context, r *croupierv1.DescribeGameServerSessionPlacementRequest) (*croupierv1.DescribeGameServerSessionPlacementResponse, error) {
	if err := g.allow(ctx, rbac.FleetRead, r); err != nil {
		return nil, err
	}
	return g.inner.DescribeGameServerSessionPlacement(ctx, r)
}

func (g fleetGuard) StopGameServerSessionPlacement(ctx context.Context, r *croupierv1.StopGameServerSessionPlacementRequest) (*croupierv1.StopGameServerSessionPlacementResponse, error) {
	if err := g.allow(ctx, rbac.FleetWrite, r); err != nil {
		return nil, err
	}
	return g.inner.StopGameServerSessionPlacement(ctx, r)
}

func (g fleetGuard) JoinGameServerSession(ctx context.Context, r *croupierv1.JoinGameServerSessionRequest) (*croupierv1.JoinGameServerSessionResponse, error) {
	if err := g.allow(ctx, rbac.FleetWrite, r); err != nil {
		return nil, err
	}
	return g.inner.JoinGameServerSession(ctx, r)
}

func (g fleetGuard) JoinGameServerSessionBatch(ctx context.Context, r *croupierv1.JoinGameServerSessionBatchRequest) (*croupierv1.JoinGameServerSessionBatchResponse, error) {
	if err := g.allow(ctx, rbac.FleetWrite, r); err != nil {
		return nil, err
	}
	return g.inner.JoinGameServerSessionBatch(ctx, r)
}

func (g fleetGuard) DescribePlayerSessions(ctx context.Context, r *croupierv1.DescribePlayerSessionsRequest) (*croupierv1.DescribePlayerSessionsResponse, error) {
	if err := g.allow(ctx, rbac.FleetRead, r); err != nil {
		return nil, err
	}
	return g.inner.DescribePlayerSessions(ctx, r)
}
