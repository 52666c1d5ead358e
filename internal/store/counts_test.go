package store_test

import (
	"errors"
	"maps"
	"testing"

	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

func TestCountByStatus(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		for i, st := range []string{store.JobPending, store.JobRunning, store.JobRunning, store.JobFailed} {
			j := newJob("job-"+string(rune('a'+i)), t0)
			j.Status = st
			mustNil(t, s.Jobs().Create(ctx, j), "create")
		}
		got, err := s.CountByStatus(ctx, store.CountJobs)
		mustNil(t, err, "count jobs")
		if want := map[string]int64{"pending": 1, "running": 2, "failed": 1}; !maps.Equal(got, want) {
			t.Fatalf("jobs by status %v, want %v", got, want)
		}
		for _, table := range []store.StatusCounted{store.CountProcesses, store.CountSessions} {
			got, err := s.CountByStatus(ctx, table)
			if err != nil || len(got) != 0 {
				t.Fatalf("%s by status on an empty table: %v, %v", table, got, err)
			}
		}
		if _, err := s.CountByStatus(ctx, "users; --"); !errors.Is(err, store.ErrInvalidArgument) {
			t.Fatalf("unknown table: %v, want ErrInvalidArgument", err)
		}
	})
}
