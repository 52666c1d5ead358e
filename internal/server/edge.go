package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/fieldlimit"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/rbac"
	"github.com/croupier/croupier/internal/revocation"
	"github.com/croupier/croupier/internal/streamcut"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// The edge applies the method table (methods.go) to every call, whatever
// its protocol: gRPC from the network, REST (grpc-gateway, forwarded over an
// in-process connection, see inproc.go) and the long-poll tunnel listener's
// REST. In order, for each call:
//
//  1. identity: who calls (token, certificate, or the identity the REST
//     edge forwarded);
//  2. limits: every id, name, key and label of the request within its
//     documented length and charset (internal/fieldlimit), before any other work;
//  3. access: public, any authenticated caller, agents only, or an
//     operator holding the rule's permission on the scope its resolver
//     finds in the request;
//  4. rate limits: an invoke or job start takes a token from the caller's
//     and the function's buckets; any refusal in 2–3 takes one from the
//     caller's bucket, so a flood of refused calls is throttled too;
//  5. the handler;
//  6. audit: a write writes one row (refusals included), here or, for the
//     rules marked so, inside its service.
type edge struct {
	identify identifyFunc
	limiter  *ratelimit.Limiter
	audit    audit.Recorder
	log      *slog.Logger
	methods  map[string]rule
	insecure bool
	// revocations and sessions cut a stream whose caller's certificate is
	// revoked, whose login session is revoked or user disabled, or whose
	// caller lost the permission it was admitted with, while it is open
	// (an agent's tunnel is cut by the revocation service).
	revocations *revocation.List
	sessions    streamHolder
}

// streamHolder ends the streams it holds when their login session is no
// longer valid or their caller no longer holds the permission they were
// admitted with (auth.Service).
type streamHolder interface {
	HoldStream(ctx context.Context, p principal.Principal, need rbac.Need) (context.Context, func())
}

// identifyFunc returns the caller of a call to method; public methods get
// the anonymous principal when the caller presents no valid credential.
type identifyFunc func(ctx context.Context, method string, public bool) (principal.Principal, context.Context, error)

func (e *edge) unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		ctx, done, _, err := e.admit(ctx, info.FullMethod, req)
		if err != nil {
			return nil, withErrorInfo(ctx, e.log, err)
		}
		resp, err := h(ctx, req)
		err = withErrorInfo(ctx, e.log, err)
		done(err)
		return resp, err
	}
}

// maxErrorMessage bounds the message withErrorInfo keeps: an error raised
// below the services may quote its input.
const maxErrorMessage = 256

// withErrorInfo gives err the ErrorInfo every API error carries when it
// has none — an error raised below the services: a tunnel, an agent, the
// transport, a decoder, the gateway. A context error is why the server
// ended the call (ctx's cause, if it carries an ErrorInfo: a shutdown),
// else TIMEOUT or CANCELED; otherwise the code is apierr.CodeOf the status
// code and the message is kept, cut to maxErrorMessage bytes, except for
// INTERNAL, UNKNOWN and DATA_LOSS: bugs, which apierr.Internal logs and
// answers with an error_id only. nil and errors with an ErrorInfo pass
// unchanged.
func withErrorInfo(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil || apierr.Info(err) != nil {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		if cause := context.Cause(ctx); cause != nil && apierr.Info(cause) != nil {
			return cause
		}
		return apierr.FromContext(err)
	}
	st := status.Convert(err)
	switch st.Code() {
	case codes.OK:
		return err
	case codes.Internal, codes.Unknown, codes.DataLoss:
		return apierr.Internal(log, err)
	}
	return apierr.New(st.Code(), apierr.CodeOf(st.Code()), fieldlimit.Truncate(st.Message(), maxErrorMessage))
}

func (e *edge) stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		var req any
		rule, known := e.methods[info.FullMethod]
		if known && info.IsServerStream && !info.IsClientStream && rule.access != accessAgent {
			// A server stream's one request decides its scope: read it here
			// so limits and permissions apply before the handler runs.
			if rule.request == nil {
				return apierr.Newf(codes.Internal, apierr.CodeInternal, "method %s has no request type in the method table", info.FullMethod)
			}
			msg := rule.request()
			if err := ss.RecvMsg(msg); err != nil {
				if errors.Is(err, io.EOF) {
					err = apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "the stream ended before its request message")
				}
				return withErrorInfo(ss.Context(), e.log, err)
			}
			req = msg
		}
		ctx, done, need, err := e.admit(ss.Context(), info.FullMethod, req)
		if err != nil {
			return withErrorInfo(ctx, e.log, err)
		}
		if rule.access != accessAgent {
			p := principal.FromContext(ctx)
			var release, releaseSession func()
			ctx, release = e.revocations.Hold(ctx, p.CertSerial)
			defer release()
			if e.sessions != nil {
				ctx, releaseSession = e.sessions.HoldStream(ctx, p, need)
				defer releaseSession()
			}
		}
		if admittedHeader(ctx) {
			// The REST edge waits for this before it answers 200 and starts
			// an event stream (see sseStream).
			if err := ss.SendHeader(admittedMD()); err != nil {
				return withErrorInfo(ctx, e.log, err)
			}
		}
		wrapped := &ctxStream{ServerStream: ss, ctx: ctx}
		var herr error
		if req != nil {
			herr = h(srv, &replayStream{ctxStream: wrapped, first: req})
		} else {
			herr = h(srv, wrapped)
		}
		if cut := streamcut.Cause(ctx); cut != nil {
			// Cut (a revocation, a revoked login or role): say why,
			// whatever the handler made of its cancelled context — also a
			// nil, which would tell the caller the stream ended of itself.
			// The caller made no refused call: nothing counts against
			// their rate limit.
			done(streamCut{cut})
			return cut
		}
		herr = withErrorInfo(ctx, e.log, herr)
		done(herr)
		return herr
	}
}

// streamCut is how the stream interceptor tells done that the stream was
// cut (streamcut) rather than refused or ended by its handler.
type streamCut struct{ error }

// admit runs steps 1–4 for one call and returns the context the handler
// runs in, the function that finishes the call (step 6) and the
// permission the call was admitted with (a stream is held to it).
func (e *edge) admit(ctx context.Context, method string, req any) (_ context.Context, _ func(error), need rbac.Need, _ error) {
	start := time.Now()
	rule, ok := e.methods[method]
	if !ok {
		// A method with no rule is refused: serving it would skip every check.
		return ctx, nil, need, apierr.Newf(codes.Unimplemented, apierr.CodeUnimplemented, "method %s is not in the method table", method)
	}
	p, ctx, err := e.identify(ctx, method, rule.access == accessPublic)
	if err != nil {
		return ctx, nil, need, err
	}
	ctx = principal.NewContext(ctx, p)
	var note *auditNote
	if rule.audit != "" {
		note = &auditNote{action: rule.audit, inService: rule.auditInService}
		note.req, _ = req.(proto.Message)
		ctx = withAuditNote(ctx, note)
	}
	audited := func(err error) {
		if note != nil && !note.skip && (!note.inService || err != nil && !note.reached) {
			e.record(ctx, p, note, err, start)
		}
	}
	done := func(err error) {
		if c, ok := err.(streamCut); ok {
			audited(c.error)
			return
		}
		if (rule.access == accessAuthenticated || rule.access == accessOperator) && status.Code(err) == codes.PermissionDenied {
			// A refusal by the service (user admin, approvals, the
			// descriptor's roles) counts like one by the edge.
			_ = e.limiter.Allow(p.String(), "", "", "")
		}
		audited(err)
	}
	refuse := func(err error) (context.Context, func(error), rbac.Need, error) {
		if rule.access != accessPublic && rule.access != accessAgent {
			if rerr := e.limiter.Allow(p.String(), "", "", ""); rerr != nil {
				err = rerr // refused calls count against the caller's limit
			}
		}
		audited(err)
		return ctx, nil, need, err
	}
	if m, ok := req.(proto.Message); ok {
		if err := fieldlimit.Check(m, rule.limits); err != nil {
			return refuse(err)
		}
	}
	if rule.access == accessOperator {
		// Before the scope resolver, which may read the store.
		if err := requireOperator(ctx); err != nil {
			return refuse(err)
		}
	}
	var sc scope
	if rule.scope != nil && req != nil {
		if sc, err = rule.scope(ctx, req); err != nil {
			return refuse(err)
		}
		if note != nil {
			note.game, note.env, note.fn = sc.game, sc.env, sc.fn
		}
	}
	switch rule.access {
	case accessPublic:
	case accessAuthenticated:
		if p.Kind == principal.Anonymous && !e.insecure {
			return refuse(apierr.New(codes.Unauthenticated, apierr.CodeUnauthenticated, "authentication required: send authorization: Bearer <access token> (croupier login)"))
		}
	case accessAgent:
		if err := requireAgent(p, rule, req); err != nil {
			return refuse(err)
		}
	case accessOperator:
		need = rbac.Need{Perm: rule.perm, Named: sc.named, Game: sc.game, Env: sc.env, Fn: sc.fn}
		if err := need.Check(p); err != nil {
			return refuse(err)
		}
	default:
		return refuse(apierr.Newf(codes.Internal, apierr.CodeInternal, "method %s has no access rule", method))
	}
	switch rule.rate {
	case rateCall:
		if err := e.limiter.Allow(p.String(), sc.game, sc.env, sc.fn); err != nil {
			audited(err)
			return ctx, nil, need, err
		}
	case rateRefusals: // refuse took a token if the call was refused
	}
	if note != nil {
		note.reached = true
	}
	return ctx, done, need, nil
}

// requireAgent admits agents (and the anonymous developer of an insecure
// loopback server) only; rule.agentSelf, when set, names the agent the
// request acts as, which must be the caller.
func requireAgent(p principal.Principal, r rule, req any) error {
	switch {
	case p.Kind == principal.Anonymous:
		return nil
	case p.Kind != principal.Agent:
		return apierr.Newf(codes.PermissionDenied, apierr.CodeScopeMismatch, "%s is not an agent; this API serves agents only", p)
	case r.agentSelf != nil && req != nil && r.agentSelf(req) != p.Name:
		return apierr.Newf(codes.PermissionDenied, apierr.CodeScopeMismatch, "%s cannot act as agent %q", p, fieldlimit.Truncate(r.agentSelf(req), fieldlimit.QuoteMax))
	}
	return nil
}

// requireOperator refuses agent credentials on operator APIs: an agent
// certificate must not be usable to invoke functions.
func requireOperator(ctx context.Context) error {
	if p := principal.FromContext(ctx); p.Kind == principal.Agent {
		return apierr.New(codes.PermissionDenied, apierr.CodeScopeMismatch,
			fmt.Sprintf("%s holds an agent credential; operator APIs need an operator credential", p))
	}
	return nil
}

func (e *edge) record(ctx context.Context, p principal.Principal, n *auditNote, err error, start time.Time) {
	if n.payload == nil && n.req != nil {
		n.payload = fieldlimit.IDFields(n.req)
	}
	if rerr := e.audit.Record(ctx, audit.Entry{
		Actor: p.String(), Action: n.action,
		Game: fieldlimit.Truncate(n.game, fieldlimit.MaxIDBytes), Env: fieldlimit.Truncate(n.env, fieldlimit.MaxIDBytes), Function: fieldlimit.Truncate(n.fn, fieldlimit.MaxIDBytes),
		Payload: n.payload, SensitiveFields: n.sensitive, Err: err, Duration: time.Since(start), RequestID: requestID(ctx),
	}); rerr != nil {
		e.log.Error("audit record failed", "action", n.action, "err", rerr)
	}
}

// auditNote is the audit row the edge writes for a write call; the handler
// may refine it (the invoke path sets the payload and its sensitive fields,
// or skips the row when the call only created an approval, which the
// approval service records).
type auditNote struct {
	action        string
	game, env, fn string
	payload       any           // nil: the request's identifiers (fieldlimit.IDFields)
	req           proto.Message // the request
	sensitive     []string
	skip          bool
	inService     bool // the service writes the row once the call reaches it
	reached       bool // the call passed the edge
}

type auditNoteKey struct{}

func withAuditNote(ctx context.Context, n *auditNote) context.Context {
	return context.WithValue(ctx, auditNoteKey{}, n)
}

// noteOf returns the call's audit note; a write method always has one, a
// read gets a throwaway.
func noteOf(ctx context.Context) *auditNote {
	if n, ok := ctx.Value(auditNoteKey{}).(*auditNote); ok {
		return n
	}
	return &auditNote{}
}

// replayStream hands the handler the request the edge already read.
type replayStream struct {
	*ctxStream
	first any
}

func (s *replayStream) RecvMsg(m any) error {
	if s.first == nil {
		return s.ctxStream.RecvMsg(m)
	}
	src, dst := s.first.(proto.Message), m.(proto.Message)
	s.first = nil
	proto.Reset(dst)
	proto.Merge(dst, src)
	return nil
}

// scope is what a request is about, for RBAC and the audit row.
type scope struct {
	game, env, fn string
	// named is the resource a request names by id ("job j-1"), set when
	// the scope was looked up from it (empty when it does not exist): a
	// refusal then names it, not the scope (rbac.CheckNamed).
	named string
}
