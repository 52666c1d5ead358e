package jobs

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestListFilters(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	seed := []store.Job{
		{ID: "job_1", GameID: game, Env: env, FunctionID: "mail.broadcast", Status: store.JobCompleted},
		{ID: "job_2", GameID: game, Env: env, FunctionID: "mail.broadcast", Status: store.JobFailed},
		{ID: "job_3", GameID: game, Env: env, FunctionID: "player.migrate", Status: store.JobRunning},
		{ID: "job_4", GameID: game, Env: "prod", FunctionID: "mail.broadcast", Status: store.JobPending},
		{ID: "job_5", GameID: "other", Env: env, FunctionID: "mail.broadcast", Status: store.JobCompleted},
	}
	for i := range seed {
		seed[i].CreatedAt = base.Add(time.Duration(i) * time.Minute)
		if err := h.st.Jobs().Create(context.Background(), &seed[i]); err != nil {
			t.Fatal(err)
		}
	}
	ms := func(i int) int64 { return base.Add(time.Duration(i) * time.Minute).UnixMilli() }
	tests := []struct {
		name string
		req  *croupierv1.ListJobsRequest
		want string
	}{
		{"all, newest first", &croupierv1.ListJobsRequest{}, "[job_5 job_4 job_3 job_2 job_1]"},
		{"game and env", &croupierv1.ListJobsRequest{GameId: game, Env: env}, "[job_3 job_2 job_1]"},
		{"function", &croupierv1.ListJobsRequest{FunctionId: "player.migrate"}, "[job_3]"},
		{"status", &croupierv1.ListJobsRequest{Status: store.JobCompleted}, "[job_5 job_1]"},
		{"created after (inclusive)", &croupierv1.ListJobsRequest{CreatedAfter: ms(3)}, "[job_5 job_4]"},
		{"created before (exclusive)", &croupierv1.ListJobsRequest{CreatedBefore: ms(1)}, "[job_1]"},
		{"window", &croupierv1.ListJobsRequest{CreatedAfter: ms(1), CreatedBefore: ms(3)}, "[job_3 job_2]"},
	}
	for _, tt := range tests {
		resp, err := h.svc.List(t.Context(), tt.req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var ids []string
		for _, j := range resp.GetJobs() {
			ids = append(ids, j.GetJobId())
		}
		if got := fmt.Sprint(ids); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}

	// Paging walks everything once, in order.
	var ids []string
	token := ""
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("paging did not end")
		}
		resp, err := h.svc.List(t.Context(), &croupierv1.ListJobsRequest{PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetJobs()) > 2 {
			t.Fatalf("page of %d with page_size 2", len(resp.GetJobs()))
		}
		for _, j := range resp.GetJobs() {
			ids = append(ids, j.GetJobId())
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if got := fmt.Sprint(ids); got != "[job_5 job_4 job_3 job_2 job_1]" {
		t.Fatalf("paged %s", got)
	}

	// Regression: the messages were the store's ("store: unknown job
	// status \"sleeping\": invalid argument"), without the valid values.
	_, err := h.svc.List(t.Context(), &croupierv1.ListJobsRequest{Status: "sleeping"})
	wantStatus(t, err, codes.InvalidArgument, apierr.CodeInvalidArgument)
	if msg := status.Convert(err).Message(); msg != `unknown job status "sleeping" (pending, running, completed, failed, canceled)` {
		t.Errorf("bad status message: %q", msg)
	}
	_, err = h.svc.List(t.Context(), &croupierv1.ListJobsRequest{PageToken: "garbage!"})
	wantStatus(t, err, codes.InvalidArgument, apierr.CodeInvalidArgument)
	if msg := status.Convert(err).Message(); !strings.HasPrefix(msg, "malformed jobs page token: pass the next_page_token") || strings.Contains(msg, "store") || strings.Contains(msg, "invalid argument") {
		t.Errorf("bad page token message: %q", msg)
	}
	_, err = h.svc.Get(t.Context(), "job_nope")
	wantStatus(t, err, codes.NotFound, apierr.CodeJobNotFound)
}
