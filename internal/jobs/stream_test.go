package jobs

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
)

// watch runs Stream in the background; events arrive on the returned
// channel, and the stream's result on done.
type watch struct {
	events chan *croupierv1.JobEvent
	done   chan error
}

func (h *harness) watch(ctx context.Context, id string, from int64) *watch {
	w := &watch{events: make(chan *croupierv1.JobEvent, 64), done: make(chan error, 1)}
	go func() {
		w.done <- h.svc.Stream(ctx, id, from, func(e *croupierv1.JobEvent) error {
			select {
			case w.events <- e:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	return w
}

// next returns the next streamed event.
func (w *watch) next(t *testing.T) *croupierv1.JobEvent {
	t.Helper()
	select {
	case e := <-w.events:
		return e
	case err := <-w.done:
		// The stream may have sent its last events and returned before we
		// read them: those still count.
		w.done <- err
		select {
		case e := <-w.events:
			return e
		default:
			t.Fatalf("stream ended (%v) while an event was expected", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return nil
}

func (w *watch) wantSeqs(t *testing.T, seqs ...int64) {
	t.Helper()
	for _, s := range seqs {
		if e := w.next(t); e.GetSeq() != s {
			t.Fatalf("streamed seq %d, want %d", e.GetSeq(), s)
		}
	}
}

// end waits for the stream to return, and fails if it sent anything more.
func (w *watch) end(t *testing.T) error {
	t.Helper()
	select {
	case err := <-w.done:
		select {
		case e := <-w.events:
			t.Fatalf("stream sent seq %d, want it to end", e.GetSeq())
		default:
		}
		return err
	case e := <-w.events:
		t.Fatalf("got event seq %d, want the stream to end", e.GetSeq())
	case <-time.After(5 * time.Second):
		t.Fatal("stream did not end within 5s")
	}
	return nil
}

// TestStreamReplayThenFollow: a watcher from a middle cursor gets the stored
// events from there, then live ones, and the stream ends after the terminal
// event; several watchers see the same log.
func TestStreamReplayThenFollow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.startRunning(t)
	h.mustReport(t, id, 5, ev(1, croupierv1.EventType_START, "s"), progress(2, 0.2), progress(3, 0.4), progress(4, 0.6), progress(5, 0.8))

	mid := h.watch(t.Context(), id, 3)
	mid.wantSeqs(t, 3, 4, 5)
	all := h.watch(t.Context(), id, 0)
	all.wantSeqs(t, 1, 2, 3, 4, 5)

	h.mustReport(t, id, 6, ev(6, croupierv1.EventType_LOG, "live"))
	e := mid.next(t)
	if e.GetSeq() != 6 || e.GetType() != croupierv1.EventType_LOG || e.GetMessage() != "live" || e.GetJobId() != id {
		t.Fatalf("live event = %v", e)
	}
	all.wantSeqs(t, 6)

	h.mustReport(t, id, 7, withData(ev(7, croupierv1.EventType_DONE, "done"), map[string]any{"sent": 2}))
	e = mid.next(t)
	if e.GetSeq() != 7 || e.GetType() != croupierv1.EventType_DONE || e.GetData().GetFields()["sent"].GetNumberValue() != 2 {
		t.Fatalf("terminal event = %v", e)
	}
	if err := mid.end(t); err != nil {
		t.Fatalf("stream after the terminal event = %v, want nil", err)
	}
	all.wantSeqs(t, 7)
	if err := all.end(t); err != nil {
		t.Fatal(err)
	}

	// A late watcher gets the history and the end.
	late := h.watch(t.Context(), id, 1)
	late.wantSeqs(t, 1, 2, 3, 4, 5, 6, 7)
	if err := late.end(t); err != nil {
		t.Fatal(err)
	}
	// A cursor past the end of a finished job ends at once.
	past := h.watch(t.Context(), id, 8)
	if err := past.end(t); err != nil {
		t.Fatal(err)
	}
}

// TestStreamInterrupted: a watch cut short ends UNAVAILABLE with the cursor
// to resume from.
func TestStreamInterrupted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.startRunning(t)
	h.mustReport(t, id, 2, ev(1, croupierv1.EventType_START, "s"), progress(2, 0.5))
	ctx, cancel := context.WithCancel(t.Context())
	w := h.watch(ctx, id, 0)
	w.wantSeqs(t, 1, 2)
	cancel()
	err := w.end(t)
	ei := wantStatus(t, err, codes.Unavailable, apierr.CodeUnavailable)
	if ei.GetDetails()["from_seq"] != "3" {
		t.Fatalf("interrupted stream details %v; want from_seq 3", ei.GetDetails())
	}
}

func TestStreamRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.startRunning(t)
	send := func(*croupierv1.JobEvent) error { return nil }
	wantStatus(t, h.svc.Stream(t.Context(), id, -1, send), codes.InvalidArgument, apierr.CodeInvalidArgument)
	wantStatus(t, h.svc.Stream(t.Context(), "job_nope", 0, send), codes.NotFound, apierr.CodeJobNotFound)

	// A send error (the client went away) ends the stream with that error.
	h.mustReport(t, id, 1, ev(1, croupierv1.EventType_START, "s"))
	gone := errors.New("client gone")
	if err := h.svc.Stream(t.Context(), id, 0, func(*croupierv1.JobEvent) error { return gone }); !errors.Is(err, gone) {
		t.Fatalf("Stream with a failing send = %v, want %v", err, gone)
	}
}

// TestStreamLeavesNoWaiters: watchers register with the notifier while they
// wait; once every stream of a finished job has ended nothing may remain,
// or the notifier grows by one entry per watched job forever.
func TestStreamLeavesNoWaiters(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.startRunning(t)
	h.mustReport(t, id, 2, ev(1, croupierv1.EventType_START, "s"), ev(2, croupierv1.EventType_DONE, "d"))
	w := h.watch(t.Context(), id, 0)
	w.wantSeqs(t, 1, 2)
	if err := w.end(t); err != nil {
		t.Fatal(err)
	}
	h.svc.notify.mu.Lock()
	n := len(h.svc.notify.chans)
	h.svc.notify.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d notifier entries remain after the only watcher of a finished job ended", n)
	}
}

// TestStreamPagesLongLogs: a log longer than one read (store.DefaultEventsLimit)
// is replayed completely and in order.
func TestStreamPagesLongLogs(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.startRunning(t)
	const n = store.DefaultEventsLimit + 5
	evs := make([]*croupierv1.JobEvent, 0, n)
	evs = append(evs, ev(1, croupierv1.EventType_START, "s"))
	for seq := int64(2); seq < n; seq++ {
		evs = append(evs, progress(seq, float64(seq)/n))
	}
	evs = append(evs, ev(n, croupierv1.EventType_DONE, "d"))
	h.mustReport(t, id, 500, evs[:500]...) // a report holds at most MaxEventsInReport
	h.mustReport(t, id, n, evs[500:]...)
	var got int64
	err := h.svc.Stream(t.Context(), id, 0, func(e *croupierv1.JobEvent) error {
		got++
		if e.GetSeq() != got {
			return fmt.Errorf("streamed seq %d at position %d", e.GetSeq(), got)
		}
		return nil
	})
	if err != nil || got != n {
		t.Fatalf("Stream = %v after %d events, want nil after %d", err, got, n)
	}
}
