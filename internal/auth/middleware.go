package auth

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/croupier/croupier/internal/apierr/storeerr"
	"github.com/croupier/croupier/internal/principal"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// Fallback authenticates a gRPC call by other means than a bearer token —
// in Croupier, the verified mTLS client certificate.
type Fallback func(ctx context.Context) (principal.Principal, error)

// HTTPFallback is Fallback for an HTTP request.
type HTTPFallback func(r *http.Request) (principal.Principal, error)

// bearerFromHeader extracts the token of an "authorization: Bearer <token>"
// value; ok is false when there is no authorization value at all.
func bearerFromHeader(values []string) (token string, ok bool, err error) {
	switch len(values) {
	case 0:
		return "", false, nil
	case 1:
	default:
		return "", true, unauthenticated(CodeTokenInvalid, "more than one authorization header; send exactly one: Bearer <access token>")
	}
	scheme, tok, found := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", true, unauthenticated(CodeTokenInvalid, "unsupported authorization scheme; send: authorization: Bearer <access token>")
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", true, unauthenticated(CodeTokenInvalid, "empty bearer token")
	}
	return tok, true, nil
}

// Resolve decides who is calling from the bearer header values and the
// fallback (certificate) authenticator:
//   - an agent certificate stays an agent, whatever token comes with it;
//   - otherwise a bearer token, if sent, decides: valid → that operator,
//     invalid → UNAUTHENTICATED (never a silent fallback to the certificate);
//   - without a token the fallback decides; an operator certificate named N
//     acts with the role bindings of user N (none if there is no such user,
//     refused if that user is disabled).
//
// For public methods failures are not errors: the caller proceeds as the
// anonymous principal.
func (s *Service) Resolve(ctx context.Context, authz []string, fallback func() (principal.Principal, error), public bool) (principal.Principal, error) {
	p, err := s.resolve(ctx, authz, fallback)
	if err != nil && public {
		return principal.Principal{Kind: principal.Anonymous}, nil
	}
	return p, err
}

func (s *Service) resolve(ctx context.Context, authz []string, fallback func() (principal.Principal, error)) (principal.Principal, error) {
	var (
		fp   principal.Principal
		ferr = errors.New("no fallback authenticator")
	)
	if fallback != nil {
		fp, ferr = fallback()
	}
	if ferr == nil && fp.Kind == principal.Agent {
		return fp, nil
	}
	token, hasToken, err := bearerFromHeader(authz)
	if err != nil {
		return principal.Principal{}, err
	}
	if hasToken {
		return s.Authenticate(ctx, token)
	}
	if ferr != nil {
		if fallback != nil && status.Code(ferr) != codes.Unauthenticated {
			return principal.Principal{}, ferr // e.g. a certificate of the wrong kind
		}
		msg := "authentication required: send authorization: Bearer <access token> (croupier login)"
		if fallback != nil {
			msg += " or a client certificate (" + status.Convert(ferr).Message() + ")"
		}
		return principal.Principal{}, unauthenticated(CodeUnauthenticated, msg)
	}
	if fp.Kind == principal.Operator && fp.Grants == nil {
		u, err := s.certUser(ctx, fp.Name)
		switch {
		case err != nil:
			return principal.Principal{}, err
		case !u.exists:
			return fp, nil // no user of that name: no grants, deny by default
		case u.disabled:
			return principal.Principal{}, userDisabled(fp.Name)
		}
		fp.Grants = u.grants
	}
	return fp, nil
}

// ResolveGRPC is Resolve for a gRPC call: the bearer token of its
// authorization metadata, else fallback. The server's edge (method table)
// calls it with public from the table.
func (s *Service) ResolveGRPC(ctx context.Context, public bool, fallback Fallback) (principal.Principal, error) {
	var fb func() (principal.Principal, error)
	if fallback != nil {
		fb = func() (principal.Principal, error) { return fallback(ctx) }
	}
	// One key, not a copy of all the metadata (FromIncomingContext).
	p, err := s.Resolve(ctx, metadata.ValueFromIncomingContext(ctx, "authorization"), fb, public)
	if err != nil {
		return principal.Principal{}, storeerr.ToStatus(ctx, s.log, err)
	}
	return p, nil
}

// HTTPMiddleware authenticates HTTP requests (REST through grpc-gateway) the
// same way and puts the principal in the request context. public says which
// requests need no credential (the server derives it from its method table;
// nil: none). A refusal is written as the gateway writes errors — JSON
// {code, message, details} with the HTTP status of the gRPC code — plus a
// WWW-Authenticate challenge on 401.
func (s *Service) HTTPMiddleware(next http.Handler, fallback HTTPFallback, public func(*http.Request) bool) http.Handler {
	if public == nil {
		public = func(*http.Request) bool { return false }
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var fb func() (principal.Principal, error)
		if fallback != nil {
			fb = func() (principal.Principal, error) { return fallback(r) }
		}
		p, err := s.Resolve(r.Context(), r.Header.Values("Authorization"), fb, public(r))
		if err != nil {
			WriteHTTPError(w, storeerr.ToStatus(r.Context(), s.log, err))
			return
		}
		next.ServeHTTP(w, r.WithContext(principal.NewContext(r.Context(), p)))
	})
}

// WriteHTTPError writes a status error as grpc-gateway does.
func WriteHTTPError(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	code := runtime.HTTPStatusFromCode(st.Code())
	body, merr := protojson.Marshal(st.Proto())
	if merr != nil {
		body = []byte(`{"code":13,"message":"internal error"}`)
		code = http.StatusInternalServerError
	}
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="croupier"`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
