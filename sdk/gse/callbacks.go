package gse

import (
	"context"
	"time"

	"github.com/croupier/croupier/api/tencentcloud/gse/grpcsdk"
)

// OnHealthCheck implements GameServerGrpcSdkService.
func (s *Server) OnHealthCheck(ctx context.Context, _ *grpcsdk.HealthCheckRequest) (*grpcsdk.HealthCheckResponse, error) {
	healthy := true
	if s.opts.OnHealthCheck != nil {
		healthy = s.opts.OnHealthCheck(ctx)
	}
	return &grpcsdk.HealthCheckResponse{HealthStatus: healthy}, nil
}

// OnStartGameServerSession implements GameServerGrpcSdkService: the game's
// handler prepares the session, then the helper activates it before
// answering, as GSE expects.
func (s *Server) OnStartGameServerSession(ctx context.Context, req *grpcsdk.StartGameServerSessionRequest) (*grpcsdk.GseResponse, error) {
	gss := req.GetGameServerSession()
	if s.opts.OnStartGameServerSession != nil {
		if err := s.opts.OnStartGameServerSession(ctx, gss); err != nil {
			return &grpcsdk.GseResponse{Status: grpcsdk.GseResponse_ERROR_500, ErrorMessage: err.Error()}, nil
		}
	}
	s.mu.Lock()
	s.session = gss
	s.mu.Unlock()
	if err := s.ActivateGameServerSession(ctx, gss.GetGameServerSessionId(), gss.GetMaxPlayers()); err != nil {
		s.mu.Lock()
		s.session = nil
		s.mu.Unlock()
		return &grpcsdk.GseResponse{Status: grpcsdk.GseResponse_ERROR_500, ErrorMessage: err.Error()}, nil
	}
	return &grpcsdk.GseResponse{Status: grpcsdk.GseResponse_OK}, nil
}

// OnProcessTerminate implements GameServerGrpcSdkService: it tells the
// game, then ends the session and the process in the background (the calls
// go to the agent, which is waiting for this answer).
func (s *Server) OnProcessTerminate(ctx context.Context, req *grpcsdk.ProcessTerminateRequest) (*grpcsdk.GseResponse, error) {
	at := time.Unix(req.GetTerminationTime(), 0)
	if s.opts.OnProcessTerminate != nil {
		s.opts.OnProcessTerminate(ctx, at)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.End(context.Background()); err != nil {
			s.log.Warn("ending after OnProcessTerminate", "err", err)
		}
	}()
	return &grpcsdk.GseResponse{Status: grpcsdk.GseResponse_OK}, nil
}

// End ends the current session (if any), calls ProcessEnding and closes
// Done. The process should exit afterwards.
func (s *Server) End(ctx context.Context) error {
	var err error
	s.doneOnce.Do(func() {
		if s.Session() != nil {
			if err = s.TerminateGameServerSession(ctx); err != nil {
				s.log.Warn("TerminateGameServerSession", "err", err)
			}
		}
		err = s.ProcessEnding(ctx)
		close(s.done)
	})
	return err
}
