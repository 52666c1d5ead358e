package rooms

import (
	"context"
	"errors"
	"time"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
)

var errNoMovie = apierr.New(codes.FailedPrecondition, apierr.CodeNoCurrentMovie, "the room has no current movie; call SetCurrentMovie first")

// positionAt extrapolates the playback position at now: readers do the
// same with the server's clock (docs/rooms.md, "Sync algorithm").
func positionAt(st store.PlaybackState, now time.Time) float64 {
	if !st.Playing || st.UpdatedAt.IsZero() {
		return st.Position
	}
	p := st.Position + now.Sub(st.UpdatedAt).Seconds()*st.Rate
	return min(max(p, 0), maxPosition)
}

// changePlayback is every playback change: with the room's lock held it
// checks perm against who(), compares version (0 skips the compare),
// computes the next state with apply, writes it to the database with a
// compare on the stored version, and publishes it. Two members acting at
// once are serialised by the lock: the first wins, the second gets
// PLAYBACK_VERSION_MISMATCH (unless it sent version 0), and both see the
// one resulting state on their streams.
func (s *Service) changePlayback(ctx context.Context, r *liveRoom, perm clientv1.Permission, who func() store.RoomMember,
	version int64, movie *clientv1.Movie, apply func(now time.Time, cur store.PlaybackState) (store.PlaybackState, error)) (*clientv1.RoomState, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone {
		return nil, apierr.New(codes.NotFound, apierr.CodeRoomDeleted, "room "+r.id+" was deleted")
	}
	m := who()
	if effective(m)&uint64(perm) == 0 {
		return nil, missing(perm, r.id)
	}
	if version != 0 && version != r.state.Version {
		s.m.conflicts.Inc()
		return nil, versionMismatch(r.id, version, r.state.Version)
	}
	if s.bus != nil {
		// A change this node cannot announce is refused, not diverged.
		if err := s.bus.Check(); err != nil {
			return nil, errNoBus(err)
		}
	}
	if movie == nil && r.state.MovieID == "" {
		return nil, errNoMovie
	}
	now := s.now()
	next, err := apply(now, r.state)
	if err != nil {
		return nil, err
	}
	if movie != nil {
		next.MovieID = movie.GetId()
	}
	next.Version, next.UpdatedAt, next.UpdatedBy = r.state.Version+1, now, m.UserID
	if next.Rate == 0 {
		next.Rate = 1
	}
	if err := s.st.SavePlayback(ctx, r.id, next, r.state.Version); err != nil {
		if errors.Is(err, store.ErrConflict) {
			// Written by someone else (another node): take theirs.
			if room, rerr := s.st.Room(ctx, r.id); rerr == nil {
				r.state = room.State
			}
			s.m.conflicts.Inc()
			return nil, versionMismatch(r.id, version, r.state.Version)
		}
		return nil, toStatus(ctx, s.log, err)
	}
	r.state = next
	if movie != nil {
		r.movie = movie
	}
	state := r.stateProto()
	if err := s.hub.publish(ctx, r, &clientv1.ServerMessage{Payload: &clientv1.ServerMessage_RoomState{
		RoomState: &clientv1.RoomStateUpdate{RoomId: r.id, State: state}}}); err != nil {
		s.log.Warn("room state not delivered", "room", r.id, "err", err)
		if s.bus != nil {
			// Saved but not announced: other nodes take it from the
			// database at their next change (version conflict).
			return nil, err
		}
	}
	return state, nil
}

// playbackRPC runs a playback change for an rpc: the caller must be an
// active member; the room is loaded for the change.
func (s *Service) playbackRPC(ctx context.Context, c Caller, roomID string, perm clientv1.Permission, version int64, movie *clientv1.Movie,
	apply func(now time.Time, cur store.PlaybackState) (store.PlaybackState, error)) (*clientv1.RoomState, error) {
	if err := checkRoomID(roomID); err != nil {
		return nil, err
	}
	if version < 0 {
		return nil, invalid("version must be >= 0")
	}
	m, err := s.activeMember(ctx, c, roomID)
	if err != nil {
		return nil, err
	}
	if err := s.rateLimit(roomID, c.UserID, limitControl); err != nil {
		return nil, err
	}
	r, err := s.hub.acquire(ctx, roomID)
	if err != nil {
		return nil, err
	}
	defer s.hub.release(r)
	return s.changePlayback(ctx, r, perm, func() store.RoomMember {
		if st := r.subs[c.UserID]; st != nil {
			return st.member // kept current by every membership change
		}
		return m
	}, version, movie, apply)
}

// Play resumes playback (at position, if given).
func (s *Service) Play(ctx context.Context, c Caller, req *clientv1.PlayRequest) (*clientv1.PlayResponse, error) {
	st, err := s.setPlaying(ctx, c, req.GetRoomId(), req.GetVersion(), req.Position, true)
	if err != nil {
		return nil, err
	}
	return &clientv1.PlayResponse{State: st}, nil
}

// Pause stops playback (at position, if given, else where it is now).
func (s *Service) Pause(ctx context.Context, c Caller, req *clientv1.PauseRequest) (*clientv1.PauseResponse, error) {
	st, err := s.setPlaying(ctx, c, req.GetRoomId(), req.GetVersion(), req.Position, false)
	if err != nil {
		return nil, err
	}
	return &clientv1.PauseResponse{State: st}, nil
}

// setPlaying is Play and Pause: playing as given, at position if given,
// else where the room is now.
func (s *Service) setPlaying(ctx context.Context, c Caller, roomID string, version int64, position *float64, playing bool) (*clientv1.RoomState, error) {
	if position != nil {
		if err := checkPosition(*position); err != nil {
			return nil, err
		}
	}
	return s.playbackRPC(ctx, c, roomID, clientv1.Permission_PERMISSION_CONTROL_PLAYBACK, version, nil,
		func(now time.Time, cur store.PlaybackState) (store.PlaybackState, error) {
			next := cur
			next.Position = positionAt(cur, now)
			if position != nil {
				next.Position = *position
			}
			next.Playing = playing
			return next, nil
		})
}

// Seek moves the position; playing or paused stays as it is.
func (s *Service) Seek(ctx context.Context, c Caller, req *clientv1.SeekRequest) (*clientv1.SeekResponse, error) {
	if err := checkPosition(req.GetPosition()); err != nil {
		return nil, err
	}
	st, err := s.playbackRPC(ctx, c, req.GetRoomId(), clientv1.Permission_PERMISSION_CONTROL_PLAYBACK, req.GetVersion(), nil,
		func(_ time.Time, cur store.PlaybackState) (store.PlaybackState, error) {
			next := cur
			next.Position = req.GetPosition()
			return next, nil
		})
	if err != nil {
		return nil, err
	}
	return &clientv1.SeekResponse{State: st}, nil
}

// SetPlaybackRate changes the rate from the current position on.
func (s *Service) SetPlaybackRate(ctx context.Context, c Caller, req *clientv1.SetPlaybackRateRequest) (*clientv1.SetPlaybackRateResponse, error) {
	if err := checkRate(req.GetRate()); err != nil {
		return nil, err
	}
	st, err := s.playbackRPC(ctx, c, req.GetRoomId(), clientv1.Permission_PERMISSION_CONTROL_PLAYBACK, req.GetVersion(), nil,
		func(now time.Time, cur store.PlaybackState) (store.PlaybackState, error) {
			next := cur
			next.Position = positionAt(cur, now)
			next.Rate = req.GetRate()
			return next, nil
		})
	if err != nil {
		return nil, err
	}
	return &clientv1.SetPlaybackRateResponse{State: st}, nil
}

// SetCurrentMovie makes a playlist movie current, paused at 0 at rate 1.
func (s *Service) SetCurrentMovie(ctx context.Context, c Caller, req *clientv1.SetCurrentMovieRequest) (*clientv1.SetCurrentMovieResponse, error) {
	if err := checkRoomID(req.GetRoomId()); err != nil {
		return nil, err
	}
	if err := checkUserID("movie_id", req.GetMovieId()); err != nil {
		return nil, err
	}
	mv, err := s.st.Movie(ctx, req.GetRoomId(), req.GetMovieId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.New(codes.NotFound, apierr.CodeMovieNotFound, "movie "+req.GetMovieId()+" is not in room "+req.GetRoomId()+"'s playlist")
	}
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	st, err := s.playbackRPC(ctx, c, req.GetRoomId(), clientv1.Permission_PERMISSION_SET_CURRENT_MOVIE, req.GetVersion(), movieProto(mv),
		func(time.Time, store.PlaybackState) (store.PlaybackState, error) {
			return store.PlaybackState{Rate: 1}, nil
		})
	if err != nil {
		return nil, err
	}
	return &clientv1.SetCurrentMovieResponse{State: st}, nil
}
