package store_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

// finishedJob creates a job that ended at ended with the given terminal
// status and two events.
func finishedJob(t *testing.T, s *store.Store, id, status string, ended time.Time) {
	t.Helper()
	ctx := ctxT(t)
	mustNil(t, s.Jobs().Create(ctx, newJob(id, ended.Add(-time.Minute))), "create "+id)
	mustNil(t, s.Jobs().AppendEvents(ctx, id, []store.Event{ev(1, "start"), ev(2, "done")}), "events "+id)
	ok, err := s.Jobs().UpdateStatus(ctx, id, nil, status, store.SetEndedAt(ended))
	mustNil(t, err, "finish "+id)
	if !ok {
		t.Fatalf("finishing %s did not apply", id)
	}
}

func TestJobsPrune(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		jobs := s.Jobs()
		finishedJob(t, s, "old-completed", store.JobCompleted, t0.Add(-48*time.Hour))
		finishedJob(t, s, "old-failed", store.JobFailed, t0.Add(-47*time.Hour))
		finishedJob(t, s, "old-canceled", store.JobCanceled, t0.Add(-46*time.Hour))
		finishedJob(t, s, "recent", store.JobCompleted, t0.Add(-time.Hour))
		// Unfinished jobs are never pruned, however old.
		mustNil(t, jobs.Create(ctx, newJob("old-running", t0.Add(-72*time.Hour))), "create running")
		_, err := jobs.UpdateStatus(ctx, "old-running", nil, store.JobRunning)
		mustNil(t, err, "start running")
		mustNil(t, jobs.Create(ctx, newJob("old-pending", t0.Add(-72*time.Hour))), "create pending")

		// keepNewest=2 keeps "recent" and "old-canceled" although the latter is old.
		n, err := jobs.Prune(ctx, t0.Add(-24*time.Hour), 2)
		mustNil(t, err, "prune keeping 2")
		if n != 2 {
			t.Fatalf("Prune deleted %d, want 2", n)
		}
		remaining := listAll(t, s, store.JobFilter{})
		slices.Sort(remaining)
		if want := []string{"old-canceled", "old-pending", "old-running", "recent"}; !slices.Equal(remaining, want) {
			t.Fatalf("after prune: %v, want %v", remaining, want)
		}
		// Events went with their jobs.
		for _, id := range []string{"old-completed", "old-failed"} {
			evs, err := jobs.Events(ctx, id, 0, 10)
			mustNil(t, err, "events")
			if len(evs) != 0 {
				t.Fatalf("events of pruned job %s survived: %v", id, seqs(evs))
			}
			_, err = jobs.LastSeq(ctx, id)
			wantErr(t, err, store.ErrNotFound, "last seq of pruned job")
		}
		evs, err := jobs.Events(ctx, "recent", 0, 10)
		mustNil(t, err, "events of kept job")
		if len(evs) != 2 {
			t.Fatalf("kept job lost events: %v", seqs(evs))
		}

		// keepNewest larger than the finished set prunes nothing.
		n, err = jobs.Prune(ctx, t0, 10)
		mustNil(t, err, "prune keeping 10")
		if n != 0 {
			t.Fatalf("Prune with a large keep deleted %d", n)
		}
		// keepNewest=0 applies the age cut only.
		n, err = jobs.Prune(ctx, t0.Add(-24*time.Hour), 0)
		mustNil(t, err, "prune keeping 0")
		if n != 1 {
			t.Fatalf("Prune(keep 0) deleted %d, want 1 (old-canceled)", n)
		}
		if _, err := jobs.Get(ctx, "recent"); err != nil {
			t.Fatalf("recent job pruned by age cut: %v", err)
		}
	})
}

// TestJobsPruneManyBatches crosses the prune batch size.
func TestJobsPruneManyBatches(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		n := 2*store.PruneJobsBatch + 7
		for i := range n {
			id := fmt.Sprintf("j%04d", i)
			mustNil(t, s.Jobs().Create(ctx, &store.Job{ID: id, GameID: "g", Env: "e", FunctionID: "f",
				Status: store.JobCompleted, CreatedAt: t0, EndedAt: t0.Add(time.Duration(i) * time.Millisecond)}), "create")
		}
		deleted, err := s.Jobs().Prune(ctx, t0.Add(time.Hour), 5)
		mustNil(t, err, "prune")
		if deleted != int64(n-5) {
			t.Fatalf("Prune deleted %d, want %d", deleted, n-5)
		}
		left := listAll(t, s, store.JobFilter{})
		slices.Sort(left)
		var want []string
		for i := n - 5; i < n; i++ {
			want = append(want, fmt.Sprintf("j%04d", i))
		}
		if !slices.Equal(left, want) {
			t.Fatalf("kept %v, want the 5 newest %v", left, want)
		}
	})
}
