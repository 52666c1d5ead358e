package server

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/fieldlimit"
	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/telemetry"
	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/emptypb"
)

// openAPI is generated from the protos' google.api.http annotations
// (buf.gen.yaml) and served at /api/v1/openapi.json.
//
//go:embed openapi/croupier.swagger.json
var openAPI []byte

// restJSON is how REST answers and event streams write messages: proto
// field names, every field (zero values too).
var restJSON = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// gateway returns a grpc-gateway mux whose routes call the services over
// the in-process connection, so REST passes the same edge as gRPC. Errors
// are the gRPC status as JSON ({code, message, details}) with the HTTP
// status of the seed's table; every one carries an ErrorInfo.
func (s *Server) gateway() *gwruntime.ServeMux {
	marshal := &gwruntime.JSONPb{
		MarshalOptions:   restJSON,
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}
	return gwruntime.NewServeMux(gwruntime.WithMarshalerOption(gwruntime.MIMEWildcard, restMarshaler{marshal}),
		gwruntime.WithIncomingHeaderMatcher(restHeaders),
		gwruntime.WithMetadata(forwardPeer),
		gwruntime.WithMiddlewares(telemetry.GatewayMiddleware),
		gwruntime.WithErrorHandler(func(ctx context.Context, mux *gwruntime.ServeMux, m gwruntime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
			if v, ok := ratelimit.RetryAfterHeader(err); ok {
				w.Header().Set("Retry-After", v)
			}
			gwruntime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, s.gatewayError(ctx, err))
		}))
}

// gatewayError gives an error the gateway raised itself (malformed JSON,
// unknown field, bad path parameter, unknown route) the ErrorInfo every
// API error carries: a request the gateway cannot read is
// MALFORMED_REQUEST, anything else as withErrorInfo has it.
func (s *Server) gatewayError(ctx context.Context, err error) error {
	if apierr.Info(err) == nil && status.Code(err) == codes.InvalidArgument {
		return apierr.New(codes.InvalidArgument, apierr.CodeMalformedRequest, fieldlimit.Truncate(status.Convert(err).Message(), maxErrorMessage))
	}
	return withErrorInfo(ctx, s.log, err)
}

// restHandler serves the REST API under /api/v1: the unary methods of the
// list of services through grpc-gateway, the two streams as Server-Sent
// Events, and the OpenAPI document.
func (s *Server) restHandler(ctx context.Context, svcs []service) (http.Handler, error) {
	gw := s.gateway()
	for _, sv := range svcs {
		if sv.rest == nil {
			continue
		}
		if err := sv.rest(ctx, gw, s.inproc.cc); err != nil {
			return nil, err
		}
	}
	fc := croupierv1.NewFunctionServiceClient(s.inproc.conn)
	rc := croupierv1.NewRegistryServiceClient(s.inproc.conn)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPI)
	})
	mux.HandleFunc("GET /api/v1/jobs/{job_id}/events", func(w http.ResponseWriter, r *http.Request) {
		s.sseJobEvents(w, r, fc)
	})
	mux.HandleFunc("GET /api/v1/registrations:watch", func(w http.ResponseWriter, r *http.Request) {
		s.sseRegistrations(w, r, rc)
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
				writeStatus(w, status.Convert(apierr.New(codes.InvalidArgument, apierr.CodeMalformedRequest, "reading the request body: "+err.Error())))
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
	st, _ := status.FromError(apierr.New(codes.InvalidArgument, apierr.CodeRequestTooLarge,
		fmt.Sprintf("request body exceeds %d bytes", max), "max_bytes", strconv.Itoa(max)))
	return st
}

// writeStatus writes a status as the REST error body; REQUEST_TOO_LARGE is
// 413, everything else follows the gRPC→HTTP table.
func writeStatus(w http.ResponseWriter, st *status.Status) {
	code := gwruntime.HTTPStatusFromCode(st.Code())
	for _, d := range st.Details() {
		if info, ok := d.(*croupierv1.ErrorInfo); ok && info.GetCode() == apierr.CodeRequestTooLarge {
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
	// As REST answers: every field, so an event's zero values (type START,
	// progress 0) are there for the reader too.
	b, err := restJSON.Marshal(m)
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

// sseStream opens a server stream over the in-process connection, as the
// REST caller, and waits until the edge admitted it; a refusal is written
// as the REST error and ok is false.
func (s *Server) sseStream(w http.ResponseWriter, r *http.Request, open func(ctx context.Context) (grpc.ClientStream, error)) (context.Context, context.CancelFunc, grpc.ClientStream, bool) {
	md := forwardIdentity(r.Context(), r)
	if id := r.Header.Get("X-Request-Id"); id != "" {
		md.Set("x-request-id", id)
	}
	ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(r.Context(), md))
	stop := context.AfterFunc(s.ctx, cancel)
	cancelAll := func() { stop(); cancel() }
	st, err := open(ctx)
	if err == nil {
		var h metadata.MD
		if h, err = st.Header(); err == nil && len(h.Get(mdAdmitted)) == 0 {
			err = st.RecvMsg(new(emptypb.Empty)) // the refusal
		}
	}
	if err != nil {
		cancelAll()
		if v, ok := ratelimit.RetryAfterHeader(err); ok {
			w.Header().Set("Retry-After", v)
		}
		writeStatus(w, status.Convert(withErrorInfo(ctx, s.log, err)))
		return nil, nil, nil, false
	}
	return ctx, cancelAll, st, true
}

// sseJobEvents streams GET /api/v1/jobs/{job_id}/events[?from_seq=N]. Each
// event's SSE id is its seq, so EventSource resumes where it stopped.
func (s *Server) sseJobEvents(w http.ResponseWriter, r *http.Request, fc croupierv1.FunctionServiceClient) {
	from := int64(0)
	if v := r.URL.Query().Get("from_seq"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeStatus(w, status.Convert(apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "from_seq must be a non-negative integer")))
			return
		}
		from = n
	}
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			from = n + 1
		}
	}
	var stream grpc.ServerStreamingClient[croupierv1.JobEvent]
	_, cancel, _, ok := s.sseStream(w, r, func(ctx context.Context) (grpc.ClientStream, error) {
		var err error
		stream, err = fc.StreamJobEvents(ctx, &croupierv1.StreamJobEventsRequest{JobId: r.PathValue("job_id"), FromSeq: from})
		return stream, err
	})
	if !ok {
		return
	}
	defer cancel()
	out, ok := newSSE(w)
	if !ok {
		return
	}
	for {
		ev, err := stream.Recv()
		if err != nil {
			if err != io.EOF && r.Context().Err() == nil {
				out.sendError(withErrorInfo(r.Context(), s.log, err))
			}
			return
		}
		if err := out.send(strconv.FormatInt(ev.GetSeq(), 10), ev.GetType().String(), ev); err != nil {
			return
		}
	}
}

// sseRegistrations streams GET /api/v1/registrations:watch.
func (s *Server) sseRegistrations(w http.ResponseWriter, r *http.Request, rc croupierv1.RegistryServiceClient) {
	q := r.URL.Query()
	var stream grpc.ServerStreamingClient[croupierv1.RegistrationEvent]
	_, cancel, _, ok := s.sseStream(w, r, func(ctx context.Context) (grpc.ClientStream, error) {
		var err error
		stream, err = rc.WatchRegistrations(ctx, &croupierv1.WatchRegistrationsRequest{GameId: q.Get("game_id"), Env: q.Get("env"), FunctionId: q.Get("function_id")})
		return stream, err
	})
	if !ok {
		return
	}
	defer cancel()
	out, ok := newSSE(w)
	if !ok {
		return
	}
	for {
		ev, err := stream.Recv()
		if err != nil {
			if r.Context().Err() == nil {
				if err == io.EOF {
					err = apierr.New(codes.Unavailable, apierr.CodeUnavailable, "watch ended; watch again for a fresh snapshot")
				}
				out.sendError(withErrorInfo(r.Context(), s.log, err))
			}
			return
		}
		if err := out.send("", ev.GetType().String(), ev); err != nil {
			return
		}
	}
}

// publicRoutes returns the REST routes of the table's public methods — how
// a caller obtains or drops a credential — read from their google.api.http
// annotations, so that the table stays the one list of what needs no
// credential. The HTTP middleware lets a request on one of them through
// without a credential; the edge then applies the method's rule as for any
// call. A public method's route must be a literal path: matching a template
// here would be a second router beside grpc-gateway's.
func publicRoutes(table map[string]rule) (func(*http.Request) bool, error) {
	routes := map[[2]string]bool{} // verb, path
	for method, r := range table {
		if r.access != accessPublic {
			continue
		}
		name := protoreflect.FullName(strings.ReplaceAll(strings.TrimPrefix(method, "/"), "/", "."))
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
		if err != nil {
			return nil, fmt.Errorf("public method %s: %w", method, err)
		}
		md, ok := d.(protoreflect.MethodDescriptor)
		if !ok {
			return nil, fmt.Errorf("public method %s: %s is not a method", method, name)
		}
		h, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
		for _, b := range append([]*annotations.HttpRule{h}, h.GetAdditionalBindings()...) {
			verb, path := httpRoute(b)
			if verb == "" {
				continue // no REST route
			}
			if strings.ContainsAny(path, "{}*") {
				return nil, fmt.Errorf("public method %s: REST route %s %s is a template; public routes must be literal paths", method, verb, path)
			}
			routes[[2]string{verb, path}] = true
		}
	}
	return func(r *http.Request) bool { return routes[[2]string{r.Method, r.URL.Path}] }, nil
}

// httpRoute is the verb and path of a google.api.http rule ("" if none).
func httpRoute(h *annotations.HttpRule) (verb, path string) {
	switch p := h.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return http.MethodGet, p.Get
	case *annotations.HttpRule_Post:
		return http.MethodPost, p.Post
	case *annotations.HttpRule_Put:
		return http.MethodPut, p.Put
	case *annotations.HttpRule_Delete:
		return http.MethodDelete, p.Delete
	case *annotations.HttpRule_Patch:
		return http.MethodPatch, p.Patch
	case *annotations.HttpRule_Custom:
		return p.Custom.GetKind(), p.Custom.GetPath()
	}
	return "", ""
}
