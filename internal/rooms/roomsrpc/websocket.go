package roomsrpc

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/rooms"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// serveWebSocket is the MessageStream for browsers: binary frames, one
// protobuf ClientMessage or ServerMessage each. The first frame must be
// the hello; it carries the access token unless an Authorization header
// does.
func (h *handler) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: h.opts.AllowedOrigins})
	if err != nil {
		return // Accept has answered
	}
	defer conn.CloseNow()
	conn.SetReadLimit(int64(h.opts.MaxMessageBytes))
	ctx := r.Context()
	write := func(b []byte) error {
		wctx, cancel := context.WithTimeout(ctx, h.opts.WriteTimeout) // a client that does not take a frame in time is cut off
		defer cancel()
		return conn.Write(wctx, websocket.MessageBinary, b)
	}
	// An event's wire bytes are shared by every member's stream.
	send := func(o *rooms.Outgoing) error {
		b, err := o.Wire()
		if err != nil {
			return err
		}
		return write(b)
	}
	recv := func() (*clientv1.ClientMessage, error) {
		rctx, cancel := context.WithTimeout(ctx, h.opts.ReadIdle)
		defer cancel()
		typ, b, err := conn.Read(rctx)
		if err != nil {
			return nil, err
		}
		m := &clientv1.ClientMessage{}
		if typ != websocket.MessageBinary {
			return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "send binary frames holding protobuf ClientMessages")
		}
		if err := proto.Unmarshal(b, m); err != nil {
			return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "a frame is not a protobuf ClientMessage")
		}
		return m, nil
	}
	fail := func(err error) {
		if b, merr := proto.Marshal(errorFrame(err)); merr == nil {
			_ = write(b)
		}
		conn.Close(websocket.StatusPolicyViolation, truncateReason(err))
	}
	first, err := recv()
	if err != nil {
		fail(err)
		return
	}
	tok := bearer(r.Header)
	if tok == "" {
		tok = first.GetHello().GetAccessToken()
	}
	caller, err := h.svc.Authenticate(ctx, tok)
	if err != nil {
		fail(err)
		return
	}
	st, err := h.svc.OpenStream(ctx, caller, first.GetHello())
	if err != nil {
		fail(err)
		return
	}
	defer st.Close()
	err = pump(ctx, st, func() (*clientv1.ClientMessage, error) {
		for {
			m, err := recv()
			if err != nil && apierr.Info(err) != nil {
				st.Reject(err) // a bad frame is refused; the stream goes on
				continue
			}
			return m, err
		}
	}, writer{send: send})
	if err != nil && !errors.Is(err, context.Canceled) {
		conn.Close(websocket.StatusGoingAway, "")
		return
	}
	conn.Close(websocket.StatusNormalClosure, "")
}

// errorFrame is the ServerMessage that carries err.
func errorFrame(err error) *clientv1.ServerMessage {
	code, msg := apierr.CodeInternal, "internal error"
	if info := apierr.Info(err); info != nil {
		code, msg = info.GetCode(), info.GetMessage()
	} else if errors.Is(err, context.DeadlineExceeded) {
		code, msg = apierr.CodeTimeout, "no hello within the read deadline"
	}
	return &clientv1.ServerMessage{Timestamp: time.Now().UnixMilli(), Payload: &clientv1.ServerMessage_Error{
		Error: &clientv1.ErrorMessage{Code: code, Message: msg}}}
}

// truncateReason fits an error into a close frame's reason (123 bytes).
func truncateReason(err error) string {
	msg := err.Error()
	if info := apierr.Info(err); info != nil {
		msg = info.GetCode()
	}
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return msg
}

// serveTime answers GET /time?client_time=MS with GetServerTimeResponse
// as JSON, the cheapest round trip for clock offset estimation.
func (h *handler) serveTime(w http.ResponseWriter, r *http.Request) {
	recv := h.svc.Now()
	var ct int64
	if v := r.URL.Query().Get("client_time"); v != "" {
		var err error
		if ct, err = strconv.ParseInt(v, 10, 64); err != nil {
			http.Error(w, "client_time must be an integer (Unix milliseconds)", http.StatusBadRequest)
			return
		}
	}
	b, err := protojson.Marshal(h.svc.ServerTime(ct, recv))
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}
