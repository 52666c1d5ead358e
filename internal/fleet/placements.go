package fleet

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/store"
)

// StartGameServerSessionPlacement queues a request for a session that
// waits up to timeout_seconds for a free process, and tries to fulfil it at
// once. Repeating a placement id returns the existing placement.
func (s *Service) StartGameServerSessionPlacement(ctx context.Context, req *croupierv1.StartGameServerSessionPlacementRequest) (*croupierv1.GameServerSessionPlacement, error) {
	if !validID(req.GetPlacementId(), MaxIDBytes) {
		return nil, invalidArg("placement_id %q: use 1-%d letters, digits, '-', '_' or '.'", req.GetPlacementId(), MaxIDBytes)
	}
	sp := &sessionSpec{name: req.GetGameServerSessionName(), data: req.GetGameServerSessionData(),
		maxPlayers: req.GetMaxPlayers(), props: req.GetGameProperties()}
	if err := sp.validate(); err != nil {
		return nil, err
	}
	timeout := time.Duration(req.GetTimeoutSeconds()) * time.Second
	switch {
	case timeout == 0:
		timeout = DefaultPlacementTimeout
	case timeout < 0 || timeout > MaxPlacementTimeout:
		return nil, invalidArg("timeout_seconds %d is out of range 1..%d", req.GetTimeoutSeconds(), int(MaxPlacementTimeout/time.Second))
	}
	f, err := s.GetFleet(ctx, req.GetFleetId())
	if err != nil {
		return nil, err
	}
	p, existing, err := s.st.Placements().Create(ctx, &store.Placement{
		ID: req.GetPlacementId(), FleetID: f.GetFleetId(), GameID: f.GetGameId(), Env: f.GetEnv(),
		Name: sp.name, MaxPlayers: int(sp.maxPlayers), Properties: propsFromProto(sp.props), SessionData: sp.data,
		TimeoutSeconds: int(timeout / time.Second),
	}, s.cfg.MaxPendingPerFleet)
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, newErr(codes.ResourceExhausted, CodePlacementQueueFull, "%s; retry later", store.Message(err))
		}
		return nil, storeErr(err, CodeFleetNotFound)
	}
	if existing && p.FleetID != f.GetFleetId() {
		// The id is another fleet's placement, maybe another game's: a
		// repeated start is the same fleet's, and nothing of the other is
		// told.
		return nil, newErr(codes.AlreadyExists, CodePlacementExists, "placement id %s is taken; choose another", req.GetPlacementId())
	}
	if !existing {
		s.fulfil(ctx, f.GetFleetId())
	}
	return s.DescribeGameServerSessionPlacement(ctx, p.ID)
}

// DescribeGameServerSessionPlacement returns a placement; a FULFILLED one
// carries the session's address.
func (s *Service) DescribeGameServerSessionPlacement(ctx context.Context, id string) (*croupierv1.GameServerSessionPlacement, error) {
	if id == "" {
		return nil, invalidArg("placement_id is required")
	}
	p, err := s.st.Placements().Get(ctx, id)
	if err != nil {
		return nil, storeErr(err, CodePlacementNotFound)
	}
	return s.placementView(ctx, p)
}

func (s *Service) placementView(ctx context.Context, p *store.Placement) (*croupierv1.GameServerSessionPlacement, error) {
	var g *store.GameServerSession
	if p.SessionID != "" {
		var err error
		if g, err = s.st.GameServerSessions().Get(ctx, p.SessionID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, storeErr(err, CodeSessionNotFound)
		}
	}
	return placementToProto(p, g), nil
}

// StopGameServerSessionPlacement cancels a PENDING placement. Stopping one
// that already ended returns it unchanged.
func (s *Service) StopGameServerSessionPlacement(ctx context.Context, id string) (*croupierv1.GameServerSessionPlacement, error) {
	if id == "" {
		return nil, invalidArg("placement_id is required")
	}
	p, _, err := s.st.Placements().End(ctx, id, store.PlacementCancelled)
	if err != nil {
		return nil, storeErr(err, CodePlacementNotFound)
	}
	return s.placementView(ctx, p)
}

// fulfil places the pending placements of one fleet, oldest first, while
// processes are free; expired ones time out on the way.
func (s *Service) fulfil(ctx context.Context, fleetID string) {
	s.fulfilMu.Lock()
	defer s.fulfilMu.Unlock()
	pending, err := s.st.Placements().Pending(ctx, fleetID, sweepBatch)
	if err != nil {
		s.log.Warn("placement queue", "fleet", fleetID, "err", err)
		return
	}
	var f *croupierv1.Fleet
	for i := range pending {
		p := &pending[i]
		if !s.now().Before(p.Deadline) {
			if _, _, err := s.st.Placements().End(ctx, p.ID, store.PlacementTimedOut); err != nil {
				s.log.Warn("placement timeout", "placement", p.ID, "err", err)
			}
			continue
		}
		if f == nil {
			if f, err = s.st.Fleets().Get(ctx, fleetID); err != nil {
				s.log.Warn("placement queue: fleet", "fleet", fleetID, "err", err)
				return
			}
		}
		g := s.newSession(f, &sessionSpec{name: p.Name, data: p.SessionData, maxPlayers: int32(p.MaxPlayers),
			props: propsToProto(p.Properties)})
		placed, _, err := s.st.GameServerSessions().Place(ctx, g, p.ID)
		switch {
		case errors.Is(err, store.ErrNoCapacity):
			return // the rest keep waiting, in order
		case errors.Is(err, store.ErrConflict):
			continue // cancelled or fulfilled meanwhile (maybe by another node)
		case err != nil:
			s.log.Warn("placement queue: placing", "placement", p.ID, "err", err)
			return
		}
		s.startOnProcess(placed)
	}
}

// sweepPlacements retries the queue of every fleet with pending placements
// and times out expired ones.
func (s *Service) sweepPlacements(ctx context.Context) {
	pending, err := s.st.Placements().Pending(ctx, "", sweepBatch)
	if err != nil {
		s.log.Warn("sweep: placement queue", "err", err)
		return
	}
	seen := map[string]bool{}
	for _, p := range pending {
		if !seen[p.FleetID] {
			seen[p.FleetID] = true
			s.fulfil(ctx, p.FleetID)
		}
	}
}
