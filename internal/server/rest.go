package server

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"net/http"
	"strconv"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/rbac"
	"github.com/croupier/croupier/internal/registry"
	"github.com/croupier/croupier/internal/telemetry"
	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// openAPI is generated from the protos' google.api.http annotations
// (buf.gen.yaml) and served at /api/v1/openapi.json.
//
//go:embed openapi/croupier.swagger.json
var openAPI []byte

// restHandler serves the REST API under /api/v1: the unary methods through
// grpc-gateway bound in-process to the same handlers gRPC uses (no loopback
// call to our own port), the two streams as Server-Sent Events, and the
// OpenAPI document. Errors are the gRPC status as JSON ({code, message,
// details}) with the HTTP status of the seed's table.
func (s *Server) restHandler(ctx context.Context, fh functionHandler, ch controlHandler, rh registryHandler) (http.Handler, error) {
	marshal := &gwruntime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}
	gw := gwruntime.NewServeMux(gwruntime.WithMarshalerOption(gwruntime.MIMEWildcard, marshal),
		gwruntime.WithMiddlewares(telemetry.GatewayMiddleware),
		gwruntime.WithErrorHandler(func(ctx context.Context, mux *gwruntime.ServeMux, m gwruntime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
			if v, ok := ratelimit.RetryAfterHeader(err); ok {
				w.Header().Set("Retry-After", v)
			}
			gwruntime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
		}))
	if err := s.registerAccessREST(ctx, gw); err != nil {
		return nil, err
	}
	for _, reg := range []func() error{
		func() error { return croupierv1.RegisterFunctionServiceHandlerServer(ctx, gw, fh) },
		func() error { return croupierv1.RegisterControlServiceHandlerServer(ctx, gw, ch) },
		func() error { return croupierv1.RegisterRegistryServiceHandlerServer(ctx, gw, rh) },
	} {
		if err := reg(); err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPI)
	})
	mux.HandleFunc("GET /api/v1/jobs/{job_id}/events", func(w http.ResponseWriter, r *http.Request) {
		s.sseJobEvents(w, r, fh)
	})
	mux.HandleFunc("GET /api/v1/registrations:watch", func(w http.ResponseWriter, r *http.Request) {
		s.sseRegistrations(w, r, rh)
	})
	mux.Handle("/api/v1/", gw)
	return limitBody(s.cfg.MaxRequestBytes, mux), nil
}

// limitBody answers 413 for a request body over max bytes (declared or
// actual) before any handler sees it.
func limitBody(max int, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			if r.ContentLength > int64(max) {
				writeStatus(w, tooLarge(max))
				return
			}
			b, err := io.ReadAll(io.LimitReader(r.Body, int64(max)+1))
			if err != nil {
				writeStatus(w, status.New(codes.InvalidArgument, "reading the request body: "+err.Error()))
				return
			}
			if len(b) > max {
				writeStatus(w, tooLarge(max))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		next.ServeHTTP(w, r)
	})
}

func tooLarge(max int) *status.Status {
	st, _ := status.FromError(apierr.New(codes.InvalidArgument, "REQUEST_TOO_LARGE",
		fmt.Sprintf("request body exceeds %d bytes", max), "max_bytes", strconv.Itoa(max)))
	return st
}

// writeStatus writes a status as the REST error body; REQUEST_TOO_LARGE is
// 413, everything else follows the gRPC→HTTP table.
func writeStatus(w http.ResponseWriter, st *status.Status) {
	code := gwruntime.HTTPStatusFromCode(st.Code())
	for _, d := range st.Details() {
		if info, ok := d.(*croupierv1.ErrorInfo); ok && info.GetCode() == "REQUEST_TOO_LARGE" {
			code = http.StatusRequestEntityTooLarge
		}
	}
	b, _ := protojson.MarshalOptions{UseProtoNames: true}.Marshal(st.Proto())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// sse writes Server-Sent Events; a browser's EventSource reads them and
// resumes with Last-Event-ID.
type sse struct {
	w http.ResponseWriter
	f http.Flusher
}

func newSSE(w http.ResponseWriter) (*sse, bool) {
	f, ok := w.(http.Flusher)
	if !ok {
		return nil, false
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	f.Flush()
	return &sse{w: w, f: f}, true
}

func (e *sse) send(id, event string, m proto.Message) error {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return err
	}
	if id != "" {
		if _, err := fmt.Fprintf(e.w, "id: %s\n", id); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintf(e.w, "event: %s\ndata: %s\n\n", event, b); err != nil {
		return err
	}
	e.f.Flush()
	return nil
}

// sendError ends a stream with an "error" event carrying the status.
func (e *sse) sendError(err error) {
	_ = e.send("", "error", status.Convert(err).Proto())
}

// sseJobEvents streams GET /api/v1/jobs/{job_id}/events[?from_seq=N]. Each
// event's SSE id is its seq, so EventSource resumes where it stopped.
func (s *Server) sseJobEvents(w http.ResponseWriter, r *http.Request, fh functionHandler) {
	from := int64(0)
	if v := r.URL.Query().Get("from_seq"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeStatus(w, status.New(codes.InvalidArgument, "from_seq must be a non-negative integer"))
			return
		}
		from = n
	}
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			from = n + 1
		}
	}
	id := r.PathValue("job_id")
	if _, err := fh.jobScope(r.Context(), rbac.JobRead, id); err != nil {
		writeStatus(w, status.Convert(err))
		return
	}
	out, ok := newSSE(w)
	if !ok {
		writeStatus(w, status.New(codes.Internal, "streaming unsupported"))
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	err := fh.jobs.Stream(ctx, id, from, func(ev *croupierv1.JobEvent) error {
		return out.send(strconv.FormatInt(ev.GetSeq(), 10), ev.GetType().String(), ev)
	})
	if err != nil && r.Context().Err() == nil {
		out.sendError(err)
	}
}

// sseRegistrations streams GET /api/v1/registrations:watch.
func (s *Server) sseRegistrations(w http.ResponseWriter, r *http.Request, rh registryHandler) {
	q := r.URL.Query()
	if err := allow(r.Context(), rbac.RegistryRead, q.Get("game_id"), q.Get("env"), q.Get("function_id")); err != nil {
		writeStatus(w, status.Convert(err))
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	events, err := rh.reg.Watch(ctx, registry.Filter{Game: q.Get("game_id"), Env: q.Get("env"), Function: q.Get("function_id")})
	if err != nil {
		writeStatus(w, status.Convert(apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, err.Error())))
		return
	}
	out, ok := newSSE(w)
	if !ok {
		return
	}
	for ev := range events {
		if err := out.send("", ev.GetType().String(), ev); err != nil {
			return
		}
	}
	if r.Context().Err() == nil {
		out.sendError(apierr.New(codes.Unavailable, apierr.CodeUnavailable, "watch ended; watch again for a fresh snapshot"))
	}
}
