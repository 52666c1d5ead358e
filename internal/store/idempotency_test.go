package store_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func TestIdempotencyLifecycle(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(t0)
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		idem := s.Idempotency()
		scope := "g/prod/player.ban/alice"

		rec, created, err := idem.Begin(ctx, scope, "k1", "hash-a", time.Hour)
		mustNil(t, err, "begin")
		if !created || rec.State != store.RecordPending || rec.RequestHash != "hash-a" {
			t.Fatalf("first Begin: created=%v rec=%+v", created, rec)
		}
		if want := clock.Now().Add(time.Hour); !rec.ExpiresAt.Equal(want) {
			t.Fatalf("ExpiresAt = %v, want %v", rec.ExpiresAt, want)
		}

		// A retry while the first is in flight sees the pending claim.
		rec, created, err = idem.Begin(ctx, scope, "k1", "hash-b", time.Hour)
		mustNil(t, err, "begin again")
		if created || rec.State != store.RecordPending || rec.RequestHash != "hash-a" {
			t.Fatalf("second Begin: created=%v rec=%+v", created, rec)
		}
		// The same key in another scope is independent.
		_, created, err = idem.Begin(ctx, "g/dev/player.ban/alice", "k1", "hash-a", time.Hour)
		mustNil(t, err, "begin other scope")
		if !created {
			t.Fatal("key in another scope was not created")
		}

		mustNil(t, idem.Complete(ctx, scope, "k1", []byte(`{"ok":true}`)), "complete")
		rec, created, err = idem.Begin(ctx, scope, "k1", "hash-a", time.Hour)
		mustNil(t, err, "begin after complete")
		if created || rec.State != store.RecordDone || string(rec.Response) != `{"ok":true}` {
			t.Fatalf("Begin after Complete: created=%v rec=%+v", created, rec)
		}
		wantErr(t, idem.Complete(ctx, scope, "k1", []byte("again")), store.ErrConflict, "complete twice")
		wantErr(t, idem.Release(ctx, scope, "k1"), store.ErrConflict, "release done")
		wantErr(t, idem.Complete(ctx, scope, "missing", nil), store.ErrNotFound, "complete missing")
		wantErr(t, idem.Release(ctx, scope, "missing"), store.ErrNotFound, "release missing")

		// Release frees a pending key for the retry.
		_, created, err = idem.Begin(ctx, scope, "k2", "h", time.Hour)
		mustNil(t, err, "begin k2")
		if !created {
			t.Fatal("k2 not created")
		}
		mustNil(t, idem.Release(ctx, scope, "k2"), "release k2")
		_, err = idem.Get(ctx, scope, "k2")
		wantErr(t, err, store.ErrNotFound, "get released")
		_, created, err = idem.Begin(ctx, scope, "k2", "h", time.Hour)
		mustNil(t, err, "begin k2 after release")
		if !created {
			t.Fatal("k2 not claimable after Release")
		}

		// An empty response is stored as empty, not lost.
		mustNil(t, idem.Complete(ctx, scope, "k2", nil), "complete with nil")
		rec, err = idem.Get(ctx, scope, "k2")
		mustNil(t, err, "get k2")
		if rec.State != store.RecordDone || rec.Response == nil || len(rec.Response) != 0 {
			t.Fatalf("k2 = %+v, want done with empty response", rec)
		}

		_, _, err = idem.Begin(ctx, "", "k", "h", time.Hour)
		wantErr(t, err, store.ErrInvalidArgument, "empty scope key")
		_, _, err = idem.Begin(ctx, scope, "k", "h", 0)
		wantErr(t, err, store.ErrInvalidArgument, "zero ttl")
	}, storetest.WithClock(clock.Now))
}

func TestIdempotencyExpiry(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		idem := s.Idempotency()
		now := time.Now()
		// Records with expiries in the past and future relative to "now".
		for i := range 5 {
			_, created, err := idem.Begin(ctx, "scope", fmt.Sprintf("old%d", i), "h", time.Millisecond)
			mustNil(t, err, "begin old")
			if !created {
				t.Fatal("old not created")
			}
		}
		_, _, err := idem.Begin(ctx, "scope", "fresh", "h", time.Hour)
		mustNil(t, err, "begin fresh")
		mustNil(t, idem.Complete(ctx, "scope", "old0", []byte("r")), "complete old0")

		n, err := idem.PruneExpired(ctx, now.Add(time.Minute))
		mustNil(t, err, "prune")
		if n != 5 {
			t.Fatalf("PruneExpired deleted %d, want 5", n)
		}
		if _, err := idem.Get(ctx, "scope", "fresh"); err != nil {
			t.Fatalf("fresh record pruned: %v", err)
		}
		n, err = idem.PruneExpired(ctx, now.Add(time.Minute))
		mustNil(t, err, "prune again")
		if n != 0 {
			t.Fatalf("second PruneExpired deleted %d, want 0", n)
		}
	})
}

// TestIdempotencyExpiredRecordIsReclaimed: an expired record that was not
// pruned yet does not block a new request.
func TestIdempotencyExpiredRecordIsReclaimed(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(t0)
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		idem := s.Idempotency()
		_, _, err := idem.Begin(ctx, "sc", "k", "old", time.Minute)
		mustNil(t, err, "begin")
		mustNil(t, idem.Complete(ctx, "sc", "k", []byte("old response")), "complete")

		clock.Advance(59 * time.Second)
		rec, created, err := idem.Begin(ctx, "sc", "k", "new", time.Minute)
		mustNil(t, err, "begin before expiry")
		if created || string(rec.Response) != "old response" {
			t.Fatalf("before expiry: created=%v rec=%+v", created, rec)
		}

		clock.Advance(time.Second) // now == expires_at: expired
		rec, created, err = idem.Begin(ctx, "sc", "k", "new", time.Minute)
		mustNil(t, err, "begin after expiry")
		if !created || rec.State != store.RecordPending || rec.RequestHash != "new" {
			t.Fatalf("after expiry: created=%v rec=%+v", created, rec)
		}
		got, err := idem.Get(ctx, "sc", "k")
		mustNil(t, err, "get")
		if got.Response != nil || got.RequestHash != "new" || !got.ExpiresAt.Equal(clock.Now().Add(time.Minute)) {
			t.Fatalf("reclaimed record = %+v", got)
		}
	}, storetest.WithClock(clock.Now))
}

// TestIdempotencyBeginRace: goroutines racing Begin on one key — exactly one
// is created, the others all see that one's claim.
func TestIdempotencyBeginRace(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		const racers, rounds = 8, 10
		for round := range rounds {
			key := fmt.Sprintf("race-%d", round)
			var (
				wg      sync.WaitGroup
				start   = make(chan struct{})
				created = make([]bool, racers)
				recs    = make([]*store.Record, racers)
				errs    = make([]error, racers)
			)
			for i := range racers {
				wg.Go(func() {
					<-start
					recs[i], created[i], errs[i] = s.Idempotency().Begin(ctx, "scope", key, fmt.Sprintf("h%d", i), time.Hour)
				})
			}
			close(start)
			wg.Wait()
			winners := 0
			winner := ""
			for i := range racers {
				mustNil(t, errs[i], "begin")
				if created[i] {
					winners++
					winner = recs[i].RequestHash
				}
			}
			if winners != 1 {
				t.Fatalf("round %d: %d racers created the record, want exactly 1", round, winners)
			}
			for i := range racers {
				if recs[i].RequestHash != winner {
					t.Fatalf("round %d: racer %d saw hash %q, winner was %q", round, i, recs[i].RequestHash, winner)
				}
			}
		}
	})
}

// TestIdempotencyKeyBounded: a key over 128 bytes (or a huge scope) is
// refused before anything is stored.
func TestIdempotencyKeyBounded(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		idem := s.Idempotency()
		for _, c := range []struct{ scope, key string }{
			{"g/e/f/alice", strings.Repeat("k", 3<<20)},
			{"g/e/f/alice", strings.Repeat("k", store.MaxIdempotencyKeyLen+1)},
			{strings.Repeat("s", 1<<20), "k"},
		} {
			if _, _, err := idem.Begin(ctx, c.scope, c.key, "h", time.Hour); !errors.Is(err, store.ErrInvalidArgument) {
				t.Fatalf("Begin with a %d-byte key, %d-byte scope: %v, want ErrInvalidArgument", len(c.key), len(c.scope), err)
			}
			if _, err := idem.Get(ctx, c.scope, c.key); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("a refused key was stored: %v", err)
			}
		}
		if _, created, err := idem.Begin(ctx, "g/e/f/alice", strings.Repeat("k", store.MaxIdempotencyKeyLen), "h", time.Hour); err != nil || !created {
			t.Fatalf("a 128-byte key: %v %v", created, err)
		}
	})
}
