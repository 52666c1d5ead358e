package fleet

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/store"
)

// JoinGameServerSession reserves a seat for one player.
func (s *Service) JoinGameServerSession(ctx context.Context, req *croupierv1.JoinGameServerSessionRequest) (*croupierv1.PlayerSession, error) {
	out, err := s.join(ctx, req.GetGameServerSessionId(), []*croupierv1.PlayerJoin{{PlayerId: req.GetPlayerId(), PlayerData: req.GetPlayerData()}})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// JoinGameServerSessionBatch reserves seats for 1-25 distinct players, all
// or none.
func (s *Service) JoinGameServerSessionBatch(ctx context.Context, req *croupierv1.JoinGameServerSessionBatchRequest) ([]*croupierv1.PlayerSession, error) {
	if n := len(req.GetPlayers()); n == 0 || n > MaxBatchJoin {
		return nil, invalidArg("players has %d entries; give 1 to %d", n, MaxBatchJoin)
	}
	return s.join(ctx, req.GetGameServerSessionId(), req.GetPlayers())
}

// join reserves seats in an ACTIVE session with policy ACCEPT_ALL and room
// for all players. The reservations time out after the fleet's player
// session reservation timeout unless the game server accepts them.
func (s *Service) join(ctx context.Context, gssID string, players []*croupierv1.PlayerJoin) ([]*croupierv1.PlayerSession, error) {
	if gssID == "" {
		return nil, invalidArg("game_server_session_id is required")
	}
	seen := make(map[string]bool, len(players))
	joins := make([]store.PlayerJoin, len(players))
	for i, p := range players {
		if p.GetPlayerId() == "" {
			return nil, invalidArg("player_id is required (players[%d])", i)
		}
		if err := checkText("player_id", p.GetPlayerId(), MaxNameBytes); err != nil {
			return nil, err
		}
		if err := checkText("player_data", p.GetPlayerData(), MaxPlayerDataBytes); err != nil {
			return nil, err
		}
		if seen[p.GetPlayerId()] {
			return nil, invalidArg("player %q is listed twice", p.GetPlayerId())
		}
		seen[p.GetPlayerId()] = true
		joins[i] = store.PlayerJoin{PlayerSessionID: newID("psess"), PlayerID: p.GetPlayerId(), PlayerData: p.GetPlayerData()}
	}
	g, err := s.st.GameServerSessions().Get(ctx, gssID)
	if err != nil {
		return nil, storeErr(err, CodeSessionNotFound)
	}
	f, err := s.st.Fleets().Get(ctx, g.FleetID)
	if err != nil {
		return nil, storeErr(err, CodeFleetNotFound)
	}
	ps, err := s.st.PlayerSessions().Join(ctx, gssID, joins, s.now().Add(reservationTimeout(f)))
	if err != nil {
		var refused *store.JoinRefusedError
		if errors.Is(err, store.ErrConflict) && !errors.As(err, &refused) {
			return nil, newErr(codes.AlreadyExists, CodePlayerSeated, "%s", store.Message(err))
		}
		return nil, storeErr(err, CodeSessionNotFound)
	}
	return playersToProto(ps), nil
}

// DescribePlayerSessions lists player sessions by game server session,
// player or id, oldest first.
func (s *Service) DescribePlayerSessions(ctx context.Context, req *croupierv1.DescribePlayerSessionsRequest) ([]*croupierv1.PlayerSession, string, error) {
	return s.describePlayers(ctx, req, "")
}

func (s *Service) describePlayers(ctx context.Context, req *croupierv1.DescribePlayerSessionsRequest, fleetID string) ([]*croupierv1.PlayerSession, string, error) {
	size, err := pageSize(req.GetLimit())
	if err != nil {
		return nil, "", err
	}
	if req.GetGameServerSessionId() == "" && req.GetPlayerId() == "" && req.GetPlayerSessionId() == "" {
		return nil, "", invalidArg("give game_server_session_id, player_id or player_session_id")
	}
	if st := req.GetPlayerSessionStatusFilter(); st != "" && !store.ValidPlayerStatus(st) {
		return nil, "", invalidArg("player_session_status_filter %q: use RESERVED, ACTIVE, COMPLETED or TIMEDOUT", st)
	}
	ps, next, err := s.st.PlayerSessions().List(ctx, store.PlayerSessionFilter{
		GameServerSessionID: req.GetGameServerSessionId(), PlayerID: req.GetPlayerId(),
		PlayerSessionID: req.GetPlayerSessionId(), Status: req.GetPlayerSessionStatusFilter(),
		FleetID: fleetID, PageSize: size, PageToken: req.GetNextToken(),
	})
	if err != nil {
		return nil, "", storeErr(err, CodePlayerNotFound)
	}
	return playersToProto(ps), next, nil
}
