package auth_test

import (
	"slices"
	"testing"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/rbac"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
	"google.golang.org/grpc/codes"
)

func TestUserAdministration(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		ctx := ctxT(t)
		root := e.as(t, "root")
		e.user(t, "vic", "viewer@*")
		vic := e.as(t, "vic")

		wantCode(t, e.svc.CreateUser(ctx, vic, "mallory", "mallory-password"), codes.PermissionDenied, rbac.CodePermissionDenied,
			"permission user:admin denied on * for operator:vic")
		wantCode(t, e.svc.CreateUser(ctx, root, "vic", "another-password"), codes.AlreadyExists, auth.CodeUserExists)
		// A name that differs only in case would pass for vic in lists and audit rows.
		wantCode(t, e.svc.CreateUser(ctx, root, "Vic", "another-password"), codes.AlreadyExists, auth.CodeUserExists,
			`user "Vic" already exists as "vic"`)
		for _, bad := range []string{"", "x'; DROP TABLE users; --", "a b", "-lead", string(make([]byte, 65))} {
			wantCode(t, e.svc.CreateUser(ctx, root, bad, "good-password"), codes.InvalidArgument, "", "malformed")
		}
		wantCode(t, e.svc.CreateUser(ctx, root, "newbie", "short"), codes.InvalidArgument, "", "too short")
		if err := e.svc.CreateUser(ctx, root, "o'brien.x@y-z", "good-password"); err == nil {
			t.Fatal("a quote in a username was accepted")
		}

		_, err := e.svc.ListUsers(ctx, vic)
		wantCode(t, err, codes.PermissionDenied, rbac.CodePermissionDenied)
		users, err := e.svc.ListUsers(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		if len(users) != 2 || users[0].Username != "root" || users[1].Username != "vic" ||
			len(users[1].Roles) != 1 || users[1].Roles[0].Role != rbac.ViewerRole {
			t.Fatalf("ListUsers = %+v", users)
		}

		// Regression: the status was FAILED_PRECONDITION, the ErrorInfo code
		// INVALID_ARGUMENT; they agree now.
		wantCode(t, e.svc.SetDisabled(ctx, root, "root", true), codes.InvalidArgument, apierr.CodeInvalidArgument, "cannot disable your own account")
		wantCode(t, e.svc.SetDisabled(ctx, vic, "root", true), codes.PermissionDenied, rbac.CodePermissionDenied)
		wantCode(t, e.svc.SetDisabled(ctx, root, "ghost", true), codes.NotFound, auth.CodeUserNotFound)
		if err := e.svc.SetDisabled(ctx, root, "vic", true); err != nil {
			t.Fatal(err)
		}

		acts := e.auditActions(t)
		for _, want := range []string{"user.create:PERMISSION_DENIED", "user.create:ALREADY_EXISTS", "user.disable:OK", "user.disable:INVALID_ARGUMENT"} {
			if !slices.Contains(acts, want) {
				t.Errorf("audit lacks %s: %v", want, acts)
			}
		}
	})
}

func TestRoleAdministration(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		ctx := ctxT(t)
		root := e.as(t, "root")
		e.user(t, "ga", "admin@game:a/*")
		ga := e.as(t, "ga")
		e.user(t, "bob")

		// Custom roles: validation, built-in names, duplicates.
		r, err := e.svc.CreateRole(ctx, root, "gm", []string{"player:ban", rbac.FunctionInvoke, "player:ban"}, "game masters")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.Permissions, []string{rbac.FunctionInvoke, "player:ban"}) {
			t.Fatalf("permissions not normalised: %v", r.Permissions)
		}
		_, err = e.svc.CreateRole(ctx, root, "gm", []string{rbac.JobRead}, "")
		wantCode(t, err, codes.AlreadyExists, auth.CodeRoleExists)
		_, err = e.svc.CreateRole(ctx, root, rbac.AdminRole, []string{rbac.JobRead}, "")
		wantCode(t, err, codes.AlreadyExists, auth.CodeRoleBuiltin)
		_, err = e.svc.CreateRole(ctx, root, "x'; --", []string{rbac.JobRead}, "")
		wantCode(t, err, codes.InvalidArgument, "", "malformed")
		_, err = e.svc.CreateRole(ctx, root, "empty", nil, "")
		wantCode(t, err, codes.InvalidArgument, "", "1 to 64")
		_, err = e.svc.CreateRole(ctx, root, "bad", []string{"JOB:READ"}, "")
		wantCode(t, err, codes.InvalidArgument, "", "malformed")
		_, err = e.svc.CreateRole(ctx, ga, "mine", []string{rbac.JobRead}, "")
		wantCode(t, err, codes.PermissionDenied, rbac.CodePermissionDenied, "permission role:admin denied on *")

		// A game admin grants roles within its game only.
		scope, err := e.svc.GrantRole(ctx, ga, "bob", "gm", "game:a/env:prod")
		if err != nil || scope != "game:a/env:prod/*" {
			t.Fatalf("game admin grant in its game: %q, %v", scope, err)
		}
		_, err = e.svc.GrantRole(ctx, ga, "bob", "gm", "game:b/*")
		wantCode(t, err, codes.PermissionDenied, rbac.CodePermissionDenied, "permission role:admin denied on game:b")
		_, err = e.svc.GrantRole(ctx, ga, "bob", rbac.AdminRole, "*")
		wantCode(t, err, codes.PermissionDenied, rbac.CodePermissionDenied, "denied on *")
		_, err = e.svc.GrantRole(ctx, root, "bob", "nope", "*")
		wantCode(t, err, codes.NotFound, auth.CodeRoleNotFound)
		_, err = e.svc.GrantRole(ctx, root, "ghost", "gm", "*")
		wantCode(t, err, codes.NotFound, auth.CodeUserNotFound)
		for _, bad := range []string{"game:", "env:prod", "game:a/env:p/function:x/y", "game:a*"} {
			_, err = e.svc.GrantRole(ctx, root, "bob", "gm", bad)
			wantCode(t, err, codes.InvalidArgument, "", "scope")
		}
		// Deny by default: no scope is not "*" (regression: it was).
		_, err = e.svc.GrantRole(ctx, root, "bob", rbac.ViewerRole, "")
		wantCode(t, err, codes.InvalidArgument, apierr.CodeInvalidArgument, "scope is required", `"game:demo/*"`, `"*" for everything`)
		if scope, err := e.svc.GrantRole(ctx, root, "bob", rbac.ViewerRole, "*"); err != nil || scope != "*" {
			t.Fatalf("grant on *: %q, %v", scope, err)
		}
		wantCode(t, e.svc.RevokeRole(ctx, root, "bob", rbac.ViewerRole, ""), codes.InvalidArgument, apierr.CodeInvalidArgument, "scope is required")

		// Deleting a role in use is refused until it is revoked.
		wantCode(t, e.svc.DeleteRole(ctx, root, "gm"), codes.FailedPrecondition, auth.CodeRoleInUse)
		wantCode(t, e.svc.DeleteRole(ctx, root, rbac.ViewerRole), codes.FailedPrecondition, auth.CodeRoleBuiltin)
		wantCode(t, e.svc.RevokeRole(ctx, root, "bob", "gm", "game:a/*"), codes.NotFound, auth.CodeRoleNotFound)
		wantCode(t, e.svc.RevokeRole(ctx, ga, "bob", rbac.ViewerRole, "*"), codes.PermissionDenied, rbac.CodePermissionDenied)
		if err := e.svc.RevokeRole(ctx, ga, "bob", "gm", "game:a/env:prod/*"); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.DeleteRole(ctx, root, "gm"); err != nil {
			t.Fatal(err)
		}
		wantCode(t, e.svc.DeleteRole(ctx, root, "gm"), codes.NotFound, auth.CodeRoleNotFound)

		roles, err := e.svc.ListRoles(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, r := range roles {
			names = append(names, r.Name)
			if !r.Builtin {
				t.Errorf("custom role %s left after delete", r.Name)
			}
		}
		if !slices.Equal(names, []string{"admin", "operator", "fleet-admin", "viewer", "approver", "auditor"}) {
			t.Fatalf("roles = %v", names)
		}
		if info := apierr.Info(e.svc.DeleteRole(ctx, ga, "x")); info == nil || info.GetDetails()["permission"] != rbac.RoleAdmin {
			t.Fatalf("denial details: %v", info)
		}
	})
}
