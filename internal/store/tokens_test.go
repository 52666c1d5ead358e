package store_test

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

func newSession(t *testing.T, s *store.Store, clock *fakeClock, user, id, firstHash string) {
	t.Helper()
	now := clock.Now()
	mustNil(t, s.Tokens().CreateSession(ctxT(t),
		store.Session{ID: id, Username: user, CreatedAt: now},
		store.RefreshToken{Hash: firstHash, SessionID: id, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}), "create session")
}

func refresh(clock *fakeClock, hash string) store.RefreshToken {
	now := clock.Now()
	return store.RefreshToken{Hash: hash, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
}

func TestTokensRotateAndReuse(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		tok := s.Tokens()
		mustNil(t, s.Users().Create(ctx, store.User{Username: "bob", PasswordHash: "h"}), "create user")
		newSession(t, s, clock, "bob", "s1", "r1")

		res, err := tok.Rotate(ctx, "r1", refresh(clock, "r2"), clock.Now(), 0)
		mustNil(t, err, "rotate r1")
		if res.Outcome != store.Rotated || res.Session.ID != "s1" || res.Session.Username != "bob" {
			t.Fatalf("rotate r1 = %+v", res)
		}
		res, err = tok.Rotate(ctx, "r2", refresh(clock, "r3"), clock.Now(), 0)
		mustNil(t, err, "rotate r2")
		if res.Outcome != store.Rotated {
			t.Fatalf("rotate r2 = %+v", res)
		}
		// r1 was exchanged already: presenting it again revokes the family.
		res, err = tok.Rotate(ctx, "r1", refresh(clock, "evil"), clock.Now(), 0)
		mustNil(t, err, "reuse r1")
		if res.Outcome != store.RotateReused || res.Session.RevokeReason != store.RevokeReuse {
			t.Fatalf("reuse r1 = %+v, want RotateReused", res)
		}
		// The newest token of the family is dead too, and nothing was stored
		// for the attacker's replacement.
		res, err = tok.Rotate(ctx, "r3", refresh(clock, "r4"), clock.Now(), 0)
		mustNil(t, err, "rotate r3")
		if res.Outcome != store.RotateRevoked {
			t.Fatalf("rotate r3 after reuse = %+v, want RotateRevoked", res)
		}
		if res, _ := tok.Rotate(ctx, "evil", refresh(clock, "x"), clock.Now(), 0); res.Outcome != store.RotateUnknown {
			t.Fatalf("replacement token of a reuse was stored: %+v", res)
		}
		st, err := tok.SessionState(ctx, "s1")
		mustNil(t, err, "session state")
		if st.Session.RevokedAt.IsZero() || st.Session.RevokeReason != store.RevokeReuse {
			t.Fatalf("session after reuse = %+v", st.Session)
		}
		if res, _ := tok.Rotate(ctx, "never-issued", refresh(clock, "y"), clock.Now(), 0); res.Outcome != store.RotateUnknown {
			t.Fatalf("unknown token = %+v", res)
		}
	}, storetest.WithClock(clock.Now))
}

// TestTokensReuseGrace: a spent token presented again within the grace
// (two tabs renewing at once) rotates again and the session lives on; at
// the end of the grace it is a replay and revokes the session.
func TestTokensReuseGrace(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	const grace = 10 * time.Second
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		tok := s.Tokens()
		mustNil(t, s.Users().Create(ctx, store.User{Username: "bob", PasswordHash: "h"}), "create user")
		newSession(t, s, clock, "bob", "s1", "r1")

		if res, _ := tok.Rotate(ctx, "r1", refresh(clock, "r2"), clock.Now(), grace); res.Outcome != store.Rotated {
			t.Fatalf("rotate r1 = %+v, want Rotated", res)
		}
		clock.Advance(grace - time.Millisecond)
		res, err := tok.Rotate(ctx, "r1", refresh(clock, "r2b"), clock.Now(), grace)
		mustNil(t, err, "r1 again within the grace")
		if res.Outcome != store.RotatedInGrace || !res.Session.RevokedAt.IsZero() {
			t.Fatalf("r1 again within the grace = %+v, want RotatedInGrace", res)
		}
		// Both successors are valid tokens of the live session.
		for _, h := range []string{"r2", "r2b"} {
			if res, _ := tok.Rotate(ctx, h, refresh(clock, h+"-next"), clock.Now(), grace); res.Outcome != store.Rotated {
				t.Fatalf("rotate %s = %+v, want Rotated", h, res)
			}
		}
		clock.Advance(time.Millisecond) // r1 was spent exactly grace ago: a replay
		res, err = tok.Rotate(ctx, "r1", refresh(clock, "evil"), clock.Now(), grace)
		mustNil(t, err, "r1 after the grace")
		if res.Outcome != store.RotateReused || res.Session.RevokeReason != store.RevokeReuse {
			t.Fatalf("r1 after the grace = %+v, want RotateReused", res)
		}
		if res, _ := tok.Rotate(ctx, "r2-next", refresh(clock, "z"), clock.Now(), grace); res.Outcome != store.RotateRevoked {
			t.Fatalf("newest token after the replay = %+v, want RotateRevoked", res)
		}

		// The players' sessions follow the same rule.
		x := s.Rooms()
		now := clock.Now()
		mustNil(t, x.CreateUser(ctx, store.RoomUser{ID: "u1", Username: "ann", PasswordHash: "h", CreatedAt: now}), "create room user")
		rt := store.RefreshToken{Hash: "p1", SessionID: "rs1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		mustNil(t, x.CreateSession(ctx, store.RoomSession{ID: "rs1", UserID: "u1", CreatedAt: now, ExpiresAt: rt.ExpiresAt}, &rt), "create room session")
		for _, want := range []store.RotateOutcome{store.Rotated, store.RotatedInGrace} {
			if res, _ := x.Rotate(ctx, "p1", refresh(clock, "p2-"+fmt.Sprint(want)), clock.Now(), grace); res.Outcome != want {
				t.Fatalf("room rotate p1 = %+v, want %v", res, want)
			}
		}
		clock.Advance(grace)
		if res, _ := x.Rotate(ctx, "p1", refresh(clock, "p3"), clock.Now(), grace); res.Outcome != store.RotateReused {
			t.Fatalf("room rotate p1 after the grace = %+v, want RotateReused", res)
		}
	}, storetest.WithClock(clock.Now))
}

func TestTokensExpiryDisableAndLogout(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		tok := s.Tokens()
		mustNil(t, s.Users().Create(ctx, store.User{Username: "bob", PasswordHash: "h"}), "create user")
		newSession(t, s, clock, "bob", "s1", "r1")
		newSession(t, s, clock, "bob", "s2", "q1")
		newSession(t, s, clock, "bob", "s3", "p1")

		clock.Advance(time.Hour) // exactly at expiry: expired
		if res, _ := tok.Rotate(ctx, "r1", refresh(clock, "r2"), clock.Now(), 0); res.Outcome != store.RotateExpired {
			t.Fatalf("expired token = %+v", res)
		}
		clock.Advance(-time.Minute)

		sess, err := tok.RevokeByRefreshToken(ctx, "q1", store.RevokeLogout)
		mustNil(t, err, "logout")
		if sess.ID != "s2" || sess.RevokeReason != store.RevokeLogout || sess.RevokedAt.IsZero() {
			t.Fatalf("logout returned %+v", sess)
		}
		again, err := tok.RevokeByRefreshToken(ctx, "q1", "other")
		mustNil(t, err, "second logout")
		if again.RevokeReason != store.RevokeLogout {
			t.Fatalf("second logout replaced the reason: %+v", again)
		}
		if res, _ := tok.Rotate(ctx, "q1", refresh(clock, "q2"), clock.Now(), 0); res.Outcome != store.RotateRevoked {
			t.Fatalf("rotate after logout = %+v", res)
		}
		_, err = tok.RevokeByRefreshToken(ctx, "nope", store.RevokeLogout)
		wantErr(t, err, store.ErrNotFound, "logout unknown")

		mustNil(t, s.Users().SetDisabled(ctx, "bob", true), "disable")
		st, err := tok.SessionState(ctx, "s3")
		mustNil(t, err, "session state")
		if !st.UserDisabled || st.Session.RevokeReason != store.RevokeUserDisabled {
			t.Fatalf("after disable: %+v", st)
		}
		_, err = tok.SessionState(ctx, "nope")
		wantErr(t, err, store.ErrNotFound, "unknown session")

		// Password changes revoke every session too.
		mustNil(t, s.Users().Create(ctx, store.User{Username: "carol", PasswordHash: "h"}), "create carol")
		newSession(t, s, clock, "carol", "c1", "c1r")
		mustNil(t, s.Users().SetPasswordHash(ctx, "carol", "h2"), "passwd")
		if st, _ := tok.SessionState(ctx, "c1"); st.Session.RevokeReason != store.RevokePasswordChanged {
			t.Fatalf("after password change: %+v", st)
		}

		err = tok.CreateSession(ctx, store.Session{ID: "z", Username: "ghost", CreatedAt: clock.Now()},
			store.RefreshToken{Hash: "zz", ExpiresAt: clock.Now().Add(time.Hour)})
		wantErr(t, err, store.ErrNotFound, "session for unknown user")

		// Prune removes sessions dead before the cutoff, and their tokens.
		n, err := tok.Prune(ctx, clock.Now().Add(2*time.Hour))
		mustNil(t, err, "prune")
		if n != 4 {
			t.Fatalf("pruned %d sessions, want 4", n)
		}
		if res, _ := tok.Rotate(ctx, "q1", refresh(clock, "q3"), clock.Now(), 0); res.Outcome != store.RotateUnknown {
			t.Fatalf("pruned token still known: %+v", res)
		}
	}, storetest.WithClock(clock.Now))
}

// TestTokensConcurrentRotate presents one refresh token from many goroutines
// at once: exactly one may spend it. Without a reuse grace the others are
// replays and the session is revoked; within the grace each gets its own
// new pair and the session lives on.
func TestTokensConcurrentRotate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		grace   time.Duration
		others  []store.RotateOutcome
		revoked bool
	}{
		{"no grace", 0, []store.RotateOutcome{store.RotateReused, store.RotateRevoked}, true},
		{"within the grace", time.Minute, []store.RotateOutcome{store.RotatedInGrace}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, func(t *testing.T, s *store.Store) {
				ctx := ctxT(t)
				clock := newFakeClock(time.Now())
				mustNil(t, s.Users().Create(ctx, store.User{Username: "bob", PasswordHash: "h"}), "create user")
				newSession(t, s, clock, "bob", "s1", "r1")
				const n = 8
				outcomes := make([]store.RotateOutcome, n)
				errs := make([]error, n)
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() {
						res, err := s.Tokens().Rotate(ctx, "r1", refresh(clock, fmt.Sprintf("next-%d", i)), clock.Now(), tc.grace)
						outcomes[i], errs[i] = res.Outcome, err
					})
				}
				wg.Wait()
				rotated := 0
				for i := range n {
					mustNil(t, errs[i], "rotate")
					switch {
					case outcomes[i] == store.Rotated:
						rotated++
					case !slices.Contains(tc.others, outcomes[i]):
						t.Fatalf("outcome %d = %v, want Rotated or one of %v", i, outcomes[i], tc.others)
					}
				}
				if rotated != 1 {
					t.Fatalf("%d presenters spent the token first, want exactly 1", rotated)
				}
				if st, _ := s.Tokens().SessionState(ctx, "s1"); st.Session.RevokedAt.IsZero() == tc.revoked {
					t.Fatalf("session after concurrent renewals: %+v, want revoked %v", st.Session, tc.revoked)
				}
			})
		})
	}
}

func TestSigningKeyFirstWins(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		k1, err := s.Tokens().EnsureSigningKey(ctx, "default", []byte("first-secret"))
		mustNil(t, err, "ensure 1")
		k2, err := s.Tokens().EnsureSigningKey(ctx, "default", []byte("second-secret"))
		mustNil(t, err, "ensure 2")
		if !bytes.Equal(k1, []byte("first-secret")) || !bytes.Equal(k2, k1) {
			t.Fatalf("keys %q, %q: the first stored key must win", k1, k2)
		}
		_, err = s.Tokens().EnsureSigningKey(ctx, "", []byte("x"))
		wantErr(t, err, store.ErrInvalidArgument, "empty kid")
	})
}
