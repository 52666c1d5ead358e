package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// startMail starts mail.broadcast to n players with delay ms between
// deliveries on the given target instance.
func (c *cluster) startMail(t *testing.T, target string, n, delayMS int) string {
	t.Helper()
	recipients := make([]any, n)
	for i := range recipients {
		recipients[i] = fmt.Sprintf("p%d", i+1)
	}
	pl, err := structpb.NewStruct(map[string]any{"subject": "s", "body": "b", "recipients": recipients, "delay_ms": float64(delayMS)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.fn.InvokeJob(ctx, &croupierv1.InvokeJobRequest{GameId: "demo", Env: "dev", FunctionId: "mail.broadcast", Payload: pl,
		Options: &croupierv1.InvokeOptions{RoutingMode: "targeted", TargetAgent: target}})
	if err != nil {
		t.Fatalf("InvokeJob: %v", err)
	}
	if resp.GetStatus() != "pending" || resp.GetJobId() == "" {
		t.Fatalf("InvokeJob returned %v", resp)
	}
	return resp.GetJobId()
}

// watcher collects a job's events, reconnecting from its cursor whenever
// the stream breaks (e.g. the server restarts), until the terminal event.
type watcher struct {
	mu     sync.Mutex
	events []*croupierv1.JobEvent
	done   chan struct{}
	err    error
}

func (c *cluster) watch(t *testing.T, id string, from int64) *watcher {
	w := &watcher{done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	go func() {
		defer close(w.done)
		next := from
		for ctx.Err() == nil {
			stream, err := c.currentFn().StreamJobEvents(ctx, &croupierv1.StreamJobEventsRequest{JobId: id, FromSeq: next})
			if err == nil {
				for {
					var ev *croupierv1.JobEvent
					ev, err = stream.Recv()
					if err != nil {
						break
					}
					w.mu.Lock()
					w.events = append(w.events, ev)
					w.mu.Unlock()
					next = ev.GetSeq() + 1
					if isTerminalEvent(ev.GetType()) {
						return
					}
				}
			}
			if errors.Is(err, io.EOF) {
				w.err = errors.New("stream ended before the terminal event")
				return
			}
			select { // the server is restarting: retry from the cursor
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		w.err = ctx.Err()
	}()
	return w
}

func (c *cluster) currentFn() croupierv1.FunctionServiceClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fn
}

func isTerminalEvent(t croupierv1.EventType) bool {
	return t == croupierv1.EventType_DONE || t == croupierv1.EventType_ERROR || t == croupierv1.EventType_CANCELED
}

func (w *watcher) wait(t *testing.T) []*croupierv1.JobEvent {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(90 * time.Second):
		t.Fatal("watcher did not finish")
	}
	if w.err != nil {
		t.Fatalf("watch: %v", w.err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*croupierv1.JobEvent(nil), w.events...)
}

func (w *watcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.events)
}

// checkMailSequence asserts the exact event sequence of a completed
// mail.broadcast to n players: START, LOG, n x PROGRESS, LOG, DONE, with
// seqs from..end and no gap or duplicate.
func checkMailSequence(t *testing.T, evs []*croupierv1.JobEvent, from int64, n int) {
	t.Helper()
	for i, ev := range evs {
		if want := from + int64(i); ev.GetSeq() != want {
			t.Fatalf("event %d has seq %d, want %d (gap or duplicate)", i, ev.GetSeq(), want)
		}
	}
	var types []string
	for _, ev := range evs {
		types = append(types, ev.GetType().String())
	}
	want := []string{"START", "LOG"}
	for i := 0; i < n; i++ {
		want = append(want, "PROGRESS")
	}
	want = append(want, "LOG", "DONE")
	want = want[from-1:]
	if strings.Join(types, ",") != strings.Join(want, ",") {
		t.Fatalf("event types\n got %v\nwant %v", types, want)
	}
	progress := 0
	for _, ev := range evs {
		if ev.GetType() == croupierv1.EventType_PROGRESS {
			progress++
			if !strings.HasPrefix(ev.GetMessage(), fmt.Sprintf("%d/%d ", int(ev.GetSeq())-2, n)) {
				t.Fatalf("progress event %d says %q", ev.GetSeq(), ev.GetMessage())
			}
		}
	}
}

func (c *cluster) job(t *testing.T, id string) *croupierv1.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.currentFn().GetJob(ctx, &croupierv1.GetJobRequest{JobId: id})
	if err != nil {
		t.Fatalf("GetJob: %v", err)
	}
	return resp.GetJob()
}

func TestJobsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	// The event budget (64 KiB) holds every job here but the one that
	// goes over it on purpose.
	c := newCluster(t, "--job-max-event-bytes", "65536")
	const n = 30
	// long: a job the test ends (cancel, a killed game server) well before
	// it could finish by itself (30 s), however late the test acts.
	const long = 300

	t.Run("concurrent watchers, replay and late watcher", func(t *testing.T) {
		id := c.startMail(t, "agent-a/gs-a1", n, 5)
		ws := []*watcher{c.watch(t, id, 0), c.watch(t, id, 0), c.watch(t, id, 0)}
		for _, w := range ws {
			checkMailSequence(t, w.wait(t), 1, n)
		}
		mid := c.watch(t, id, 7).wait(t)
		checkMailSequence(t, mid, 7, n)
		late := c.watch(t, id, 0).wait(t)
		checkMailSequence(t, late, 1, n)
		j := c.job(t, id)
		if j.GetStatus() != "completed" || j.GetResult().GetFields()["sent"].GetNumberValue() != n || j.GetLastSeq() != int64(n+4) {
			t.Fatalf("job after DONE: %v", j)
		}
	})

	t.Run("a job over its event budget stores what fits and its end", func(t *testing.T) {
		const many = 600 // ~150 bytes an event: ~90 KiB, over the 64 KiB budget
		id := c.startMail(t, "agent-a/gs-a1", many, 0)
		out, code := run(t, []string{"CROUPIER_PROFILE=" + c.profile}, "job", "watch", id)
		if code != 0 || !strings.Contains(out, "not stored: the job went over its event budget") || !strings.Contains(out, "DONE") {
			t.Fatalf("job watch of a job over its budget: exit %d\n%s", code, out)
		}
		j := c.job(t, id)
		res := j.GetResult().GetFields()
		if j.GetStatus() != "completed" || res["sent"].GetNumberValue()+res["skipped"].GetNumberValue() != many {
			t.Fatalf("job over its budget: %v", j)
		}
		evs := c.watch(t, id, 0).wait(t)
		if last := evs[len(evs)-1]; int64(len(evs)) >= j.GetLastSeq() || last.GetType() != croupierv1.EventType_DONE || last.GetSeq() != j.GetLastSeq() {
			t.Fatalf("%d events stored, the last %v; want fewer than the job's %d, ending with DONE #%d", len(evs), last, j.GetLastSeq(), j.GetLastSeq())
		}
		for i, ev := range evs { // what fits: from the first event on, in order (a later small one may still fit)
			if (i == 0 && ev.GetSeq() != 1) || (i > 0 && ev.GetSeq() <= evs[i-1].GetSeq()) {
				t.Fatalf("stored event %d has seq %d (%v): the budget keeps events in order from the first", i, ev.GetSeq(), evs)
			}
		}
	})

	t.Run("agent restart mid-job loses nothing", func(t *testing.T) {
		id := c.startMail(t, "agent-a/gs-a2", n, 60)
		w := c.watch(t, id, 0)
		waitFor(t, 10*time.Second, "some progress", func() bool { return w.count() >= 6 })
		sdkAddr := c.sdk["agent-a"]
		c.agents["agent-a"].kill()
		time.Sleep(500 * time.Millisecond) // the game server keeps working while its agent is down
		c.startAgent("agent-a", "grpc", sdkAddr)
		checkMailSequence(t, w.wait(t), 1, n)
		if j := c.job(t, id); j.GetStatus() != "completed" {
			t.Fatalf("job status %s, want completed", j.GetStatus())
		}
	})

	t.Run("long-poll agent restart mid-job loses nothing", func(t *testing.T) {
		id := c.startMail(t, "agent-b/gs-b1", n, 60)
		w := c.watch(t, id, 0)
		waitFor(t, 10*time.Second, "some progress", func() bool { return w.count() >= 6 })
		sdkAddr := c.sdk["agent-b"]
		c.agents["agent-b"].kill()
		time.Sleep(500 * time.Millisecond)
		c.startAgent("agent-b", "longpoll", sdkAddr)
		checkMailSequence(t, w.wait(t), 1, n)
	})

	t.Run("server restart mid-job loses nothing", func(t *testing.T) {
		id := c.startMail(t, "agent-a/gs-a1", n, 60)
		w := c.watch(t, id, 0)
		waitFor(t, 10*time.Second, "some progress", func() bool { return w.count() >= 6 })
		grpcAddr, httpAddr, tunnelAddr := c.grpc, c.http, c.tunnel
		c.server.stop()
		time.Sleep(300 * time.Millisecond)
		c.startServer(grpcAddr, httpAddr, tunnelAddr)
		checkMailSequence(t, w.wait(t), 1, n)
		c.waitInstances("mail.broadcast", 3)
		if j := c.job(t, id); j.GetStatus() != "completed" {
			t.Fatalf("job status %s, want completed", j.GetStatus())
		}
	})

	t.Run("cancel ends the job canceled with the reason", func(t *testing.T) {
		id := c.startMail(t, "agent-a/gs-a1", long, 100)
		w := c.watch(t, id, 0)
		waitFor(t, 10*time.Second, "some progress", func() bool { return w.count() >= 4 })
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		resp, err := c.currentFn().CancelJob(ctx, &croupierv1.CancelJobRequest{JobId: id, Reason: "wrong subject"})
		if err != nil || resp.GetStatus() != "canceled" {
			t.Fatalf("CancelJob: %v %v", resp, err)
		}
		evs := w.wait(t)
		last := evs[len(evs)-1]
		if last.GetType() != croupierv1.EventType_CANCELED || last.GetMessage() != "wrong subject" {
			t.Fatalf("last event %v, want CANCELED 'wrong subject'", last)
		}
		for i, ev := range evs {
			if ev.GetSeq() != int64(i+1) {
				t.Fatalf("gap at %d: seq %d", i, ev.GetSeq())
			}
		}
		if _, err := c.currentFn().CancelJob(ctx, &croupierv1.CancelJobRequest{JobId: id}); status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("cancelling a finished job: %v, want FailedPrecondition", err)
		}
		out, code := run(t, []string{"CROUPIER_PROFILE=" + c.profile}, "job", "watch", id)
		if code != 3 || !strings.Contains(out, "CANCELED") {
			t.Fatalf("job watch of a cancelled job: exit %d\n%s", code, out)
		}
		// From past its last event: no events, the same exit status.
		out, code = run(t, []string{"CROUPIER_PROFILE=" + c.profile}, "job", "watch", id, "--from", "99999")
		if code != 3 || !strings.Contains(out, "cancelled") {
			t.Fatalf("job watch --from past the end of a cancelled job: exit %d\n%s", code, out)
		}
	})

	t.Run("game server death fails the job within the heartbeat window", func(t *testing.T) {
		id := c.startMail(t, "agent-b/gs-b1", long, 100)
		w := c.watch(t, id, 0)
		waitFor(t, 10*time.Second, "some progress", func() bool { return w.count() >= 4 })
		killed := time.Now()
		c.games["gs-b1"].kill()
		evs := w.wait(t)
		took := time.Since(killed)
		last := evs[len(evs)-1]
		if last.GetType() != croupierv1.EventType_ERROR || !strings.Contains(last.GetMessage(), "gs-b1") {
			t.Fatalf("last event %v, want ERROR naming the game server", last)
		}
		// The departure path ("exited while running"), not the orphan
		// grace (1 minute here): the message tells them apart, so the time
		// bound can leave a loaded machine room.
		if !strings.Contains(last.GetMessage(), "exited") || took > 15*time.Second {
			t.Fatalf("job failed %s after the game server died with %q; want the departure seen at once", took, last.GetMessage())
		}
		for i, ev := range evs {
			if ev.GetSeq() != int64(i+1) {
				t.Fatalf("gap at %d: seq %d", i, ev.GetSeq())
			}
		}
		if j := c.job(t, id); j.GetStatus() != "failed" || j.GetErrorCode() != "GAME_SERVER_LOST" {
			t.Fatalf("job %v, want failed GAME_SERVER_LOST", j)
		}
	})

	t.Run("CLI start, watch and list", func(t *testing.T) {
		env := []string{"CROUPIER_PROFILE=" + c.profile}
		out, code := run(t, env, "job", "start", "mail.broadcast", "--game", "demo", "--env", "dev", "--route", "targeted", "--target", "agent-a/gs-a1",
			"--payload", `{"subject":"s","body":"b","recipients":["p1","p2"]}`, "--idempotency-key", "cli-job-1")
		id := strings.TrimSpace(out)
		if code != 0 || !strings.HasPrefix(id, "job_") {
			t.Fatalf("job start: exit %d: %s", code, out)
		}
		again, _ := run(t, env, "job", "start", "mail.broadcast", "--game", "demo", "--env", "dev", "--route", "targeted", "--target", "agent-a/gs-a1",
			"--payload", `{"subject":"s","body":"b","recipients":["p1","p2"]}`, "--idempotency-key", "cli-job-1")
		if strings.TrimSpace(again) != id {
			t.Fatalf("same idempotency key gave job %q, want %q", again, id)
		}
		out, code = run(t, env, "job", "watch", id, "-o", "json")
		if code != 0 || strings.Count(out, "\n") != 6 || !strings.Contains(out, `"type":"START"`) || !strings.Contains(out, `"type":"DONE"`) {
			t.Fatalf("job watch -o json: exit %d\n%s", code, out)
		}
		out, code = run(t, env, "job", "list", "--status", "completed", "--function", "mail.broadcast")
		if code != 0 || !strings.Contains(out, id) {
			t.Fatalf("job list: exit %d\n%s", code, out)
		}
	})
}
