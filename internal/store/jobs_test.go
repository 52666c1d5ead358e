package store_test

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

func newJob(id string, created time.Time) *store.Job {
	return &store.Job{ID: id, GameID: "g", Env: "prod", FunctionID: "player.ban", CreatedAt: created}
}

// utcJob puts a job's times in UTC so DeepEqual compares instants only.
func utcJob(j store.Job) store.Job {
	for _, p := range []*time.Time{&j.CreatedAt, &j.StartedAt, &j.EndedAt, &j.UpdatedAt} {
		*p = p.UTC()
	}
	return j
}

func TestJobsCreateGet(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(t0)
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		jobs := s.Jobs()
		full := &store.Job{
			ID: "job-1", GameID: "g", Env: "prod", FunctionID: "player.ban", Status: store.JobRunning,
			Instance: "agent-1/inst-1", Payload: []byte(`{"player_id":"p1"}`), Actor: "alice",
			IdempotencyKey: "idem-1", CreatedAt: t0.Add(-time.Hour), StartedAt: t0.Add(-time.Minute),
			Progress: 0.25, Result: []byte(`{"x":1}`), Error: "boom", ErrorCode: "E_BOOM", LastSeq: 0,
		}
		mustNil(t, jobs.Create(ctx, full), "create")
		got, err := jobs.Get(ctx, "job-1")
		mustNil(t, err, "get")
		want := *full
		want.UpdatedAt = clock.Now()
		if !reflect.DeepEqual(utcJob(*got), utcJob(want)) {
			t.Fatalf("Get =\n%+v\nwant\n%+v", *got, want)
		}

		// Defaults: pending, created now; written back.
		minimal := &store.Job{ID: "job-2", GameID: "g", Env: "prod", FunctionID: "f"}
		mustNil(t, jobs.Create(ctx, minimal), "create minimal")
		if minimal.Status != store.JobPending || !minimal.CreatedAt.Equal(clock.Now()) {
			t.Fatalf("defaults not applied: %+v", minimal)
		}
		got, err = jobs.Get(ctx, "job-2")
		mustNil(t, err, "get minimal")
		if got.Payload != nil || got.Result != nil || !got.StartedAt.IsZero() || !got.EndedAt.IsZero() {
			t.Fatalf("unset fields not zero: %+v", got)
		}

		wantErr(t, jobs.Create(ctx, newJob("job-1", t0)), store.ErrConflict, "duplicate id")
		_, err = jobs.Get(ctx, "nope")
		wantErr(t, err, store.ErrNotFound, "get missing")
		wantErr(t, jobs.Create(ctx, &store.Job{GameID: "g", Env: "e", FunctionID: "f"}), store.ErrInvalidArgument, "no id")
		wantErr(t, jobs.Create(ctx, &store.Job{ID: "x", GameID: "g", Env: "e", FunctionID: "f", Status: "weird"}), store.ErrInvalidArgument, "bad status")
		wantErr(t, jobs.Create(ctx, &store.Job{ID: "x", Env: "e", FunctionID: "f"}), store.ErrInvalidArgument, "no game")
	}, storetest.WithClock(clock.Now))
}

func TestJobsUpdateStatusCAS(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(t0)
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		jobs := s.Jobs()
		mustNil(t, jobs.Create(ctx, newJob("j", t0)), "create")

		ok, err := jobs.UpdateStatus(ctx, "j", []string{store.JobPending}, store.JobRunning,
			store.SetInstance("a/1"), store.SetStartedAt(t0.Add(time.Second)))
		mustNil(t, err, "pending->running")
		if !ok {
			t.Fatal("pending->running did not apply")
		}
		ok, err = jobs.UpdateStatus(ctx, "j", []string{store.JobPending}, store.JobRunning)
		mustNil(t, err, "pending->running again")
		if ok {
			t.Fatal("CAS applied although the status is no longer pending")
		}
		clock.Advance(time.Minute)
		ok, err = jobs.UpdateStatus(ctx, "j", []string{store.JobRunning}, store.JobRunning, store.SetProgress(0.5))
		mustNil(t, err, "progress")
		if !ok {
			t.Fatal("running->running with progress did not apply")
		}
		ok, err = jobs.UpdateStatus(ctx, "j", []string{store.JobPending, store.JobRunning}, store.JobFailed,
			store.SetEndedAt(t0.Add(2*time.Minute)), store.SetError("E_X", "it broke"), store.SetResult([]byte(`{}`)))
		mustNil(t, err, "running->failed")
		if !ok {
			t.Fatal("running->failed did not apply")
		}
		got, err := jobs.Get(ctx, "j")
		mustNil(t, err, "get")
		if got.Status != store.JobFailed || got.Instance != "a/1" || !got.StartedAt.Equal(t0.Add(time.Second)) ||
			!got.EndedAt.Equal(t0.Add(2*time.Minute)) || got.Progress != 0.5 || got.ErrorCode != "E_X" ||
			got.Error != "it broke" || string(got.Result) != "{}" || !got.UpdatedAt.Equal(clock.Now()) {
			t.Fatalf("job after updates = %+v", got)
		}

		// An empty from never reopens a terminal job; naming it does.
		ok, err = jobs.UpdateStatus(ctx, "j", nil, store.JobRunning)
		mustNil(t, err, "terminal with empty from")
		if ok {
			t.Fatal("empty from reopened a terminal job")
		}
		ok, err = jobs.UpdateStatus(ctx, "j", []string{store.JobFailed}, store.JobCanceled)
		mustNil(t, err, "explicit terminal from")
		if !ok {
			t.Fatal("explicit from=failed did not apply")
		}

		_, err = jobs.UpdateStatus(ctx, "missing", []string{store.JobPending}, store.JobRunning)
		wantErr(t, err, store.ErrNotFound, "missing job")
		_, err = jobs.UpdateStatus(ctx, "j", nil, "bogus")
		wantErr(t, err, store.ErrInvalidArgument, "bad target")
		_, err = jobs.UpdateStatus(ctx, "j", []string{"bogus"}, store.JobRunning)
		wantErr(t, err, store.ErrInvalidArgument, "bad from")
	}, storetest.WithClock(clock.Now))
}

// TestJobsUpdateStatusRace: of goroutines racing the same transition, exactly
// one applies.
func TestJobsUpdateStatusRace(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		const racers, rounds = 8, 5
		for round := range rounds {
			id := fmt.Sprintf("race-%d", round)
			mustNil(t, s.Jobs().Create(ctx, newJob(id, t0)), "create")
			var wg sync.WaitGroup
			start := make(chan struct{})
			applied := make([]bool, racers)
			errs := make([]error, racers)
			for i := range racers {
				wg.Go(func() {
					<-start
					applied[i], errs[i] = s.Jobs().UpdateStatus(ctx, id, []string{store.JobPending}, store.JobRunning,
						store.SetInstance(fmt.Sprintf("a/%d", i)))
				})
			}
			close(start)
			wg.Wait()
			winners, winner := 0, -1
			for i := range racers {
				mustNil(t, errs[i], "update")
				if applied[i] {
					winners++
					winner = i
				}
			}
			if winners != 1 {
				t.Fatalf("round %d: %d updates applied, want 1", round, winners)
			}
			got, err := s.Jobs().Get(ctx, id)
			mustNil(t, err, "get")
			if got.Instance != fmt.Sprintf("a/%d", winner) {
				t.Fatalf("round %d: instance %q, want the winner's a/%d", round, got.Instance, winner)
			}
		}
	})
}
