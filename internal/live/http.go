package live

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/status"
)

// PlayPrefix is where streams play on the rooms listener:
// GET /live/<room_id>/<name>.flv.
const PlayPrefix = "/live/"

// ServeHTTP serves HTTP-FLV: the FLV header, the codec headers and the GOP
// cache, then live tags until the stream ends, the viewer leaves or the
// viewer's membership ends (banned or left: Revoke). The
// viewer is a member of the room, by the access token in the Authorization
// header or the token query parameter (a <video> cannot send headers).
func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, PlayPrefix)
	roomID, file, ok2 := strings.Cut(rest, "/")
	name, ok3 := strings.CutSuffix(file, ".flv")
	if !ok || !ok2 || !ok3 || len(roomID) > 64 || !validName(name) {
		http.Error(w, "not found: play a stream at /live/<room_id>/<name>.flv", http.StatusNotFound)
		return
	}
	token := r.URL.Query().Get("token")
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		token = strings.TrimSpace(h[7:])
	}
	if len(token) > 4096 {
		http.Error(w, "token is too long", http.StatusBadRequest)
		return
	}
	s, v, err := n.admitViewer(r.Context(), token, roomID, name)
	var denied *deniedError
	switch {
	case errors.As(err, &denied):
		code, msg := http.StatusForbidden, "forbidden"
		if info := apierr.Info(denied.err); info != nil {
			msg = info.GetMessage()
		}
		if st, ok := status.FromError(denied.err); ok {
			code = runtime.HTTPStatusFromCode(st.Code())
		}
		http.Error(w, msg, code)
		return
	case errors.Is(err, errNotLive):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case errors.Is(err, errTooManyViewers):
		http.Error(w, err.Error()+"; close one first", http.StatusTooManyRequests)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer n.leave(s, v)
	w.Header().Set("Content-Type", "video/x-flv")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodHead {
		return
	}
	rc := http.NewResponseController(w)
	buf := append(make([]byte, 0, 64<<10), flvHeader...)
	for {
		// Write what is queued in one go, then block for more.
		for len(buf) < 256<<10 {
			select {
			case t := <-v.ch:
				v.took(t, n.cfg.MaxLag)
				buf = appendTag(buf, t)
				continue
			default:
			}
			break
		}
		if len(buf) > 0 {
			// A viewer that stops reading is cut off, not waited for: a
			// blocked write would miss the stream's end and a ban.
			if err := rc.SetWriteDeadline(time.Now().Add(n.cfg.ViewerWriteTimeout)); err != nil {
				return
			}
			if _, err := w.Write(buf); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			// Disarmed while waiting for tags: on HTTP/2 the deadline is a
			// timer that resets the stream when it fires, write or not.
			if err := rc.SetWriteDeadline(time.Time{}); err != nil {
				return
			}
			buf = buf[:0]
		}
		select {
		case t := <-v.ch:
			v.took(t, n.cfg.MaxLag)
			buf = appendTag(buf, t)
		case <-s.done:
			return
		case <-v.revoked:
			return // banned or left (Revoke)
		case <-r.Context().Done():
			return
		case <-n.ctx.Done():
			return
		}
	}
}

// admitViewer is what HTTP-FLV and RTMP play share: the holder of token
// must be an active member of roomID (else a *deniedError wrapping the
// rooms system's answer); the viewer then joins the stream of roomID/name,
// local or relayed from its publisher's node (errNotLive when it is not,
// or no longer, live). The caller leaves with n.leave(s, v).
func (n *Node) admitViewer(ctx context.Context, token, roomID, name string) (*stream, *viewer, error) {
	c, err := n.cfg.Rooms.AuthorizeViewer(ctx, token, roomID)
	if err != nil {
		return nil, nil, &deniedError{err}
	}
	path := roomID + "/" + name
	s, err := n.streamFor(ctx, path, roomID, name)
	if err != nil {
		return nil, nil, err
	}
	v, err := s.subscribe(n.cfg.ViewerQueue, c.UserID, n.cfg.MaxViewersPerUser)
	if err != nil {
		return nil, nil, err // ended, or the member's connections are at the limit (the stream has viewers then)
	}
	return s, v, nil
}

// deniedError is a viewer the rooms system refused; err is its answer (a
// gRPC status).
type deniedError struct{ err error }

func (e *deniedError) Error() string { return e.err.Error() }
func (e *deniedError) Unwrap() error { return e.err }

func validName(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
