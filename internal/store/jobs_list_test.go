package store_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

func ids(jobs []store.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

// listAll pages through List with the given page size and returns every id.
func listAll(t *testing.T, s *store.Store, f store.JobFilter) []string {
	t.Helper()
	var all []string
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatal("List did not stop paging")
		}
		jobs, next, err := s.Jobs().List(ctxT(t), f)
		mustNil(t, err, "list")
		if len(jobs) > f.PageSize && f.PageSize > 0 {
			t.Fatalf("page of %d jobs exceeds page size %d", len(jobs), f.PageSize)
		}
		all = append(all, ids(jobs)...)
		if next == "" {
			return all
		}
		f.PageToken = next
	}
}

func TestJobsListPaging(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		// 23 jobs; groups of three share a creation time, so the id breaks ties.
		var want []string
		for i := range 23 {
			id := fmt.Sprintf("job-%02d", i)
			mustNil(t, s.Jobs().Create(ctx, newJob(id, t0.Add(time.Duration(i/3)*time.Second))), "create")
			want = append(want, id)
		}
		slices.Reverse(want) // newest first; ties by id descending
		for _, size := range []int{1, 5, 22, 23, 24, 0} {
			got := listAll(t, s, store.JobFilter{PageSize: size})
			if !slices.Equal(got, want) {
				t.Fatalf("page size %d: got %v, want %v", size, got, want)
			}
		}
		// Jobs created between pages neither repeat nor shift entries.
		first, next, err := s.Jobs().List(ctx, store.JobFilter{PageSize: 10})
		mustNil(t, err, "first page")
		mustNil(t, s.Jobs().Create(ctx, newJob("newer", t0.Add(time.Hour))), "create newer")
		rest := listAll(t, s, store.JobFilter{PageSize: 10, PageToken: next})
		if got := append(ids(first), rest...); !slices.Equal(got, want) {
			t.Fatalf("paging across an insert: got %v, want %v", got, want)
		}

		_, _, err = s.Jobs().List(ctx, store.JobFilter{PageToken: "not-a-token"})
		wantErr(t, err, store.ErrInvalidArgument, "malformed token")
		_, _, err = s.Jobs().List(ctx, store.JobFilter{PageToken: "e30"}) // "{}"
		wantErr(t, err, store.ErrInvalidArgument, "empty token")
		_, _, err = s.Jobs().List(ctx, store.JobFilter{Status: "sleeping"})
		wantErr(t, err, store.ErrInvalidArgument, "bad status filter")
	})
}

func TestJobsListFilters(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		mk := func(id, game, env, fn, status string, created time.Time) {
			mustNil(t, s.Jobs().Create(ctx, &store.Job{ID: id, GameID: game, Env: env, FunctionID: fn, Status: status, CreatedAt: created}), "create "+id)
		}
		mk("a", "g1", "prod", "f1", store.JobPending, t0)
		mk("b", "g1", "prod", "f2", store.JobRunning, t0.Add(1*time.Second))
		mk("c", "g1", "dev", "f1", store.JobCompleted, t0.Add(2*time.Second))
		mk("d", "g2", "prod", "f1", store.JobFailed, t0.Add(3*time.Second))
		mk("e", "g1", "prod", "f1", store.JobCompleted, t0.Add(4*time.Second))
		cases := []struct {
			name string
			f    store.JobFilter
			want []string
		}{
			{"all", store.JobFilter{}, []string{"e", "d", "c", "b", "a"}},
			{"game", store.JobFilter{Game: "g1"}, []string{"e", "c", "b", "a"}},
			{"scope", store.JobFilter{Game: "g1", Env: "prod"}, []string{"e", "b", "a"}},
			{"function", store.JobFilter{Function: "f1"}, []string{"e", "d", "c", "a"}},
			{"status", store.JobFilter{Status: store.JobCompleted}, []string{"e", "c"}},
			{"scope+function+status", store.JobFilter{Game: "g1", Env: "prod", Function: "f1", Status: store.JobCompleted}, []string{"e"}},
			{"after (inclusive)", store.JobFilter{CreatedAfter: t0.Add(2 * time.Second)}, []string{"e", "d", "c"}},
			{"before (exclusive)", store.JobFilter{CreatedBefore: t0.Add(2 * time.Second)}, []string{"b", "a"}},
			{"window", store.JobFilter{CreatedAfter: t0.Add(time.Second), CreatedBefore: t0.Add(4 * time.Second)}, []string{"d", "c", "b"}},
			{"no match", store.JobFilter{Game: "g3"}, nil},
		}
		for _, tc := range cases {
			for _, size := range []int{0, 1} {
				tc.f.PageSize = size
				if got := listAll(t, s, tc.f); !slices.Equal(got, tc.want) {
					t.Errorf("%s (page size %d): got %v, want %v", tc.name, size, got, tc.want)
				}
			}
		}
	})
}

func TestJobsListMetacharacters(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		for i, m := range metaStrings {
			mustNil(t, s.Jobs().Create(ctx, &store.Job{ID: "id-" + m, GameID: m, Env: m, FunctionID: m, Actor: m, CreatedAt: t0.Add(time.Duration(i) * time.Second)}), "create")
		}
		mustNil(t, s.Jobs().Create(ctx, &store.Job{ID: "plain", GameID: "x", Env: "x", FunctionID: "x", CreatedAt: t0}), "create plain")
		for _, m := range metaStrings {
			got := listAll(t, s, store.JobFilter{Game: m, Env: m, Function: m})
			if !slices.Equal(got, []string{"id-" + m}) {
				t.Errorf("filter %q matched %v", m, got)
			}
			j, err := s.Jobs().Get(ctx, "id-"+m)
			mustNil(t, err, "get")
			if j.Actor != m {
				t.Errorf("actor %q came back as %q", m, j.Actor)
			}
		}
		// The injection attempt did not run: the table still holds every job.
		if got := listAll(t, s, store.JobFilter{}); len(got) != len(metaStrings)+1 {
			t.Fatalf("jobs table has %d rows, want %d", len(got), len(metaStrings)+1)
		}
	})
}
