package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"sync"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/rbac"
	"github.com/croupier/croupier/internal/revocation"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// principalOfTLS maps the verified client certificate of a connection to a
// principal, refusing a revoked one.
func (a authenticator) principalOfTLS(cs *tls.ConnectionState) (principal.Principal, error) {
	p, ok := a.certs.get(cs)
	if !ok {
		id, err := certs.IdentityFromTLS(cs)
		if err != nil {
			return principal.Principal{}, apierr.New(codes.Unauthenticated, apierr.CodeUnauthenticated,
				"a client certificate signed by the Croupier CA (or a bearer token) is required: "+err.Error())
		}
		switch id.Kind {
		case certs.KindAgent:
			p = principal.Principal{Kind: principal.Agent, Name: id.Name, Game: id.Game, Env: id.Env}
		case certs.KindClient:
			p = principal.Principal{Kind: principal.Operator, Name: id.Name}
		default:
			return principal.Principal{}, apierr.Newf(codes.PermissionDenied, apierr.CodeScopeMismatch,
				"a %s certificate cannot call Croupier APIs; use an agent or client certificate", id.Kind)
		}
		p.CertSerial = certs.Serial(cs.VerifiedChains[0][0])
		a.certs.put(cs, p)
	}
	// Every call: a certificate can be revoked while its connection lives.
	if err := a.rv.Check(p); err != nil {
		return principal.Principal{}, err
	}
	return p, nil
}

// authenticator attaches the caller's principal to every call. With TLS the
// principal comes from the verified client certificate; on an insecure
// (loopback-only) listener every caller is anonymous.
type authenticator struct {
	insecure bool
	rv       *revocation.List
	certs    *certPrincipals
}

// maxCertPrincipals bounds certPrincipals: a few per connected agent and
// operator; past it the cache starts over.
const maxCertPrincipals = 4096

// certPrincipals remembers the principal each verified client certificate
// maps to, so the calls of a connection do not parse the identity URI of
// the same certificate again (with its serial, ~9 µs and a stack growth
// per call). It is keyed by the leaf's pointer: a connection's verified
// chain is parsed once at the handshake and never modified, so every call
// on the connection presents the same pointer, and the map's reference
// keeps the certificate from being freed and its address reused. The
// revocation check is not cached. A nil *certPrincipals caches nothing.
type certPrincipals struct {
	mu sync.Mutex
	m  map[*x509.Certificate]principal.Principal
}

func newCertPrincipals() *certPrincipals {
	return &certPrincipals{m: make(map[*x509.Certificate]principal.Principal)}
}

// leaf is the verified leaf certificate of cs, nil if there is none.
func leaf(cs *tls.ConnectionState) *x509.Certificate {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil
	}
	return cs.VerifiedChains[0][0]
}

func (c *certPrincipals) get(cs *tls.ConnectionState) (principal.Principal, bool) {
	cert := leaf(cs)
	if c == nil || cert == nil {
		return principal.Principal{}, false
	}
	c.mu.Lock()
	p, ok := c.m[cert]
	c.mu.Unlock()
	return p, ok
}

func (c *certPrincipals) put(cs *tls.ConnectionState, p principal.Principal) {
	cert := leaf(cs)
	if c == nil || cert == nil {
		return
	}
	c.mu.Lock()
	if len(c.m) >= maxCertPrincipals {
		clear(c.m)
	}
	c.m[cert] = p
	c.mu.Unlock()
}

// principal authenticates a gRPC call by its client certificate. It is the
// fallback of the token authenticator (internal/auth): a bearer token, when
// sent, takes precedence for operators.
func (a authenticator) principal(ctx context.Context) (principal.Principal, error) {
	if a.insecure {
		return anonymousAdmin(), nil
	}
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return principal.Principal{}, apierr.New(codes.Unauthenticated, apierr.CodeUnauthenticated, "no peer information")
	}
	info, ok := pr.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return principal.Principal{}, apierr.New(codes.Unauthenticated, apierr.CodeUnauthenticated, "the connection is not TLS")
	}
	return a.principalOfTLS(&info.State)
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
	return a.principalOfTLS(r.TLS)
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
		a.rv.TunnelOpened(name, p.CertSerial)
		return nil
	default:
		return apierr.Newf(codes.PermissionDenied, apierr.CodeScopeMismatch, "only agents may open a tunnel (caller is %s)", p)
	}
}
