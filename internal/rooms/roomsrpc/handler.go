// Package roomsrpc serves the rooms Service (internal/rooms) to clients:
// ClientService over connect-go — gRPC, gRPC-Web and Connect (binary and
// JSON) from one handler — the MessageStream's WebSocket fallback for
// browsers (gRPC-Web has no client streaming), and GET /time. It decodes,
// authenticates (one interceptor for every procedure and protocol), calls
// the service and maps its errors (toConnect, the one place). See
// docs/rooms.md.
package roomsrpc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/api/synctv/client/v1/clientv1connect"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/rooms"
	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

// Paths served next to the connect procedures.
const (
	// WebSocketPath carries the MessageStream as binary WebSocket frames,
	// one ClientMessage or ServerMessage protobuf per frame.
	WebSocketPath = "/api/room/ws"
	// TimePath answers GET with the server's clock (GetServerTimeResponse
	// as JSON) for NTP-style offset estimation.
	TimePath = "/time"
)

// Options tune the handler; zero values pick the defaults.
type Options struct {
	// MaxMessageBytes bounds one request or stream message; default 4 MiB
	// (large enough that oversized fields reach validation and are refused
	// by name).
	MaxMessageBytes int
	// ReadIdle closes a WebSocket that sent nothing (not even a ping) for
	// this long; default 2 minutes.
	ReadIdle time.Duration
	// WriteTimeout cuts off a MessageStream (Connect, gRPC or WebSocket)
	// one send on which takes longer: a client that stopped reading;
	// default 10 s.
	WriteTimeout time.Duration
	// AllowedOrigins are the Origin host patterns accepted on WebSocket
	// upgrade besides the request's own host ("*" for any).
	AllowedOrigins []string
	// Audit records room writes (see audited) in the operators' audit
	// trail; nil: not recorded.
	Audit audit.Recorder
	// AuditRefusals bounds the audit rows of refused calls (any player can
	// make them); nil: audit.NewRefusalLimiter().
	AuditRefusals *rate.Limiter
	Logger        *slog.Logger
}

// public procedures need no access token.
var public = map[string]bool{
	clientv1connect.ClientServiceLoginProcedure:         true,
	clientv1connect.ClientServiceRegisterProcedure:      true,
	clientv1connect.ClientServiceRefreshTokenProcedure:  true,
	clientv1connect.ClientServiceLogoutProcedure:        true,
	clientv1connect.ClientServiceGuestJoinProcedure:     true,
	clientv1connect.ClientServiceListRoomsProcedure:     true,
	clientv1connect.ClientServiceGetServerTimeProcedure: true,
}

// Mount registers ClientService, the WebSocket fallback and /time on mux.
func Mount(mux *http.ServeMux, svc *rooms.Service, o Options) {
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 4 << 20
	}
	if o.ReadIdle <= 0 {
		o.ReadIdle = 2 * time.Minute
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.AuditRefusals == nil {
		o.AuditRefusals = audit.NewRefusalLimiter()
	}
	h := &handler{svc: svc, opts: o}
	path, ch := clientv1connect.NewClientServiceHandler(h,
		connect.WithInterceptors(&authInterceptor{svc: svc, audit: o.Audit, refusals: o.AuditRefusals, log: o.Logger}),
		connect.WithReadMaxBytes(o.MaxMessageBytes),
		// Most messages are room events of a few hundred bytes, sent to
		// every member: gzip's per-message setup cost more CPU than the
		// bytes it saved (a quarter of bench/rooms' profile).
		connect.WithCompressMinBytes(4096),
		connect.WithCodec(wireCodec{}),
	)
	mux.Handle(path, withBatching(clientv1connect.ClientServiceMessageStreamProcedure, ch))
	mux.HandleFunc(WebSocketPath, h.serveWebSocket)
	mux.HandleFunc("GET "+TimePath, h.serveTime)
}

type handler struct {
	svc  *rooms.Service
	opts Options
}

var _ clientv1connect.ClientServiceHandler = (*handler)(nil)

// ---------------------------------------------------------------- auth and errors

type callerKey struct{}

func withCaller(ctx context.Context, c rooms.Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

func callerFrom(ctx context.Context) (rooms.Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(rooms.Caller)
	return c, ok
}

func bearer(h http.Header) string {
	v := h.Get("Authorization")
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return ""
}

// authInterceptor authenticates every non-public call, audits room writes
// and maps every error, for all protocols alike. Streams may instead
// authenticate with their hello (browsers cannot set headers on a
// WebSocket).
type authInterceptor struct {
	svc      *rooms.Service
	audit    audit.Recorder
	refusals *rate.Limiter
	log      *slog.Logger
}

func (a *authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if public[req.Spec().Procedure] {
			resp, err := next(ctx, req)
			return resp, toConnect(err)
		}
		c, err := a.svc.Authenticate(ctx, bearer(req.Header()))
		if err != nil {
			return nil, toConnect(err)
		}
		c.Source = ratelimit.Source(req.Peer().Addr)
		ctx = withCaller(ctx, c)
		began := time.Now()
		resp, err := next(ctx, req)
		if action, ok := audited[req.Spec().Procedure]; ok {
			a.record(ctx, c, action, req, resp, err, time.Since(began))
		}
		return resp, toConnect(err)
	}
}

func (a *authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (a *authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if tok := bearer(conn.RequestHeader()); tok != "" {
			c, err := a.svc.Authenticate(ctx, tok)
			if err != nil {
				return toConnect(err)
			}
			ctx = withCaller(ctx, c)
		}
		return toConnect(next(ctx, conn))
	}
}

// toConnect is the one mapping of service errors (gRPC statuses with an
// ErrorInfo) to connect errors: same code, message and details.
func toConnect(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			st = status.Convert(apierr.FromContext(err))
		} else {
			st = status.New(codes.Internal, "internal error")
		}
	}
	out := connect.NewError(connect.Code(st.Code()), errors.New(st.Message()))
	for _, d := range st.Details() {
		if m, ok := d.(protoadapt.MessageV1); ok {
			if det, err := connect.NewErrorDetail(protoadapt.MessageV2Of(m)); err == nil {
				out.AddDetail(det)
			}
		} else if m, ok := d.(proto.Message); ok {
			if det, err := connect.NewErrorDetail(m); err == nil {
				out.AddDetail(det)
			}
		}
	}
	return out
}

// ---------------------------------------------------------------- unary procedures

// call runs an authenticated unary procedure.
func call[Req, Resp any](ctx context.Context, r *connect.Request[Req], fn func(context.Context, rooms.Caller, *Req) (*Resp, error)) (*connect.Response[Resp], error) {
	c, ok := callerFrom(ctx)
	if !ok {
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("this call needs a player access token"))
	}
	resp, err := fn(ctx, c, r.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// open runs a public unary procedure.
func open[Req, Resp any](ctx context.Context, r *connect.Request[Req], fn func(context.Context, *Req) (*Resp, error)) (*connect.Response[Resp], error) {
	resp, err := fn(ctx, r.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

func (h *handler) Login(ctx context.Context, r *connect.Request[clientv1.LoginRequest]) (*connect.Response[clientv1.LoginResponse], error) {
	resp, err := h.svc.Login(ctx, ratelimit.Source(r.Peer().Addr), r.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

func (h *handler) Register(ctx context.Context, r *connect.Request[clientv1.RegisterRequest]) (*connect.Response[clientv1.RegisterResponse], error) {
	resp, err := h.svc.Register(ctx, ratelimit.Source(r.Peer().Addr), r.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

func (h *handler) RefreshToken(ctx context.Context, r *connect.Request[clientv1.RefreshTokenRequest]) (*connect.Response[clientv1.RefreshTokenResponse], error) {
	return open(ctx, r, h.svc.RefreshToken)
}

func (h *handler) Logout(ctx context.Context, r *connect.Request[clientv1.LogoutRequest]) (*connect.Response[clientv1.LogoutResponse], error) {
	return open(ctx, r, h.svc.Logout)
}

func (h *handler) GuestJoin(ctx context.Context, r *connect.Request[clientv1.GuestJoinRequest]) (*connect.Response[clientv1.GuestJoinResponse], error) {
	resp, err := h.svc.GuestJoin(ctx, ratelimit.Source(r.Peer().Addr), r.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

func (h *handler) ListRooms(ctx context.Context, r *connect.Request[clientv1.ListRoomsRequest]) (*connect.Response[clientv1.ListRoomsResponse], error) {
	return open(ctx, r, h.svc.ListRooms)
}

func (h *handler) GetServerTime(_ context.Context, r *connect.Request[clientv1.GetServerTimeRequest]) (*connect.Response[clientv1.GetServerTimeResponse], error) {
	recv := h.svc.Now()
	return connect.NewResponse(h.svc.ServerTime(r.Msg.GetClientTime(), recv)), nil
}

func (h *handler) CreateStreamKey(ctx context.Context, r *connect.Request[clientv1.CreateStreamKeyRequest]) (*connect.Response[clientv1.CreateStreamKeyResponse], error) {
	return call(ctx, r, h.svc.CreateStreamKey)
}

func (h *handler) RotateStreamKey(ctx context.Context, r *connect.Request[clientv1.RotateStreamKeyRequest]) (*connect.Response[clientv1.RotateStreamKeyResponse], error) {
	return call(ctx, r, h.svc.RotateStreamKey)
}

func (h *handler) RevokeStreamKey(ctx context.Context, r *connect.Request[clientv1.RevokeStreamKeyRequest]) (*connect.Response[clientv1.RevokeStreamKeyResponse], error) {
	return call(ctx, r, h.svc.RevokeStreamKey)
}

func (h *handler) CreateRoom(ctx context.Context, r *connect.Request[clientv1.CreateRoomRequest]) (*connect.Response[clientv1.CreateRoomResponse], error) {
	return call(ctx, r, h.svc.CreateRoom)
}

func (h *handler) JoinRoom(ctx context.Context, r *connect.Request[clientv1.JoinRoomRequest]) (*connect.Response[clientv1.JoinRoomResponse], error) {
	return call(ctx, r, h.svc.JoinRoom)
}

func (h *handler) LeaveRoom(ctx context.Context, r *connect.Request[clientv1.LeaveRoomRequest]) (*connect.Response[clientv1.LeaveRoomResponse], error) {
	return call(ctx, r, h.svc.LeaveRoom)
}

func (h *handler) GetRoomInfo(ctx context.Context, r *connect.Request[clientv1.GetRoomInfoRequest]) (*connect.Response[clientv1.GetRoomInfoResponse], error) {
	return call(ctx, r, h.svc.GetRoomInfo)
}

func (h *handler) UpdateRoomSettings(ctx context.Context, r *connect.Request[clientv1.UpdateRoomSettingsRequest]) (*connect.Response[clientv1.UpdateRoomSettingsResponse], error) {
	return call(ctx, r, h.svc.UpdateRoomSettings)
}

func (h *handler) DeleteRoom(ctx context.Context, r *connect.Request[clientv1.DeleteRoomRequest]) (*connect.Response[clientv1.DeleteRoomResponse], error) {
	return call(ctx, r, h.svc.DeleteRoom)
}

func (h *handler) ListMembers(ctx context.Context, r *connect.Request[clientv1.ListMembersRequest]) (*connect.Response[clientv1.ListMembersResponse], error) {
	return call(ctx, r, h.svc.ListMembers)
}

func (h *handler) ApproveMember(ctx context.Context, r *connect.Request[clientv1.ApproveMemberRequest]) (*connect.Response[clientv1.ApproveMemberResponse], error) {
	return call(ctx, r, h.svc.ApproveMember)
}

func (h *handler) BanMember(ctx context.Context, r *connect.Request[clientv1.BanMemberRequest]) (*connect.Response[clientv1.BanMemberResponse], error) {
	return call(ctx, r, h.svc.BanMember)
}

func (h *handler) UnbanMember(ctx context.Context, r *connect.Request[clientv1.UnbanMemberRequest]) (*connect.Response[clientv1.UnbanMemberResponse], error) {
	return call(ctx, r, h.svc.UnbanMember)
}

func (h *handler) SetMemberPermissions(ctx context.Context, r *connect.Request[clientv1.SetMemberPermissionsRequest]) (*connect.Response[clientv1.SetMemberPermissionsResponse], error) {
	return call(ctx, r, h.svc.SetMemberPermissions)
}

func (h *handler) AddMovie(ctx context.Context, r *connect.Request[clientv1.AddMovieRequest]) (*connect.Response[clientv1.AddMovieResponse], error) {
	return call(ctx, r, h.svc.AddMovie)
}

func (h *handler) RemoveMovie(ctx context.Context, r *connect.Request[clientv1.RemoveMovieRequest]) (*connect.Response[clientv1.RemoveMovieResponse], error) {
	return call(ctx, r, h.svc.RemoveMovie)
}

func (h *handler) GetMovieList(ctx context.Context, r *connect.Request[clientv1.GetMovieListRequest]) (*connect.Response[clientv1.GetMovieListResponse], error) {
	return call(ctx, r, h.svc.GetMovieList)
}

func (h *handler) SetCurrentMovie(ctx context.Context, r *connect.Request[clientv1.SetCurrentMovieRequest]) (*connect.Response[clientv1.SetCurrentMovieResponse], error) {
	return call(ctx, r, h.svc.SetCurrentMovie)
}

func (h *handler) ReorderMovies(ctx context.Context, r *connect.Request[clientv1.ReorderMoviesRequest]) (*connect.Response[clientv1.ReorderMoviesResponse], error) {
	return call(ctx, r, h.svc.ReorderMovies)
}

func (h *handler) Play(ctx context.Context, r *connect.Request[clientv1.PlayRequest]) (*connect.Response[clientv1.PlayResponse], error) {
	return call(ctx, r, h.svc.Play)
}

func (h *handler) Pause(ctx context.Context, r *connect.Request[clientv1.PauseRequest]) (*connect.Response[clientv1.PauseResponse], error) {
	return call(ctx, r, h.svc.Pause)
}

func (h *handler) Seek(ctx context.Context, r *connect.Request[clientv1.SeekRequest]) (*connect.Response[clientv1.SeekResponse], error) {
	return call(ctx, r, h.svc.Seek)
}

func (h *handler) SetPlaybackRate(ctx context.Context, r *connect.Request[clientv1.SetPlaybackRateRequest]) (*connect.Response[clientv1.SetPlaybackRateResponse], error) {
	return call(ctx, r, h.svc.SetPlaybackRate)
}

func (h *handler) GetChatHistory(ctx context.Context, r *connect.Request[clientv1.GetChatHistoryRequest]) (*connect.Response[clientv1.GetChatHistoryResponse], error) {
	return call(ctx, r, h.svc.GetChatHistory)
}

// ---------------------------------------------------------------- MessageStream

// MessageStream serves the bidi stream (gRPC, or Connect over HTTP/2).
func (h *handler) MessageStream(ctx context.Context, bs *connect.BidiStream[clientv1.ClientMessage, clientv1.ServerMessage]) error {
	first, err := bs.Receive()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	c, ok := callerFrom(ctx)
	if !ok {
		if c, err = h.svc.Authenticate(ctx, first.GetHello().GetAccessToken()); err != nil {
			return err
		}
	}
	st, err := h.svc.OpenStream(ctx, c, first.GetHello())
	if err != nil {
		return err
	}
	defer st.Close()
	w := writer{send: func(o *rooms.Outgoing) error { return bs.Send(o.Msg) }}
	if !strings.HasSuffix(bs.RequestHeader().Get("Content-Type"), "json") {
		// Binary protobuf: wireCodec sends the event's shared bytes.
		conn := bs.Conn()
		w.send = func(o *rooms.Outgoing) error { return conn.Send(o) }
	}
	if bw, ok := ctx.Value(batchKey{}).(*batchWriter); ok {
		w.hold = func(on bool) {
			bw.holding = on
			if !on {
				bw.Flush()
			}
		}
		// A client that stops reading blocks the sends (HTTP/2 flow
		// control, a full socket): cut it off rather than wait, so that
		// its stream ends and leaves the room.
		rc := http.NewResponseController(bw.ResponseWriter)
		w.deadline = func(on bool) error {
			if !on {
				return rc.SetWriteDeadline(time.Time{}) // idle between batches
			}
			return rc.SetWriteDeadline(time.Now().Add(h.opts.WriteTimeout))
		}
		// The end of the stream, which connect writes once this returns,
		// is bounded too.
		defer func() { _ = w.deadline(true) }()
	}
	return pump(ctx, st, bs.Receive, w)
}

// writer sends a stream's messages over one transport. hold(true) lets
// sends buffer, hold(false) flushes what they buffered; nil: every send
// goes out at once.
type writer struct {
	send func(*rooms.Outgoing) error
	hold func(on bool)
	// deadline, if set, bounds the sends that follow deadline(true) until
	// deadline(false).
	deadline func(on bool) error
}

// sendOne sends m alone (a stream's final message), bounded as a batch.
func (w writer) sendOne(m *rooms.Outgoing) error {
	if w.deadline != nil {
		if err := w.deadline(true); err != nil {
			return err
		}
		defer w.deadline(false)
	}
	return w.send(m)
}

// maxBatch bounds the messages sent with one flush.
const maxBatch = 128

// batch sends first and whatever else is already queued, up to maxBatch,
// with one flush.
func (w writer) batch(first *rooms.Outgoing, out <-chan *rooms.Outgoing) error {
	if w.deadline != nil {
		if err := w.deadline(true); err != nil {
			return err
		}
		defer w.deadline(false)
	}
	if w.hold != nil {
		w.hold(true)
		defer w.hold(false)
	}
	if err := w.send(first); err != nil {
		return err
	}
	for range maxBatch - 1 {
		select {
		case m := <-out:
			if err := w.send(m); err != nil {
				return err
			}
		default:
			return nil
		}
	}
	return nil
}

// pump runs a stream over a transport: this goroutine is the only writer;
// the reader goroutine it starts hands messages to the stream and ends when
// recv fails, which the transport guarantees once pump's caller returns
// (the request body or the WebSocket is closed then).
func pump(ctx context.Context, st *rooms.Stream, recv func() (*clientv1.ClientMessage, error), w writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	readErr := make(chan error, 1)
	go func() {
		for {
			m, err := recv()
			if err != nil {
				readErr <- err
				return
			}
			st.Handle(ctx, m)
		}
	}()
	for {
		select {
		case m := <-st.Out():
			if err := w.batch(m, st.Out()); err != nil {
				return err
			}
		case <-st.Done():
			final, flush := st.Final()
			for flush && len(st.Out()) > 0 {
				if err := w.batch(<-st.Out(), st.Out()); err != nil {
					return err
				}
			}
			if final != nil {
				_ = w.sendOne(final)
			}
			return nil
		case err := <-readErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
