package rbac

import (
	"fmt"
	"slices"
	"strings"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/principal"
	"google.golang.org/grpc/codes"
)

// CodePermissionDenied is the ErrorInfo code of every refusal from Check;
// its details name the permission and the scope.
const CodePermissionDenied = apierr.CodePermissionDenied

// Check returns nil if p holds perm on the resource game/env/fn, and a
// PERMISSION_DENIED status otherwise, e.g.
//
//	permission function:invoke denied on game:b/env:prod/function:player.ban for operator:bob
//
// Pass fn "" for a check on a whole environment and game "" for a global
// one (user:admin, role:admin); only grants whose scope has "*" in those
// parts cover them. Deny by default: no grant, no access.
func Check(p principal.Principal, perm, game, env, fn string) error {
	if Allowed(p, perm, game, env, fn) {
		return nil
	}
	res := Resource(game, env, fn)
	return apierr.New(codes.PermissionDenied, CodePermissionDenied,
		fmt.Sprintf("permission %s denied on %s for %s", perm, res, p),
		"permission", perm, "scope", res)
}

// CheckNamed is Check for a resource a request names by id (a job, an
// approval, a fleet) whose scope game/env/fn was looked up from it — ""
// when no such resource exists. A refusal names the resource, not its
// scope, and reads the same whether or not it exists, so a caller who may
// not see it learns neither that it exists nor where. A caller holding
// perm on every game passes for a resource that does not exist, and the
// service then answers NOT_FOUND.
func CheckNamed(p principal.Principal, perm, name, game, env, fn string) error {
	if Allowed(p, perm, game, env, fn) {
		return nil
	}
	return apierr.New(codes.PermissionDenied, CodePermissionDenied,
		fmt.Sprintf("permission %s denied on %s for %s, or it does not exist", perm, name, p),
		"permission", perm, "scope", name)
}

// Need is what an operator's call was admitted with: Perm on the resource
// Game/Env/Fn, which the request named as Named when that is set (so a
// refusal names it; CheckNamed). A stream keeps its Need, so that a role
// revoked while it is open ends it (auth.Service.HoldStream). The zero
// Need asks for no permission.
type Need struct {
	Perm, Named, Game, Env, Fn string
}

// Check is Check or CheckNamed for n; nil for the zero Need.
func (n Need) Check(p principal.Principal) error {
	switch {
	case n.Perm == "":
		return nil
	case n.Named != "":
		return CheckNamed(p, n.Perm, n.Named, n.Game, n.Env, n.Fn)
	}
	return Check(p, n.Perm, n.Game, n.Env, n.Fn)
}

// Allowed is Check as a boolean.
func Allowed(p principal.Principal, perm, game, env, fn string) bool {
	for _, g := range grantsOf(p) {
		if !grantCovers(g, game, env, fn) {
			continue
		}
		for _, have := range g.Permissions {
			if permissionCovers(have, perm) {
				return true
			}
		}
	}
	return false
}

// grantsOf returns p's grants plus the implicit one of an agent: it may
// register functions in its own game/env, and nothing else.
func grantsOf(p principal.Principal) []principal.Grant {
	if p.Kind != principal.Agent || p.Game == "" || p.Env == "" {
		return p.Grants
	}
	agent := principal.Grant{Role: "agent", Scope: Scope{Game: p.Game, Env: p.Env, Function: "*"}.String(),
		Permissions: []string{FunctionRegister}}
	return append(slices.Clip(p.Grants), agent)
}

// grantCovers parses the grant's scope; a malformed one (a corrupted row)
// covers nothing.
func grantCovers(g principal.Grant, game, env, fn string) bool {
	sc, err := ParseScope(g.Scope)
	return err == nil && sc.Covers(game, env, fn)
}

// FunctionAuth is what a function's descriptor (AuthConfig) adds to the
// function:invoke check.
type FunctionAuth struct {
	// Permissions required in addition to the base permission.
	Permissions []string
	// AllowedRoles, when set, restricts callers to holders of one of these
	// roles on the function's scope (admin always qualifies).
	AllowedRoles []string
}

// CheckFunction checks base (function:invoke or job:start) plus the
// descriptor's extra permissions and allowed roles on game/env/fn.
func CheckFunction(p principal.Principal, base, game, env, fn string, fa FunctionAuth) error {
	if err := Check(p, base, game, env, fn); err != nil {
		return err
	}
	for _, perm := range fa.Permissions {
		if err := Check(p, perm, game, env, fn); err != nil {
			return err
		}
	}
	if len(fa.AllowedRoles) == 0 {
		return nil
	}
	for _, g := range p.Grants {
		if (g.Role == AdminRole || slices.Contains(fa.AllowedRoles, g.Role)) && grantCovers(g, game, env, fn) {
			return nil
		}
	}
	res := Resource(game, env, fn)
	return apierr.New(codes.PermissionDenied, CodePermissionDenied,
		fmt.Sprintf("function %s may only be called by roles %s; %s holds none of them on %s", fn, strings.Join(fa.AllowedRoles, ", "), p, res),
		"roles", strings.Join(fa.AllowedRoles, ","), "scope", res)
}

// AdminGrants grants everything everywhere: for a deployment's trusted
// local principal (e.g. the anonymous caller of an insecure loopback dev
// server), never for a network caller.
func AdminGrants() []principal.Grant {
	return []principal.Grant{{Role: AdminRole, Scope: "*", Permissions: []string{"*"}}}
}

// Grant resolves a binding of role on scope into a principal.Grant with the
// role's permissions.
func Grant(role, scope string, permissions []string) principal.Grant {
	return principal.Grant{Role: role, Scope: scope, Permissions: slices.Clone(permissions)}
}
