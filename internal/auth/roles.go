package auth

import (
	"context"
	"errors"
	"slices"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/rbac"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
)

// maxRolePermissions bounds a custom role's permission list.
const maxRolePermissions = 64

// RoleInfo is a built-in or custom role as the API shows it.
type RoleInfo struct {
	Name        string
	Permissions []string
	Description string
	Builtin     bool
}

// CreateRole stores a custom role (role:admin on "*"). Permissions must be
// well-formed (rbac.ValidatePermission); they may name permissions beyond
// the platform's, such as those function descriptors require.
func (s *Service) CreateRole(ctx context.Context, p principal.Principal, name string, permissions []string, description string) (RoleInfo, error) {
	defer s.invalidateGrants()
	var info RoleInfo
	err := s.audited(ctx, p, audit.ActionRoleCreate, map[string]any{"name": name, "permissions": permissions}, func() error {
		if err := rbac.Check(p, rbac.RoleAdmin, "", "", ""); err != nil {
			return err
		}
		if err := rbac.ValidateRoleName(name); err != nil {
			return invalidArg(err.Error())
		}
		if _, ok := rbac.Builtin(name); ok {
			return apierr.Newf(codes.AlreadyExists, CodeRoleBuiltin, "%s is a built-in role; choose another name", name)
		}
		if len(permissions) == 0 || len(permissions) > maxRolePermissions {
			return invalidArg("a role needs 1 to 64 permissions")
		}
		perms := slices.Clone(permissions)
		slices.Sort(perms)
		perms = slices.Compact(perms)
		for _, perm := range perms {
			if err := rbac.ValidatePermission(perm); err != nil {
				return invalidArg(err.Error())
			}
		}
		if len(description) > 512 {
			return invalidArg("description too long: at most 512 bytes")
		}
		err := s.store.Roles().Create(ctx, store.Role{Name: name, Permissions: perms, Description: description})
		if errors.Is(err, store.ErrConflict) {
			return apierr.Newf(codes.AlreadyExists, CodeRoleExists, "role %s already exists", name)
		}
		info = RoleInfo{Name: name, Permissions: perms, Description: description}
		return err
	})
	return info, err
}

// DeleteRole deletes a custom role nobody holds (role:admin on "*").
func (s *Service) DeleteRole(ctx context.Context, p principal.Principal, name string) error {
	defer s.invalidateGrants()
	return s.audited(ctx, p, audit.ActionRoleDelete, map[string]string{"name": name}, func() error {
		if err := rbac.Check(p, rbac.RoleAdmin, "", "", ""); err != nil {
			return err
		}
		if _, ok := rbac.Builtin(name); ok {
			return apierr.Newf(codes.FailedPrecondition, CodeRoleBuiltin, "%s is a built-in role and cannot be deleted", name)
		}
		err := s.store.Roles().Delete(ctx, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return apierr.Newf(codes.NotFound, CodeRoleNotFound, "no custom role named %q", name)
		case errors.Is(err, store.ErrConflict):
			return apierr.Newf(codes.FailedPrecondition, CodeRoleInUse, "role %s is still granted; revoke it from every user first (croupier user list shows who holds it)", name)
		}
		return err
	})
}

// ListRoles returns the built-in roles, then the custom ones. Any
// authenticated caller may list them: role definitions are not secret.
func (s *Service) ListRoles(ctx context.Context) ([]RoleInfo, error) {
	custom, err := s.store.Roles().List(ctx)
	if err != nil {
		return nil, err
	}
	var out []RoleInfo
	for _, r := range rbac.Builtins() {
		out = append(out, RoleInfo{Name: r.Name, Permissions: r.Permissions, Description: r.Description, Builtin: true})
	}
	for _, r := range custom {
		out = append(out, RoleInfo{Name: r.Name, Permissions: r.Permissions, Description: r.Description})
	}
	return out, nil
}
