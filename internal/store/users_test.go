package store_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

func TestUsers(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		u := s.Users()
		mustNil(t, u.Create(ctx, store.User{Username: "bob", PasswordHash: "h1"}), "create bob")
		mustNil(t, u.Create(ctx, store.User{Username: "alice", PasswordHash: "h2"}), "create alice")
		wantErr(t, u.Create(ctx, store.User{Username: "bob", PasswordHash: "h3"}), store.ErrConflict, "duplicate")
		wantErr(t, u.Create(ctx, store.User{Username: "", PasswordHash: "h"}), store.ErrInvalidArgument, "empty name")
		wantErr(t, u.Create(ctx, store.User{Username: "x"}), store.ErrInvalidArgument, "empty hash")

		got, err := u.Get(ctx, "bob")
		mustNil(t, err, "get")
		if got.PasswordHash != "h1" || got.Disabled || !got.CreatedAt.Equal(clock.Now()) {
			t.Fatalf("Get = %+v", got)
		}
		_, err = u.Get(ctx, "nobody")
		wantErr(t, err, store.ErrNotFound, "get unknown")

		list, err := u.List(ctx)
		mustNil(t, err, "list")
		if len(list) != 2 || list[0].Username != "alice" || list[1].Username != "bob" || list[0].PasswordHash != "" {
			t.Fatalf("List = %+v, want alice, bob without hashes", list)
		}

		clock.Advance(time.Minute)
		mustNil(t, u.SetPasswordHash(ctx, "bob", "h9"), "set password")
		got, _ = u.Get(ctx, "bob")
		if got.PasswordHash != "h9" || !got.UpdatedAt.Equal(clock.Now()) {
			t.Fatalf("after SetPasswordHash: %+v", got)
		}
		wantErr(t, u.SetPasswordHash(ctx, "nobody", "h"), store.ErrNotFound, "set password unknown")
		wantErr(t, u.SetPasswordHash(ctx, "bob", ""), store.ErrInvalidArgument, "empty hash")

		mustNil(t, u.SetDisabled(ctx, "bob", true), "disable")
		if got, _ := u.Get(ctx, "bob"); !got.Disabled {
			t.Fatal("bob not disabled")
		}
		mustNil(t, u.SetDisabled(ctx, "bob", false), "enable")
		if got, _ := u.Get(ctx, "bob"); got.Disabled {
			t.Fatal("bob still disabled")
		}
		wantErr(t, u.SetDisabled(ctx, "nobody", true), store.ErrNotFound, "disable unknown")
	}, storetest.WithClock(clock.Now))
}

func TestUsersMetacharacters(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		for _, m := range metaStrings {
			mustNil(t, s.Users().Create(ctx, store.User{Username: m, PasswordHash: m}), "create")
		}
		for _, m := range metaStrings {
			got, err := s.Users().Get(ctx, m)
			mustNil(t, err, "get")
			if got.PasswordHash != m {
				t.Errorf("user %q: hash %q", m, got.PasswordHash)
			}
		}
		list, err := s.Users().List(ctx)
		mustNil(t, err, "list")
		if len(list) != len(metaStrings) {
			t.Fatalf("List returned %d users, want %d", len(list), len(metaStrings))
		}
	})
}

// TestUsersRacingCaseVariants: creates of names that differ only in case,
// all at once, leave exactly one user (the unique index on lower(username)
// refuses the losers of the check's race), each loser ErrConflict.
func TestUsersRacingCaseVariants(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		names := []string{"gm", "GM", "Gm", "gM"}
		errs := make([]error, len(names))
		var wg sync.WaitGroup
		for i, n := range names {
			wg.Go(func() { errs[i] = s.Users().Create(ctx, store.User{Username: n, PasswordHash: "h"}) })
		}
		wg.Wait()
		ok := 0
		for i, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("create %q: %v; want success or ErrConflict", names[i], err)
			}
		}
		list, err := s.Users().List(ctx)
		mustNil(t, err, "list")
		if ok != 1 || len(list) != 1 {
			t.Fatalf("%d creates succeeded, %d users stored; want exactly one", ok, len(list))
		}
	})
}
