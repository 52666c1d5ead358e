package auth

import (
	"context"
	"errors"
	"time"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/rbac"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
)

// UserInfo is a user as the API shows it: no password hash.
type UserInfo struct {
	Username  string
	Disabled  bool
	CreatedAt time.Time
	UpdatedAt time.Time
	Roles     []store.RoleBinding
}

// CreateUser adds a user with the given password (user:admin on "*").
func (s *Service) CreateUser(ctx context.Context, p principal.Principal, username, password string) error {
	defer s.invalidateGrants()
	return s.audited(ctx, p, audit.ActionUserCreate, map[string]string{"username": username}, func() error {
		if err := rbac.Check(p, rbac.UserAdmin, "", "", ""); err != nil {
			return err
		}
		if err := CheckUsername(username); err != nil {
			return invalidArg(err.Error())
		}
		if err := CheckPassword(password); err != nil {
			return invalidArg(err.Error())
		}
		hash, err := s.cred.HashPassword(ctx, password)
		if err != nil {
			return err
		}
		err = s.store.Users().Create(ctx, store.User{Username: username, PasswordHash: hash})
		if errors.Is(err, store.ErrConflict) {
			return apierr.New(codes.AlreadyExists, CodeUserExists, store.Message(err))
		}
		return err
	})
}

// SetPassword sets a user's password and revokes all of the user's login
// sessions. An administrator (user:admin on "*") may set anyone's; a user
// may set their own by also giving the current password. That check is a
// password guess like a login's and goes through the same throttle
// (passwordAttempt): a stolen access token must not allow unlimited
// guesses of the password behind it.
func (s *Service) SetPassword(ctx context.Context, p principal.Principal, username, password, current string) error {
	payload := map[string]string{"username": username}
	return s.auditedIf(ctx, p.String(), audit.ActionUserPassword, payload, func() (bool, error) {
		return s.setPassword(ctx, p, username, password, current, payload)
	})
}

// setPassword is SetPassword; it reports whether the call is to be
// audited (a throttled current-password check mostly is not).
func (s *Service) setPassword(ctx context.Context, p principal.Principal, username, password, current string, payload map[string]string) (bool, error) {
	if err := rbac.Check(p, rbac.UserAdmin, "", "", ""); err != nil {
		if p.Kind != principal.Operator || p.Name != username {
			return true, err
		}
		record, err := s.passwordAttempt(ctx, truncate(username, maxLoggedUsername), payload, func() error {
			return s.checkCurrentPassword(ctx, username, current)
		})
		if err != nil {
			return record, err
		}
	}
	if err := CheckPassword(password); err != nil {
		return true, invalidArg(err.Error())
	}
	hash, err := s.cred.HashPassword(ctx, password)
	if err != nil {
		return true, err
	}
	if err := s.userErr(s.store.Users().SetPasswordHash(ctx, username, hash), username); err != nil {
		return true, err
	}
	s.cutUser(username, store.RevokePasswordChanged, false) // the change revoked the user's sessions
	return true, nil
}

// checkCurrentPassword checks the password a user gives to change their own.
func (s *Service) checkCurrentPassword(ctx context.Context, username, current string) error {
	wrong := apierr.New(codes.PermissionDenied, CodeInvalidCredentials, "current_password is wrong; changing your own password needs it")
	if len(current) > MaxPasswordLen {
		return wrong
	}
	u, err := s.store.Users().Get(ctx, username)
	if err != nil {
		return s.userErr(err, username)
	}
	ok, err := s.cred.VerifyPassword(ctx, current, u.PasswordHash)
	if err != nil {
		return err
	}
	if !ok {
		return wrong
	}
	return nil
}

// SetDisabled disables (revoking all login sessions) or re-enables a user
// (user:admin on "*"). Nobody can disable themselves: that would lock out
// the last administrator as easily as anyone.
func (s *Service) SetDisabled(ctx context.Context, p principal.Principal, username string, disabled bool) error {
	defer s.invalidateGrants()
	action := audit.ActionUserEnable
	if disabled {
		action = audit.ActionUserDisable
	}
	return s.audited(ctx, p, action, map[string]string{"username": username}, func() error {
		if err := rbac.Check(p, rbac.UserAdmin, "", "", ""); err != nil {
			return err
		}
		if disabled && p.Kind == principal.Operator && p.Name == username {
			// The request is wrong whatever the state of the account, so
			// INVALID_ARGUMENT, in the status and the ErrorInfo code alike.
			return invalidArg("you cannot disable your own account (" + username + "); ask another administrator")
		}
		if err := s.userErr(s.store.Users().SetDisabled(ctx, username, disabled), username); err != nil {
			return err
		}
		if disabled {
			s.cutUser(username, store.RevokeUserDisabled, true)
		}
		return nil
	})
}

// ListUsers returns every user with their role bindings (user:admin on "*").
func (s *Service) ListUsers(ctx context.Context, p principal.Principal) ([]UserInfo, error) {
	if err := rbac.Check(p, rbac.UserAdmin, "", "", ""); err != nil {
		return nil, err
	}
	users, err := s.store.Users().List(ctx)
	if err != nil {
		return nil, err
	}
	bindings, err := s.store.Roles().AllBindings(ctx)
	if err != nil {
		return nil, err
	}
	byUser := make(map[string][]store.RoleBinding)
	for _, b := range bindings {
		byUser[b.Username] = append(byUser[b.Username], b)
	}
	out := make([]UserInfo, 0, len(users))
	for _, u := range users {
		out = append(out, UserInfo{Username: u.Username, Disabled: u.Disabled, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt, Roles: byUser[u.Username]})
	}
	return out, nil
}

// GrantRole binds role to the user on scope and returns the canonical
// scope. The scope is required: an omitted one is refused rather than
// taken as "*", so nobody grants everything by leaving it out. The caller
// needs role:admin on that scope: an administrator of game:a/* may grant
// roles on game:a scopes only.
func (s *Service) GrantRole(ctx context.Context, p principal.Principal, username, role, scope string) (string, error) {
	defer s.invalidateGrants()
	canonical := scope
	err := s.audited(ctx, p, audit.ActionRoleGrant, map[string]string{"username": username, "role": role, "scope": scope}, func() error {
		sc, err := s.checkBinding(ctx, p, role, scope)
		if err != nil {
			return err
		}
		canonical = sc.String()
		return s.userErr(s.store.Roles().Grant(ctx, store.RoleBinding{Username: username, Role: role, Scope: canonical}), username)
	})
	return canonical, err
}

// RevokeRole removes a binding (role:admin on its scope). The scope is
// required, as for GrantRole.
func (s *Service) RevokeRole(ctx context.Context, p principal.Principal, username, role, scope string) error {
	defer s.invalidateGrants()
	return s.audited(ctx, p, audit.ActionRoleRevoke, map[string]string{"username": username, "role": role, "scope": scope}, func() error {
		sc, err := parseBindingScope(scope)
		if err != nil {
			return err
		}
		if err := checkRoleAdmin(p, sc); err != nil {
			return err
		}
		err = s.store.Roles().Revoke(ctx, username, role, sc.String())
		if errors.Is(err, store.ErrNotFound) {
			return apierr.Newf(codes.NotFound, CodeRoleNotFound, "user %s does not hold role %s on %s", username, role, sc)
		}
		if err == nil {
			// Calls admitted from now on read the grants afresh; then the
			// streams that needed the role end.
			s.invalidateGrants()
			s.cutUngranted(ctx, username)
		}
		return err
	})
}

// checkBinding validates a role binding about to be granted.
func (s *Service) checkBinding(ctx context.Context, p principal.Principal, role, scope string) (rbac.Scope, error) {
	sc, err := parseBindingScope(scope)
	if err != nil {
		return rbac.Scope{}, err
	}
	if err := checkRoleAdmin(p, sc); err != nil {
		return rbac.Scope{}, err
	}
	if _, ok := rbac.Builtin(role); ok {
		return sc, nil
	}
	_, err = s.store.Roles().Get(ctx, role)
	if errors.Is(err, store.ErrNotFound) {
		return rbac.Scope{}, apierr.Newf(codes.NotFound, CodeRoleNotFound, "no role named %q; croupier role list shows the roles", role)
	}
	return sc, err
}

// parseBindingScope parses the scope of a grant or revocation. There is
// no default: deny by default means granting everything must be asked for.
func parseBindingScope(scope string) (rbac.Scope, error) {
	if scope == "" {
		return rbac.Scope{}, invalidArg(`scope is required: pass the scope of the grant, such as "game:demo/*", or "*" for everything`)
	}
	sc, err := rbac.ParseScope(scope)
	if err != nil {
		return rbac.Scope{}, invalidArg(err.Error())
	}
	return sc, nil
}

// checkRoleAdmin checks role:admin on the resource a scope pattern names:
// wildcard parts become "" (the whole level), so granting on game:a/* needs
// role:admin over all of game a.
func checkRoleAdmin(p principal.Principal, sc rbac.Scope) error {
	part := func(v string) string {
		if v == "*" {
			return ""
		}
		return v
	}
	game, env, fn := part(sc.Game), part(sc.Env), part(sc.Function)
	if game == "" {
		env, fn = "", ""
	} else if env == "" {
		fn = ""
	}
	return rbac.Check(p, rbac.RoleAdmin, game, env, fn)
}

// userErr maps a store miss to USER_NOT_FOUND.
func (s *Service) userErr(err error, username string) error {
	if errors.Is(err, store.ErrNotFound) {
		return apierr.Newf(codes.NotFound, CodeUserNotFound, "no user named %q", username)
	}
	return err
}

// audited runs an administrative action and records it with its outcome.
func (s *Service) audited(ctx context.Context, p principal.Principal, action string, payload any, fn func() error) error {
	return s.auditedIf(ctx, p.String(), action, payload, func() (bool, error) { return true, fn() })
}

// auditedIf is audited for a call that says whether it is to be recorded
// (a throttled password attempt mostly is not), as actor.
func (s *Service) auditedIf(ctx context.Context, actor, action string, payload any, fn func() (record bool, err error)) error {
	start := s.now()
	record, err := fn()
	if record {
		s.record(ctx, audit.Entry{Actor: actor, Action: action, Payload: payload, Err: err, Duration: s.now().Sub(start)})
	}
	return err
}
