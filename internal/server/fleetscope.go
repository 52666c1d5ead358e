package server

import (
	"context"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// fleetScope is the method table's scope resolver for FleetService: the
// game/env a request is about, named in it or resolved from the fleet,
// session or placement it names. A call about something that does not
// exist (or a query across games, such as a player's sessions everywhere)
// resolves to no game, so it needs the permission on every game; and a
// refusal for something named by id names it, not its game (scope.named):
// ids never reveal what exists, or where, to someone without access.
func (s *Server) fleetScope(ctx context.Context, req any) (scope, error) {
	fl := s.fleet.GRPC()
	of := func(id string) scope {
		f, err := fl.GetFleet(ctx, &croupierv1.GetFleetRequest{FleetId: id})
		if err != nil {
			return scope{named: "fleet " + id}
		}
		return scope{game: f.GetFleet().GetGameId(), env: f.GetFleet().GetEnv(), named: "fleet " + id}
	}
	if r, ok := req.(*croupierv1.UpdateFleetRequest); ok && r.GetFleet().GetFleetId() != "" {
		// The stored fleet's game, not the one in the request (which the
		// service refuses to change anyway).
		return of(r.GetFleet().GetFleetId()), nil
	}
	if r, ok := req.(interface{ GetFleet() *croupierv1.Fleet }); ok && r.GetFleet() != nil {
		if r.GetFleet().GetGameId() != "" {
			return scope{game: r.GetFleet().GetGameId(), env: r.GetFleet().GetEnv()}, nil
		}
		if id := r.GetFleet().GetFleetId(); id != "" {
			return of(id), nil
		}
	}
	if r, ok := req.(interface {
		GetGameId() string
		GetEnv() string
	}); ok && r.GetGameId() != "" {
		return scope{game: r.GetGameId(), env: r.GetEnv()}, nil
	}
	if r, ok := req.(interface{ GetFleetId() string }); ok && r.GetFleetId() != "" {
		return of(r.GetFleetId()), nil
	}
	if r, ok := req.(interface{ GetGameServerSessionId() string }); ok && r.GetGameServerSessionId() != "" {
		sc := scope{named: "game server session " + r.GetGameServerSessionId()}
		if gs, err := fl.GetGameServerSession(ctx, &croupierv1.GetGameServerSessionRequest{GameServerSessionId: r.GetGameServerSessionId()}); err == nil {
			sc.game, sc.env = gs.GetGameServerSession().GetGameId(), gs.GetGameServerSession().GetEnv()
		}
		return sc, nil
	}
	if r, ok := req.(interface{ GetPlacementId() string }); ok && r.GetPlacementId() != "" {
		sc := scope{named: "placement " + r.GetPlacementId()}
		if p, err := fl.DescribeGameServerSessionPlacement(ctx, &croupierv1.DescribeGameServerSessionPlacementRequest{PlacementId: r.GetPlacementId()}); err == nil {
			f := of(p.GetPlacement().GetFleetId())
			sc.game, sc.env = f.game, f.env
		}
		return sc, nil
	}
	return scope{}, nil
}
