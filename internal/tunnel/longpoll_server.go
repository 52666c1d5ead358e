package tunnel

import (
	"errors"
	"io"
	"net/http"
	"path"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tunnelv1 "github.com/croupier/croupier/api/croupier/tunnel/v1"
)

// LongPollHandler serves the long-poll transport: POST <prefix>/open, /send,
// /poll and /close with protobuf bodies. It matches on the last path element,
// so it can be mounted under any prefix (with or without http.StripPrefix).
// The HTTP server's WriteTimeout, and any proxy's idle timeout, must exceed
// the poll wait (20s by default, chosen by the client).
func (s *Server) LongPollHandler() http.Handler { return s.longPoll }

// longPollServer holds the long-poll sessions of a Server.
type longPollServer struct {
	s *Server

	mu       sync.RWMutex
	sessions map[string]*lpSession
}

func newLongPollServer(s *Server) *longPollServer {
	return &longPollServer{s: s, sessions: make(map[string]*lpSession)}
}

func (lp *longPollServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "the tunnel long-poll endpoints accept POST only", http.StatusMethodNotAllowed)
		return
	}
	op := path.Base(r.URL.Path)
	limit := smallMessageBytes
	if op == "send" {
		limit = lp.s.lim.maxBatchBytes()
	}
	body, err := readBody(w, r, limit)
	if err != nil {
		writeError(w, err)
		return
	}
	switch op {
	case "open":
		lp.open(w, r, body)
	case "send":
		lp.send(w, r, body)
	case "poll":
		lp.poll(w, r, body)
	case "close":
		lp.closeSession(w, body)
	default:
		writeError(w, status.Errorf(codes.NotFound, "unknown tunnel long-poll endpoint %q (want open, send, poll or close)", op))
	}
}

func readBody(w http.ResponseWriter, r *http.Request, limit int) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, status.Errorf(codes.ResourceExhausted, "request body exceeds the limit of %d bytes", limit)
		}
		return nil, status.Errorf(codes.InvalidArgument, "reading request body: %v", err)
	}
	return b, nil
}

// open starts a session and answers once the core has accepted or refused it.
func (lp *longPollServer) open(w http.ResponseWriter, r *http.Request, body []byte) {
	req, err := decodeOpenRequest(body)
	if err != nil {
		writeError(w, err)
		return
	}
	// Poll batches must fit the client's limit as well as ours.
	lim := lp.s.lim
	if m := int(req.GetHello().GetMaxFrameBytes()); m > 0 && m < lim.maxFrameBytes {
		lim = newLimits(m)
	}
	sess := newLPSession(r.Context(), lim, req.GetHello())
	lp.mu.Lock()
	lp.sessions[sess.id] = sess
	lp.mu.Unlock()

	started := lp.s.spawn(func() {
		err := lp.s.serve(sess.ctx, sess)
		sess.close(err)
		lp.mu.Lock()
		delete(lp.sessions, sess.id)
		lp.mu.Unlock()
	})
	if !started {
		lp.mu.Lock()
		delete(lp.sessions, sess.id)
		lp.mu.Unlock()
		writeError(w, errServerClosed)
		return
	}

	select {
	case <-sess.accepted:
		writeProto(w, &tunnelv1.LongPollOpenResponse{SessionId: sess.id, MaxFrameBytes: uint32(lp.s.lim.maxFrameBytes)})
	case <-sess.done:
		writeError(w, sess.err)
	case <-r.Context().Done():
		sess.close(status.Error(codes.Canceled, "client abandoned the open request"))
	case <-time.After(longPollOpenTimeout):
		sess.close(status.Error(codes.DeadlineExceeded, "tunnel handshake timed out"))
		writeError(w, sess.err)
	}
}

func (lp *longPollServer) send(w http.ResponseWriter, r *http.Request, body []byte) {
	req, err := decodeSendRequest(body, lp.s.lim)
	if err != nil {
		writeError(w, err)
		return
	}
	sess, err := lp.session(req.GetSessionId())
	if err != nil {
		writeError(w, err)
		return
	}
	if err := sess.applySend(r.Context(), req.GetSeq(), req.GetFrames()); err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, &tunnelv1.LongPollSendResponse{AckedSeq: req.GetSeq()})
}

func (lp *longPollServer) poll(w http.ResponseWriter, r *http.Request, body []byte) {
	req, err := decodePollRequest(body)
	if err != nil {
		writeError(w, err)
		return
	}
	sess, err := lp.session(req.GetSessionId())
	if err != nil {
		writeError(w, err)
		return
	}
	wait := min(time.Duration(req.GetWaitMs())*time.Millisecond, maxPollWait)
	resp, err := sess.poll(r.Context(), req.GetAck(), wait)
	if err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, resp)
}

func (lp *longPollServer) closeSession(w http.ResponseWriter, body []byte) {
	req, err := decodeCloseRequest(body)
	if err != nil {
		writeError(w, err)
		return
	}
	if sess, err := lp.session(req.GetSessionId()); err == nil {
		sess.close(status.Error(codes.Unavailable, "client closed the long-poll session"))
	}
	writeProto(w, &tunnelv1.LongPollCloseResponse{})
}

func (lp *longPollServer) session(id string) (*lpSession, error) {
	lp.mu.RLock()
	sess := lp.sessions[id]
	lp.mu.RUnlock()
	if sess == nil {
		return nil, status.Error(codes.NotFound, "unknown or expired long-poll session; open a new one")
	}
	return sess, nil
}

// closeAll ends every session, including those still in their handshake.
func (lp *longPollServer) closeAll() {
	lp.mu.RLock()
	sessions := make([]*lpSession, 0, len(lp.sessions))
	for _, sess := range lp.sessions {
		sessions = append(sessions, sess)
	}
	lp.mu.RUnlock()
	for _, sess := range sessions {
		sess.close(errServerClosed)
	}
}
