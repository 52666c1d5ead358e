package store_test

import (
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

func TestAssignments(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		as := s.Assignments()
		_, err := as.Set(ctx, "g", "prod", "f", true, nil)
		wantErr(t, err, store.ErrNotFound, "set in undeclared scope")
		_, _, err = as.List(ctx, "g", "prod")
		wantErr(t, err, store.ErrNotFound, "list undeclared scope")
		_, err = as.Version(ctx, "g", "prod")
		wantErr(t, err, store.ErrNotFound, "version of undeclared scope")

		declare(t, s, "g", "prod")
		declare(t, s, "g", "dev")
		list, v, err := as.List(ctx, "g", "prod")
		mustNil(t, err, "list empty")
		if len(list) != 0 || v != 0 {
			t.Fatalf("fresh scope: %d assignments at version %d, want none at 0", len(list), v)
		}

		cfg := map[string]string{"max": "10", "quote'": `"x"`}
		v1, err := as.Set(ctx, "g", "prod", "player.ban", true, cfg)
		mustNil(t, err, "set 1")
		v2, err := as.Set(ctx, "g", "prod", "economy.grant", false, nil)
		mustNil(t, err, "set 2")
		v3, err := as.Set(ctx, "g", "prod", "player.ban", false, map[string]string{"max": "5"})
		mustNil(t, err, "set 3")
		if v1 != 1 || v2 != 2 || v3 != 3 {
			t.Fatalf("versions %d %d %d, want 1 2 3", v1, v2, v3)
		}
		// Another scope has its own counter.
		vDev, err := as.Set(ctx, "g", "dev", "player.ban", true, nil)
		mustNil(t, err, "set dev")
		if vDev != 1 {
			t.Fatalf("dev version %d, want 1", vDev)
		}

		list, v, err = as.List(ctx, "g", "prod")
		mustNil(t, err, "list")
		if v != 3 || len(list) != 2 {
			t.Fatalf("List: %d assignments at version %d, want 2 at 3", len(list), v)
		}
		if list[0].GetFunctionId() != "economy.grant" || list[0].GetEnabled() || len(list[0].GetConfig()) != 0 {
			t.Errorf("economy.grant = %v", list[0])
		}
		if list[1].GetFunctionId() != "player.ban" || list[1].GetEnabled() ||
			!maps.Equal(list[1].GetConfig(), map[string]string{"max": "5"}) {
			t.Errorf("player.ban = %v", list[1])
		}
		got, err := as.Version(ctx, "g", "prod")
		mustNil(t, err, "version")
		if got != 3 {
			t.Fatalf("Version = %d, want 3", got)
		}
		_, err = as.Set(ctx, "g", "prod", "", true, nil)
		wantErr(t, err, store.ErrInvalidArgument, "empty function id")
	})
}

// TestAssignmentsConcurrentSetsGetDistinctVersions: the version bump is
// atomic, so N concurrent Sets observe exactly the versions 1..N.
func TestAssignmentsConcurrentSetsGetDistinctVersions(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		declare(t, s, "g", "e")
		const n = 16
		versions := make([]int64, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				versions[i], errs[i] = s.Assignments().Set(ctx, "g", "e", "f"+string(rune('a'+i)), i%2 == 0, nil)
			})
		}
		wg.Wait()
		for i, err := range errs {
			mustNil(t, err, "set "+string(rune('a'+i)))
		}
		slices.Sort(versions)
		for i, v := range versions {
			if v != int64(i+1) {
				t.Fatalf("versions %v, want 1..%d", versions, n)
			}
		}
		list, v, err := s.Assignments().List(ctx, "g", "e")
		mustNil(t, err, "list")
		if v != n || len(list) != n {
			t.Fatalf("List: %d at version %d, want %d at %d", len(list), v, n, n)
		}
	})
}
