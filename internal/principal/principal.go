// Package principal carries the authenticated caller of a request from the
// transport edge (mTLS certificate, later tokens) to the services.
package principal

import "context"

// Kind of caller.
type Kind string

const (
	// Agent is a croupier agent; Game and Env are the scope its credential allows.
	Agent Kind = "agent"
	// Operator is a human or tool calling the operator APIs.
	Operator Kind = "operator"
	// Anonymous is a caller on a plaintext loopback listener (insecure mode).
	Anonymous Kind = "anonymous"
)

// Principal is who is calling.
type Principal struct {
	Kind Kind
	Name string
	// Game and Env confine an agent; empty means unconfined (anonymous).
	Game, Env string
	// Grants are the operator's role bindings, resolved to permissions when
	// the request was authenticated (internal/auth); internal/rbac checks
	// them. None means the operator may do nothing (deny by default).
	Grants []Grant
	// SessionID names the login session of a token-authenticated operator;
	// empty for certificates.
	SessionID string
	// CertSerial is the serial number (hex) of the client certificate the
	// caller authenticated with; empty for tokens.
	CertSerial string
}

// Grant is one role binding of a principal: the role's permissions on a
// scope pattern (canonical form "game:<g>/env:<e>/function:<f>", with "*"
// wildcards; see internal/rbac).
type Grant struct {
	Role        string
	Scope       string
	Permissions []string
}

// String names the principal for logs and audit.
func (p Principal) String() string {
	if p.Name == "" {
		return string(p.Kind)
	}
	return string(p.Kind) + ":" + p.Name
}

type ctxKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal of ctx; Anonymous if none.
func FromContext(ctx context.Context) Principal {
	if p, ok := ctx.Value(ctxKey{}).(Principal); ok {
		return p
	}
	return Principal{Kind: Anonymous}
}
