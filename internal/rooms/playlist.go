package rooms

import (
	"context"
	"errors"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
)

// checkMovieURL accepts absolute http and https URLs only.
func checkMovieURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", invalid("url is required")
	}
	if len(raw) > maxURLLen {
		return "", tooLong("url", maxURLLen, "bytes")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", invalid("url %q is not an absolute http or https URL", truncate(raw, 64))
	}
	return u.String(), nil
}

// guessType names the player for a URL by its extension.
func guessType(u string) clientv1.MovieType {
	p, _ := url.Parse(u)
	switch strings.ToLower(path.Ext(p.Path)) {
	case ".mp4", ".m4v", ".mov":
		return clientv1.MovieType_MOVIE_TYPE_MP4
	case ".webm":
		return clientv1.MovieType_MOVIE_TYPE_WEBM
	case ".m3u8":
		return clientv1.MovieType_MOVIE_TYPE_HLS
	case ".flv":
		return clientv1.MovieType_MOVIE_TYPE_FLV
	}
	return clientv1.MovieType_MOVIE_TYPE_UNSPECIFIED
}

// AddMovie appends a movie to the playlist (ADD_MOVIE; at most 500).
func (s *Service) AddMovie(ctx context.Context, c Caller, req *clientv1.AddMovieRequest) (*clientv1.AddMovieResponse, error) {
	u, err := checkMovieURL(req.GetUrl())
	if err != nil {
		return nil, err
	}
	title := strings.TrimSpace(req.GetTitle())
	switch {
	case !utf8.ValidString(title):
		return nil, invalid("title is not valid UTF-8")
	case utf8.RuneCountInString(title) > maxTitleRunes:
		return nil, tooLong("title", maxTitleRunes, "characters")
	case title == "":
		p, _ := url.Parse(u)
		if title = path.Base(p.Path); title == "/" || title == "." {
			title = p.Host
		}
	}
	typ := req.GetType()
	if _, ok := clientv1.MovieType_name[int32(typ)]; !ok {
		return nil, invalid("type %d is not a movie type", typ)
	}
	if typ == clientv1.MovieType_MOVIE_TYPE_UNSPECIFIED {
		typ = guessType(u)
	}
	if _, err := s.need(ctx, c, req.GetRoomId(), clientv1.Permission_PERMISSION_ADD_MOVIE); err != nil {
		return nil, err
	}
	if err := s.rateLimit(req.GetRoomId(), c.UserID, limitControl); err != nil {
		return nil, err
	}
	id, err := newID()
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	m, err := s.st.AddMovie(ctx, store.Movie{ID: id, RoomID: req.GetRoomId(), URL: u, Title: title, Type: int(typ),
		AddedBy: c.UserID, CreatedAt: s.now()}, maxPlaylist)
	if errors.Is(err, store.ErrConflict) {
		return nil, apierr.New(codes.ResourceExhausted, apierr.CodePlaylistFull, "the playlist of room "+req.GetRoomId()+" is full ("+strconv.Itoa(maxPlaylist)+" movies); remove some first")
	}
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	s.playlistChanged(ctx, req.GetRoomId())
	return &clientv1.AddMovieResponse{Movie: movieProto(m)}, nil
}

// playlistChanged tells the room's streams that its playlist changed.
// Without a bus, the room's streams on this node get the whole playlist at
// once. On a cluster the log carries only the news, an empty
// PlaylistUpdate — a playlist of 500 movies is far larger than a log event
// may be — and each node's Deliver reads the playlist from the store the
// nodes share for its own streams (playlistNews).
func (s *Service) playlistChanged(ctx context.Context, roomID string) {
	if s.bus != nil {
		s.hub.publishLive(ctx, roomID, &clientv1.ServerMessage{Payload: &clientv1.ServerMessage_Playlist{Playlist: &clientv1.PlaylistUpdate{}}}, nil)
		return
	}
	if !s.hub.isLive(roomID) {
		return
	}
	up, err := s.playlistUpdate(ctx, roomID)
	if err != nil {
		s.log.Warn("playlist update not delivered", "room", roomID, "err", err)
		return
	}
	s.hub.publishLive(ctx, roomID, &clientv1.ServerMessage{Payload: &clientv1.ServerMessage_Playlist{Playlist: up}}, nil)
}

// playlistUpdate reads the room's playlist as a PlaylistUpdate.
func (s *Service) playlistUpdate(ctx context.Context, roomID string) (*clientv1.PlaylistUpdate, error) {
	movies, _, err := s.st.ListMovies(ctx, roomID, 0, maxPlaylist)
	if err != nil {
		return nil, err
	}
	up := &clientv1.PlaylistUpdate{Movies: make([]*clientv1.Movie, 0, len(movies))}
	for _, m := range movies {
		up.Movies = append(up.Movies, movieProto(m))
	}
	return up, nil
}

// playlistNews fills a playlist change delivered from the log (at seq)
// with the playlist as the store holds it, for this node's streams of the
// room (none: nothing to read).
//
// A burst of changes is read once, not once per change. Each change is
// committed before it is published to the log, so a read that begins
// after the room's log head was seen at H holds every change published at
// or below H. When the log holds more events (more), playlistNews asks
// the bus for the room's head before it reads, and the changes up to it
// that are delivered next reuse what it read: the playlist as it was when
// read, after all of them (changes committed since come with higher seqs,
// and are read again when delivered). With nothing more in the log, one
// change is read alone, without the question.
func (s *Service) playlistNews(roomID string, seq int64, more bool, up *clientv1.PlaylistUpdate) {
	if !s.hub.isLive(roomID) {
		return
	}
	if movies, ok := s.playlists.get(roomID, seq); ok {
		up.Movies = movies
		return
	}
	covers := seq // delivered: in the log, so committed before this read
	if more && s.bus != nil {
		hctx, cancel := context.WithTimeout(context.Background(), headTimeout)
		if head, err := s.bus.Head(hctx, roomID); err == nil {
			covers = max(covers, head)
		}
		cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), freshMemberTimeout)
	defer cancel()
	fresh, err := s.playlistUpdate(ctx, roomID)
	if err != nil {
		s.log.Warn("playlist not read for a playlist change; the streams get it at their next change", "room", roomID, "err", err)
		return
	}
	s.m.playlistReads.Inc()
	s.playlists.put(roomID, covers, fresh.Movies)
	up.Movies = fresh.Movies
}

// headTimeout bounds playlistNews' question for the log's head; without
// an answer the read holds the delivered change only.
const headTimeout = time.Second

// playlistReads remembers, per room, the last playlist read for a
// delivered change and the log seq it holds every change up to.
type playlistReads struct {
	mu    sync.Mutex
	rooms map[string]playlistRead
}

type playlistRead struct {
	covers int64
	movies []*clientv1.Movie // shared by the updates that reuse it: read only
}

// maxPlaylistReads bounds the rooms remembered (a room's read is
// forgotten when the room unloads); past it they are forgotten at once
// (each costs one more read at its next change).
const maxPlaylistReads = 1024

// forget drops the room's read (the room is no longer live here).
func (p *playlistReads) forget(roomID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.rooms, roomID)
}

// get returns the playlist read that holds the change at seq, if any.
func (p *playlistReads) get(roomID string, seq int64) ([]*clientv1.Movie, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.rooms[roomID]
	if !ok || seq > r.covers {
		return nil, false
	}
	return r.movies, true
}

func (p *playlistReads) put(roomID string, covers int64, movies []*clientv1.Movie) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rooms == nil || len(p.rooms) >= maxPlaylistReads {
		p.rooms = map[string]playlistRead{}
	}
	p.rooms[roomID] = playlistRead{covers: covers, movies: movies}
}

// RemoveMovie removes a movie (REMOVE_MOVIE); removing the current movie
// clears the playback state.
func (s *Service) RemoveMovie(ctx context.Context, c Caller, req *clientv1.RemoveMovieRequest) (*clientv1.RemoveMovieResponse, error) {
	if err := checkUserID("movie_id", req.GetMovieId()); err != nil {
		return nil, err
	}
	m, err := s.need(ctx, c, req.GetRoomId(), clientv1.Permission_PERMISSION_REMOVE_MOVIE)
	if err != nil {
		return nil, err
	}
	if err := s.rateLimit(req.GetRoomId(), c.UserID, limitControl); err != nil {
		return nil, err
	}
	if err := s.st.RemoveMovie(ctx, req.GetRoomId(), req.GetMovieId()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, apierr.New(codes.NotFound, apierr.CodeMovieNotFound, "movie "+req.GetMovieId()+" is not in room "+req.GetRoomId()+"'s playlist")
		}
		return nil, toStatus(ctx, s.log, err)
	}
	r, err := s.hub.acquire(ctx, req.GetRoomId())
	if err == nil {
		r.mu.Lock()
		current := r.state.MovieID == req.GetMovieId()
		r.mu.Unlock()
		if current {
			_, err = s.changePlayback(ctx, r, clientv1.Permission_PERMISSION_REMOVE_MOVIE, func() store.RoomMember { return m }, 0,
				&clientv1.Movie{}, func(_ time.Time, _ store.PlaybackState) (store.PlaybackState, error) {
					return store.PlaybackState{Rate: 1}, nil
				})
		}
		s.hub.release(r)
	}
	if err != nil {
		s.log.Warn("room state after removing the current movie", "room", req.GetRoomId(), "err", err)
	}
	s.playlistChanged(ctx, req.GetRoomId())
	return &clientv1.RemoveMovieResponse{}, nil
}

// GetMovieList returns the playlist in order, paged (members only).
func (s *Service) GetMovieList(ctx context.Context, c Caller, req *clientv1.GetMovieListRequest) (*clientv1.GetMovieListResponse, error) {
	if err := checkRoomID(req.GetRoomId()); err != nil {
		return nil, err
	}
	if _, err := s.activeMember(ctx, c, req.GetRoomId()); err != nil {
		return nil, err
	}
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	offset := 0
	if req.GetPageToken() != "" {
		p, err := decodeToken(req.GetPageToken(), 1)
		if err != nil {
			return nil, err
		}
		if offset, err = strconv.Atoi(p[0]); err != nil || offset < 0 {
			return nil, invalid("page_token is malformed: pass the next_page_token of the previous page unchanged")
		}
	}
	movies, total, err := s.st.ListMovies(ctx, req.GetRoomId(), offset, size)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	resp := &clientv1.GetMovieListResponse{Total: int32(total)}
	for _, m := range movies {
		resp.Movies = append(resp.Movies, movieProto(m))
	}
	if offset+len(movies) < total && len(movies) > 0 {
		resp.NextPageToken = encodeToken(strconv.Itoa(offset + len(movies)))
	}
	room, err := s.getRoom(ctx, req.GetRoomId())
	if err != nil {
		return nil, err
	}
	resp.CurrentMovieId = s.currentState(ctx, room).GetMovieId()
	return resp, nil
}

// ReorderMovies moves one movie to a new index (EDIT_MOVIE).
func (s *Service) ReorderMovies(ctx context.Context, c Caller, req *clientv1.ReorderMoviesRequest) (*clientv1.ReorderMoviesResponse, error) {
	if err := checkUserID("movie_id", req.GetMovieId()); err != nil {
		return nil, err
	}
	if req.GetToIndex() < 0 {
		return nil, invalid("to_index must be >= 0")
	}
	if _, err := s.need(ctx, c, req.GetRoomId(), clientv1.Permission_PERMISSION_EDIT_MOVIE); err != nil {
		return nil, err
	}
	if err := s.rateLimit(req.GetRoomId(), c.UserID, limitControl); err != nil {
		return nil, err
	}
	movies, err := s.st.MoveMovie(ctx, req.GetRoomId(), req.GetMovieId(), int(req.GetToIndex()))
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.New(codes.NotFound, apierr.CodeMovieNotFound, "movie "+req.GetMovieId()+" is not in room "+req.GetRoomId()+"'s playlist")
	}
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	resp := &clientv1.ReorderMoviesResponse{}
	for _, m := range movies {
		resp.Movies = append(resp.Movies, movieProto(m))
	}
	s.playlistChanged(ctx, req.GetRoomId())
	return resp, nil
}
