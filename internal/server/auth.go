package server

import (
	"context"
	"net/http"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/rbac"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// principalOf maps a verified certificate identity to a principal.
func principalOf(id certs.Identity) (principal.Principal, error) {
	switch id.Kind {
	case certs.KindAgent:
		return principal.Principal{Kind: principal.Agent, Name: id.Name, Game: id.Game, Env: id.Env}, nil
	case certs.KindClient:
		return principal.Principal{Kind: principal.Operator, Name: id.Name}, nil
	default:
		return principal.Principal{}, apierr.Newf(codes.PermissionDenied, apierr.CodeScopeMismatch,
			"a %s certificate cannot call Croupier APIs; use an agent or client certificate", id.Kind)
	}
}

// authenticator attaches the caller's principal to every call. With TLS the
// principal comes from the verified client certificate; on an insecure
// (loopback-only) listener every caller is anonymous.
type authenticator struct{ insecure bool }

// principal authenticates a gRPC call by its client certificate. It is the
// fallback of the token authenticator (internal/auth): a bearer token, when
// sent, takes precedence for operators.
func (a authenticator) principal(ctx context.Context) (principal.Principal, error) {
	if a.insecure {
		return anonymousAdmin(), nil
	}
	id, err := certs.IdentityFromContext(ctx)
	if err != nil {
		return principal.Principal{}, apierr.New(codes.Unauthenticated, "UNAUTHENTICATED", "a client certificate signed by the Croupier CA is required: "+err.Error())
	}
	return principalOf(id)
}

// anonymousAdmin is the caller on an insecure listener, which the server
// only allows on loopback: the local developer, trusted with everything.
func anonymousAdmin() principal.Principal {
	return principal.Principal{Kind: principal.Anonymous, Grants: rbac.AdminGrants()}
}

// httpPrincipal is principal for an HTTP request.
func (a authenticator) httpPrincipal(r *http.Request) (principal.Principal, error) {
	if a.insecure {
		return anonymousAdmin(), nil
	}
	id, err := certs.IdentityFromRequest(r)
	if err != nil {
		return principal.Principal{}, apierr.New(codes.Unauthenticated, "UNAUTHENTICATED", "no client certificate: "+err.Error())
	}
	return principalOf(id)
}

// ctxStream is a server stream with a replaced context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

// httpMiddleware authenticates by certificate only: the long-poll tunnel
// listener, where only agents connect.
func (a authenticator) httpMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.httpPrincipal(r)
		if err != nil {
			writeStatus(w, status.Convert(err))
			return
		}
		next.ServeHTTP(w, r.WithContext(principal.NewContext(r.Context(), p)))
	})
}

// authorizeTunnel lets only an agent open a tunnel, and only under its own name.
func (a authenticator) authorizeTunnel(ctx context.Context, name string) error {
	p := principal.FromContext(ctx)
	if p.Kind == principal.Anonymous && !a.insecure {
		var err error
		if p, err = a.principal(ctx); err != nil {
			return err
		}
	}
	switch p.Kind {
	case principal.Anonymous:
		return nil
	case principal.Agent:
		if p.Name != name {
			return apierr.Newf(codes.PermissionDenied, apierr.CodeScopeMismatch, "credential is for agent %q; it cannot open a tunnel as %q", p.Name, name)
		}
		return nil
	default:
		return apierr.Newf(codes.PermissionDenied, apierr.CodeScopeMismatch, "only agents may open a tunnel (caller is %s)", p)
	}
}
