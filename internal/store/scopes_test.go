package store_test

import (
	"slices"
	"testing"

	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

func TestScopes(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		sc := s.Scopes()
		ok, err := sc.Exists(ctx, "g1", "prod")
		mustNil(t, err, "exists")
		if ok {
			t.Fatal("scope exists before Declare")
		}
		declare(t, s, "g2", "dev")
		declare(t, s, "g1", "prod")
		declare(t, s, "g1", "prod") // idempotent
		declare(t, s, "g1", "dev")
		ok, err = sc.Exists(ctx, "g1", "prod")
		mustNil(t, err, "exists")
		if !ok {
			t.Fatal("declared scope does not exist")
		}
		if ok, _ := sc.Exists(ctx, "g1", "staging"); ok {
			t.Fatal("undeclared env reported as existing")
		}
		list, err := sc.List(ctx)
		mustNil(t, err, "list")
		var got []string
		for _, x := range list {
			got = append(got, x.GameID+"/"+x.Env)
			if x.CreatedAt.IsZero() {
				t.Errorf("scope %s/%s has no creation time", x.GameID, x.Env)
			}
		}
		if want := []string{"g1/dev", "g1/prod", "g2/dev"}; !slices.Equal(got, want) {
			t.Fatalf("List = %v, want %v", got, want)
		}
		wantErr(t, sc.Declare(ctx, "", "prod"), store.ErrInvalidArgument, "empty game")
		wantErr(t, sc.Declare(ctx, "g", ""), store.ErrInvalidArgument, "empty env")
	})
}

func TestScopesMetacharacters(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		for _, m := range metaStrings {
			declare(t, s, m, m)
		}
		for _, m := range metaStrings {
			ok, err := s.Scopes().Exists(ctx, m, m)
			mustNil(t, err, "exists")
			if !ok {
				t.Errorf("scope %q not found", m)
			}
		}
		// "%" and "_" must not act as patterns: only exact matches exist.
		if ok, _ := s.Scopes().Exists(ctx, "x", "x"); ok {
			t.Fatal("wildcard-like values matched another scope")
		}
		list, err := s.Scopes().List(ctx)
		mustNil(t, err, "list")
		if len(list) != len(metaStrings) {
			t.Fatalf("List returned %d scopes, want %d", len(list), len(metaStrings))
		}
	})
}
