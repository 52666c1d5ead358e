package gse

import (
	"context"

	"github.com/croupier/croupier/api/tencentcloud/gse/grpcsdk"
)

// ActivateGameServerSession activates a session handed over by
// OnStartGameServerSession (the helper does it after the handler).
func (s *Server) ActivateGameServerSession(ctx context.Context, id string, maxPlayers int32) error {
	return s.check(ctx, "ActivateGameServerSession", func(ctx context.Context) (*grpcsdk.GseResponse, error) {
		return s.gse.ActivateGameServerSession(ctx, &grpcsdk.ActivateGameServerSessionRequest{GameServerSessionId: id, MaxPlayers: maxPlayers})
	})
}

// AcceptPlayerSession validates a connecting player's player session id
// against the current session.
func (s *Server) AcceptPlayerSession(ctx context.Context, playerSessionID string) error {
	gss := s.Session()
	if gss == nil {
		return errNoSession
	}
	return s.check(ctx, "AcceptPlayerSession", func(ctx context.Context) (*grpcsdk.GseResponse, error) {
		return s.gse.AcceptPlayerSession(ctx, &grpcsdk.AcceptPlayerSessionRequest{GameServerSessionId: gss.GetGameServerSessionId(), PlayerSessionId: playerSessionID})
	})
}

// RemovePlayerSession frees the slot of a player who left.
func (s *Server) RemovePlayerSession(ctx context.Context, playerSessionID string) error {
	gss := s.Session()
	if gss == nil {
		return errNoSession
	}
	return s.check(ctx, "RemovePlayerSession", func(ctx context.Context) (*grpcsdk.GseResponse, error) {
		return s.gse.RemovePlayerSession(ctx, &grpcsdk.RemovePlayerSessionRequest{GameServerSessionId: gss.GetGameServerSessionId(), PlayerSessionId: playerSessionID})
	})
}

// DescribePlayerSessions lists player sessions; an empty
// GameServerSessionId means the current session's.
func (s *Server) DescribePlayerSessions(ctx context.Context, req *grpcsdk.DescribePlayerSessionsRequest) (*grpcsdk.DescribePlayerSessionsResponse, error) {
	if req.GetGameServerSessionId() == "" && req.GetPlayerId() == "" && req.GetPlayerSessionId() == "" {
		gss := s.Session()
		if gss == nil {
			return nil, errNoSession
		}
		req.GameServerSessionId = gss.GetGameServerSessionId()
	}
	var out *grpcsdk.DescribePlayerSessionsResponse
	err := s.call(ctx, func(ctx context.Context) error {
		var err error
		out, err = s.gse.DescribePlayerSessions(ctx, req)
		return err
	})
	return out, err
}

// UpdatePlayerSessionCreationPolicy sets ACCEPT_ALL or DENY_ALL on the
// current session.
func (s *Server) UpdatePlayerSessionCreationPolicy(ctx context.Context, policy string) error {
	gss := s.Session()
	if gss == nil {
		return errNoSession
	}
	return s.check(ctx, "UpdatePlayerSessionCreationPolicy", func(ctx context.Context) (*grpcsdk.GseResponse, error) {
		return s.gse.UpdatePlayerSessionCreationPolicy(ctx, &grpcsdk.UpdatePlayerSessionCreationPolicyRequest{GameServerSessionId: gss.GetGameServerSessionId(), NewPlayerSessionCreationPolicy: policy})
	})
}

// TerminateGameServerSession ends the current session; the process may
// then host another one.
func (s *Server) TerminateGameServerSession(ctx context.Context) error {
	s.mu.Lock()
	gss := s.session
	s.session = nil
	s.mu.Unlock()
	if gss == nil {
		return errNoSession
	}
	return s.check(ctx, "TerminateGameServerSession", func(ctx context.Context) (*grpcsdk.GseResponse, error) {
		return s.gse.TerminateGameServerSession(ctx, &grpcsdk.TerminateGameServerSessionRequest{GameServerSessionId: gss.GetGameServerSessionId()})
	})
}

// ProcessEnding tells the agent the process is shutting down.
func (s *Server) ProcessEnding(ctx context.Context) error {
	return s.check(ctx, "ProcessEnding", func(ctx context.Context) (*grpcsdk.GseResponse, error) {
		return s.gse.ProcessEnding(ctx, &grpcsdk.ProcessEndingRequest{})
	})
}

// ReportCustomData reports a custom current/max pair.
func (s *Server) ReportCustomData(ctx context.Context, current, maximum int32) error {
	return s.check(ctx, "ReportCustomData", func(ctx context.Context) (*grpcsdk.GseResponse, error) {
		return s.gse.ReportCustomData(ctx, &grpcsdk.ReportCustomDataRequest{CurrentCustomCount: current, MaxCustomCount: maximum})
	})
}
