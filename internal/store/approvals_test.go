package store_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

func newApproval(id string, clock *fakeClock) store.Approval {
	return store.Approval{ID: id, Requester: "operator:amy", Game: "demo", Env: "prod", Function: "player.ban",
		Payload: []byte(`{"player":"p1","reason":"cheating"}`), Options: []byte(`{"timeout":5}`),
		SensitiveFields: []string{"/reason"}, ExpiresAt: clock.Now().Add(time.Hour)}
}

func TestApprovalsLifecycle(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		ap := s.Approvals()
		mustNil(t, ap.Create(ctx, newApproval("a1", clock)), "create a1")
		wantErr(t, ap.Create(ctx, newApproval("a1", clock)), store.ErrConflict, "duplicate id")
		bad := newApproval("a2", clock)
		bad.Requester = ""
		wantErr(t, ap.Create(ctx, bad), store.ErrInvalidArgument, "no requester")
		bad = newApproval("a2", clock)
		bad.ExpiresAt = time.Time{}
		wantErr(t, ap.Create(ctx, bad), store.ErrInvalidArgument, "no expiry")

		got, err := ap.Get(ctx, "a1")
		mustNil(t, err, "get")
		if got.Status != store.ApprovalPending || string(got.Payload) != `{"player":"p1","reason":"cheating"}` ||
			string(got.Options) != `{"timeout":5}` || !slices.Equal(got.SensitiveFields, []string{"/reason"}) ||
			!got.CreatedAt.Equal(clock.Now()) {
			t.Fatalf("Get = %+v", got)
		}
		_, err = ap.Get(ctx, "nope")
		wantErr(t, err, store.ErrNotFound, "get unknown")

		clock.Advance(time.Minute)
		got, err = ap.Decide(ctx, "a1", store.ApprovalApproved, "operator:bob", "ok", clock.Now())
		mustNil(t, err, "approve")
		if got.Status != store.ApprovalApproved || got.DecidedBy != "operator:bob" || got.Reason != "ok" || !got.DecidedAt.Equal(clock.Now()) {
			t.Fatalf("after approve: %+v", got)
		}
		got, err = ap.Decide(ctx, "a1", store.ApprovalRejected, "operator:cy", "no", clock.Now())
		wantErr(t, err, store.ErrConflict, "decide twice")
		if got.Status != store.ApprovalApproved || got.DecidedBy != "operator:bob" {
			t.Fatalf("a second decision changed the request: %+v", got)
		}
		_, err = ap.Decide(ctx, "a1", store.ApprovalExecuted, "x", "", clock.Now())
		wantErr(t, err, store.ErrInvalidArgument, "decide as executed")
		_, err = ap.Decide(ctx, "nope", store.ApprovalApproved, "x", "", clock.Now())
		wantErr(t, err, store.ErrNotFound, "decide unknown")

		got, err = ap.MarkExecuted(ctx, "a1", "job-1")
		mustNil(t, err, "executed")
		if got.Status != store.ApprovalExecuted || got.JobID != "job-1" {
			t.Fatalf("after MarkExecuted: %+v", got)
		}
		_, err = ap.MarkFailed(ctx, "a1", "late")
		wantErr(t, err, store.ErrConflict, "fail an executed request")

		// Expiry: a request cannot be decided at or after its expiry, and the
		// sweep marks it expired.
		mustNil(t, ap.Create(ctx, newApproval("a3", clock)), "create a3")
		mustNil(t, ap.Create(ctx, newApproval("a4", clock)), "create a4")
		clock.Advance(time.Hour)
		got, err = ap.Decide(ctx, "a3", store.ApprovalApproved, "operator:bob", "", clock.Now())
		wantErr(t, err, store.ErrConflict, "decide at expiry")
		if got.Status != store.ApprovalPending {
			t.Fatalf("status = %s", got.Status)
		}
		expired, err := ap.ExpireDue(ctx, clock.Now())
		mustNil(t, err, "expire")
		if len(expired) != 2 || expired[0].Status != store.ApprovalExpired {
			t.Fatalf("ExpireDue = %+v", expired)
		}
		if again, _ := ap.ExpireDue(ctx, clock.Now()); len(again) != 0 {
			t.Fatalf("second sweep expired %d", len(again))
		}

		// A request approved long ago that never started is failed by the
		// stale sweep; a fresh approval is left alone.
		mustNil(t, ap.Create(ctx, newApproval("a5", clock)), "create a5")
		mustNil(t, ap.Create(ctx, newApproval("a6", clock)), "create a6")
		_, err = ap.Decide(ctx, "a5", store.ApprovalApproved, "operator:bob", "", clock.Now())
		mustNil(t, err, "approve a5")
		clock.Advance(10 * time.Minute)
		_, err = ap.Decide(ctx, "a6", store.ApprovalApproved, "operator:bob", "", clock.Now())
		mustNil(t, err, "approve a6")
		stale, err := ap.FailStale(ctx, clock.Now().Add(-5*time.Minute), "interrupted")
		mustNil(t, err, "fail stale")
		if len(stale) != 1 || stale[0].ID != "a5" || stale[0].Status != store.ApprovalFailed || stale[0].Error != "interrupted" {
			t.Fatalf("FailStale = %+v", stale)
		}
		got, err = ap.MarkFailed(ctx, "a6", "no instance")
		mustNil(t, err, "mark failed")
		if got.Status != store.ApprovalFailed || got.Error != "no instance" {
			t.Fatalf("after MarkFailed: %+v", got)
		}
	}, storetest.WithClock(clock.Now))
}

func TestApprovalsListAndRace(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		clock := newFakeClock(time.Now())
		ap := s.Approvals()
		for i := range 12 {
			a := newApproval(fmt.Sprintf("id-%02d", i), clock)
			if i%3 == 0 {
				a.Game = "other"
			}
			a.CreatedAt = clock.Now().Add(time.Duration(i) * time.Millisecond)
			mustNil(t, ap.Create(ctx, a), "create")
		}
		var ids []string
		tok := ""
		for range 10 {
			page, next, err := ap.List(ctx, store.ApprovalFilter{Game: "demo", Status: store.ApprovalPending, PageSize: 3, PageToken: tok})
			mustNil(t, err, "list")
			for _, a := range page {
				ids = append(ids, a.ID)
			}
			if tok = next; tok == "" {
				break
			}
		}
		want := []string{"id-11", "id-10", "id-08", "id-07", "id-05", "id-04", "id-02", "id-01"}
		if !slices.Equal(ids, want) {
			t.Fatalf("paged ids = %v, want %v", ids, want)
		}
		_, _, err := ap.List(ctx, store.ApprovalFilter{Status: "bogus"})
		wantErr(t, err, store.ErrInvalidArgument, "bad status")
		_, _, err = ap.List(ctx, store.ApprovalFilter{PageToken: "%%%"})
		wantErr(t, err, store.ErrInvalidArgument, "bad token")
		for _, m := range metaStrings {
			page, _, err := ap.List(ctx, store.ApprovalFilter{Game: m, Env: m, Requester: m})
			mustNil(t, err, "list meta")
			if len(page) != 0 {
				t.Fatalf("meta filter %q matched %d", m, len(page))
			}
		}

		// Concurrent deciders: exactly one wins.
		const n = 6
		var wg sync.WaitGroup
		wins := make(chan string, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				who := fmt.Sprintf("operator:d%d", i)
				if _, err := ap.Decide(ctx, "id-01", store.ApprovalApproved, who, "", clock.Now()); err == nil {
					wins <- who
				}
			}()
		}
		wg.Wait()
		close(wins)
		var winners []string
		for w := range wins {
			winners = append(winners, w)
		}
		got, _ := ap.Get(ctx, "id-01")
		if len(winners) != 1 || got.DecidedBy != winners[0] {
			t.Fatalf("winners %v, decided_by %q", winners, got.DecidedBy)
		}
	})
}
