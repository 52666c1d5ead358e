package store_test

import (
	"slices"
	"testing"

	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

func TestRolesAndBindings(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		r := s.Roles()
		mustNil(t, r.Create(ctx, store.Role{Name: "banner", Permissions: []string{"function:invoke", "player:ban"}, Description: "bans"}), "create")
		mustNil(t, r.Create(ctx, store.Role{Name: "empty"}), "create empty")
		wantErr(t, r.Create(ctx, store.Role{Name: "banner"}), store.ErrConflict, "duplicate role")
		wantErr(t, r.Create(ctx, store.Role{}), store.ErrInvalidArgument, "nameless role")

		got, err := r.Get(ctx, "banner")
		mustNil(t, err, "get")
		if !slices.Equal(got.Permissions, []string{"function:invoke", "player:ban"}) || got.Description != "bans" || got.CreatedAt.IsZero() {
			t.Fatalf("Get = %+v", got)
		}
		if got, _ := r.Get(ctx, "empty"); got.Permissions == nil || len(got.Permissions) != 0 {
			t.Fatalf("empty role permissions = %#v, want empty non-nil", got.Permissions)
		}
		_, err = r.Get(ctx, "nope")
		wantErr(t, err, store.ErrNotFound, "get unknown")
		list, err := r.List(ctx)
		mustNil(t, err, "list")
		if len(list) != 2 || list[0].Name != "banner" || list[1].Name != "empty" {
			t.Fatalf("List = %+v", list)
		}

		mustNil(t, s.Users().Create(ctx, store.User{Username: "bob", PasswordHash: "h"}), "create bob")
		mustNil(t, s.Users().Create(ctx, store.User{Username: "amy", PasswordHash: "h"}), "create amy")
		scope := "game:demo/env:prod/function:*"
		mustNil(t, r.Grant(ctx, store.RoleBinding{Username: "bob", Role: "banner", Scope: scope}), "grant")
		mustNil(t, r.Grant(ctx, store.RoleBinding{Username: "bob", Role: "banner", Scope: scope}), "grant again (no-op)")
		mustNil(t, r.Grant(ctx, store.RoleBinding{Username: "bob", Role: "viewer", Scope: "*"}), "grant viewer")
		mustNil(t, r.Grant(ctx, store.RoleBinding{Username: "amy", Role: "admin", Scope: "*"}), "grant admin")
		wantErr(t, r.Grant(ctx, store.RoleBinding{Username: "ghost", Role: "viewer", Scope: "*"}), store.ErrNotFound, "grant to unknown user")
		wantErr(t, r.Grant(ctx, store.RoleBinding{Username: "bob", Role: "viewer"}), store.ErrInvalidArgument, "grant without scope")

		b, err := r.Bindings(ctx, "bob")
		mustNil(t, err, "bindings")
		if len(b) != 2 || b[0].Role != "banner" || b[0].Scope != scope || b[1].Role != "viewer" {
			t.Fatalf("Bindings(bob) = %+v", b)
		}
		all, err := r.AllBindings(ctx)
		mustNil(t, err, "all bindings")
		if len(all) != 3 || all[0].Username != "amy" {
			t.Fatalf("AllBindings = %+v", all)
		}

		wantErr(t, r.Delete(ctx, "banner"), store.ErrConflict, "delete granted role")
		mustNil(t, r.Revoke(ctx, "bob", "banner", scope), "revoke")
		wantErr(t, r.Revoke(ctx, "bob", "banner", scope), store.ErrNotFound, "revoke twice")
		mustNil(t, r.Delete(ctx, "banner"), "delete")
		wantErr(t, r.Delete(ctx, "banner"), store.ErrNotFound, "delete twice")
	})
}

func TestRolesMetacharacters(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		mustNil(t, s.Users().Create(ctx, store.User{Username: "u", PasswordHash: "h"}), "create user")
		for _, m := range metaStrings {
			mustNil(t, s.Roles().Create(ctx, store.Role{Name: m, Permissions: []string{m}}), "create role")
			mustNil(t, s.Roles().Grant(ctx, store.RoleBinding{Username: "u", Role: m, Scope: m}), "grant")
		}
		b, err := s.Roles().Bindings(ctx, "u")
		mustNil(t, err, "bindings")
		if len(b) != len(metaStrings) {
			t.Fatalf("%d bindings, want %d", len(b), len(metaStrings))
		}
		for _, m := range metaStrings {
			got, err := s.Roles().Get(ctx, m)
			mustNil(t, err, "get")
			if !slices.Equal(got.Permissions, []string{m}) {
				t.Errorf("role %q permissions %q", m, got.Permissions)
			}
		}
		wantErr(t, s.Roles().Revoke(ctx, "u", "%", "_"), store.ErrNotFound, "wildcard-like revoke")
	})
}
