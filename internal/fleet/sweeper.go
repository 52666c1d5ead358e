package fleet

import (
	"context"
	"time"
)

// sweepLoop applies timeouts and works the placement queue every
// SweepInterval, and at once when woken (capacity may have appeared).
func (s *Service) sweepLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sweep(ctx)
		case <-s.kick:
			s.sweepPlacements(ctx)
		}
	}
}

// sweep runs one round. Each step is a bounded batch of compare-and-set
// updates, safe to run on several server nodes at once.
func (s *Service) sweep(ctx context.Context) {
	now := s.now()
	s.expireActivations(ctx, now)
	if expired, err := s.st.PlayerSessions().ExpireReservations(ctx, now, sweepBatch); err != nil {
		s.log.Warn("sweep: reservation timeouts", "err", err)
	} else if len(expired) > 0 {
		s.log.Debug("player session reservations timed out", "count", len(expired))
	}
	s.sweepPlacements(ctx)
}
