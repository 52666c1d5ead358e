package fleet

import (
	"context"
	"errors"
	"sort"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
)

// toStatus turns a fleet error into a gRPC status with an ErrorInfo;
// anything unclassified is logged under an id and reported as INTERNAL.
func (s *Service) toStatus(err error) error {
	if err == nil {
		return nil
	}
	var fe *Error
	if errors.As(err, &fe) {
		keys := make([]string, 0, len(fe.Details))
		for k := range fe.Details {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		kv := make([]string, 0, 2*len(keys))
		for _, k := range keys {
			kv = append(kv, k, fe.Details[k])
		}
		return apierr.New(fe.GRPC, fe.Code, fe.Msg, kv...)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return apierr.FromContext(err)
	}
	return apierr.Internal(s.log, err)
}

// GRPCServer serves FleetService. The REST gateway maps onto it.
type GRPCServer struct {
	croupierv1.UnimplementedFleetServiceServer
	s *Service
}

// GRPC returns the FleetService server of s; register it with
// croupierv1.RegisterFleetServiceServer.
func (s *Service) GRPC() *GRPCServer { return &GRPCServer{s: s} }

var _ croupierv1.FleetServiceServer = (*GRPCServer)(nil)

func (g *GRPCServer) CreateFleet(ctx context.Context, req *croupierv1.CreateFleetRequest) (*croupierv1.CreateFleetResponse, error) {
	f, err := g.s.CreateFleet(ctx, req.GetFleet())
	return &croupierv1.CreateFleetResponse{Fleet: f}, g.s.toStatus(err)
}

func (g *GRPCServer) GetFleet(ctx context.Context, req *croupierv1.GetFleetRequest) (*croupierv1.GetFleetResponse, error) {
	f, err := g.s.GetFleet(ctx, req.GetFleetId())
	return &croupierv1.GetFleetResponse{Fleet: f}, g.s.toStatus(err)
}

func (g *GRPCServer) ListFleets(ctx context.Context, req *croupierv1.ListFleetsRequest) (*croupierv1.ListFleetsResponse, error) {
	fs, err := g.s.ListFleets(ctx, req.GetGameId(), req.GetEnv())
	return &croupierv1.ListFleetsResponse{Fleets: fs}, g.s.toStatus(err)
}

func (g *GRPCServer) UpdateFleet(ctx context.Context, req *croupierv1.UpdateFleetRequest) (*croupierv1.UpdateFleetResponse, error) {
	f, err := g.s.UpdateFleet(ctx, req.GetFleet())
	return &croupierv1.UpdateFleetResponse{Fleet: f}, g.s.toStatus(err)
}

func (g *GRPCServer) DeleteFleet(ctx context.Context, req *croupierv1.DeleteFleetRequest) (*croupierv1.DeleteFleetResponse, error) {
	return &croupierv1.DeleteFleetResponse{}, g.s.toStatus(g.s.DeleteFleet(ctx, req.GetFleetId()))
}

func (g *GRPCServer) ListProcesses(ctx context.Context, req *croupierv1.ListProcessesRequest) (*croupierv1.ListProcessesResponse, error) {
	ps, err := g.s.ListProcesses(ctx, req)
	return &croupierv1.ListProcessesResponse{Processes: ps}, g.s.toStatus(err)
}

func (g *GRPCServer) GetProcessLog(ctx context.Context, req *croupierv1.GetProcessLogRequest) (*croupierv1.GetProcessLogResponse, error) {
	res, err := g.s.GetProcessLog(ctx, req)
	if err != nil {
		return nil, g.s.toStatus(err)
	}
	return &croupierv1.GetProcessLogResponse{Data: res.GetData(), Size: res.GetSize(), Eof: res.GetEof()}, nil
}

func (g *GRPCServer) CreateGameServerSession(ctx context.Context, req *croupierv1.CreateGameServerSessionRequest) (*croupierv1.CreateGameServerSessionResponse, error) {
	gs, err := g.s.CreateGameServerSession(ctx, req)
	return &croupierv1.CreateGameServerSessionResponse{GameServerSession: gs}, g.s.toStatus(err)
}

func (g *GRPCServer) GetGameServerSession(ctx context.Context, req *croupierv1.GetGameServerSessionRequest) (*croupierv1.GetGameServerSessionResponse, error) {
	gs, err := g.s.GetGameServerSession(ctx, req.GetGameServerSessionId())
	return &croupierv1.GetGameServerSessionResponse{GameServerSession: gs}, g.s.toStatus(err)
}

func (g *GRPCServer) DescribeGameServerSessions(ctx context.Context, req *croupierv1.DescribeGameServerSessionsRequest) (*croupierv1.DescribeGameServerSessionsResponse, error) {
	list, next, err := g.s.DescribeGameServerSessions(ctx, req)
	return &croupierv1.DescribeGameServerSessionsResponse{GameServerSessions: list, NextToken: next}, g.s.toStatus(err)
}

func (g *GRPCServer) SearchGameServerSessions(ctx context.Context, req *croupierv1.SearchGameServerSessionsRequest) (*croupierv1.SearchGameServerSessionsResponse, error) {
	list, next, err := g.s.SearchGameServerSessions(ctx, req)
	return &croupierv1.SearchGameServerSessionsResponse{GameServerSessions: list, NextToken: next}, g.s.toStatus(err)
}

func (g *GRPCServer) UpdateGameServerSession(ctx context.Context, req *croupierv1.UpdateGameServerSessionRequest) (*croupierv1.UpdateGameServerSessionResponse, error) {
	gs, err := g.s.UpdateGameServerSession(ctx, req)
	return &croupierv1.UpdateGameServerSessionResponse{GameServerSession: gs}, g.s.toStatus(err)
}

func (g *GRPCServer) TerminateGameServerSession(ctx context.Context, req *croupierv1.TerminateGameServerSessionRequest) (*croupierv1.TerminateGameServerSessionResponse, error) {
	gs, err := g.s.TerminateGameServerSession(ctx, req.GetGameServerSessionId(), req.GetForce())
	return &croupierv1.TerminateGameServerSessionResponse{GameServerSession: gs}, g.s.toStatus(err)
}

func (g *GRPCServer) StartGameServerSessionPlacement(ctx context.Context, req *croupierv1.StartGameServerSessionPlacementRequest) (*croupierv1.StartGameServerSessionPlacementResponse, error) {
	p, err := g.s.StartGameServerSessionPlacement(ctx, req)
	return &croupierv1.StartGameServerSessionPlacementResponse{Placement: p}, g.s.toStatus(err)
}

func (g *GRPCServer) DescribeGameServerSessionPlacement(ctx context.Context, req *croupierv1.DescribeGameServerSessionPlacementRequest) (*croupierv1.DescribeGameServerSessionPlacementResponse, error) {
	p, err := g.s.DescribeGameServerSessionPlacement(ctx, req.GetPlacementId())
	return &croupierv1.DescribeGameServerSessionPlacementResponse{Placement: p}, g.s.toStatus(err)
}

func (g *GRPCServer) StopGameServerSessionPlacement(ctx context.Context, req *croupierv1.StopGameServerSessionPlacementRequest) (*croupierv1.StopGameServerSessionPlacementResponse, error) {
	p, err := g.s.StopGameServerSessionPlacement(ctx, req.GetPlacementId())
	return &croupierv1.StopGameServerSessionPlacementResponse{Placement: p}, g.s.toStatus(err)
}

func (g *GRPCServer) JoinGameServerSession(ctx context.Context, req *croupierv1.JoinGameServerSessionRequest) (*croupierv1.JoinGameServerSessionResponse, error) {
	ps, err := g.s.JoinGameServerSession(ctx, req)
	return &croupierv1.JoinGameServerSessionResponse{PlayerSession: ps}, g.s.toStatus(err)
}

func (g *GRPCServer) JoinGameServerSessionBatch(ctx context.Context, req *croupierv1.JoinGameServerSessionBatchRequest) (*croupierv1.JoinGameServerSessionBatchResponse, error) {
	ps, err := g.s.JoinGameServerSessionBatch(ctx, req)
	return &croupierv1.JoinGameServerSessionBatchResponse{PlayerSessions: ps}, g.s.toStatus(err)
}

func (g *GRPCServer) DescribePlayerSessions(ctx context.Context, req *croupierv1.DescribePlayerSessionsRequest) (*croupierv1.DescribePlayerSessionsResponse, error) {
	ps, next, err := g.s.DescribePlayerSessions(ctx, req)
	return &croupierv1.DescribePlayerSessionsResponse{PlayerSessions: ps, NextToken: next}, g.s.toStatus(err)
}
