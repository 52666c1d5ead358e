package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

func ev(seq int64, msg string) store.Event {
	return store.Event{Seq: seq, Type: 2, Message: msg, Progress: float64(seq) / 100, TimestampMs: 1_700_000_000_000 + seq,
		Data: []byte(fmt.Sprintf(`{"seq":%d}`, seq))}
}

func seqs(events []store.Event) []int64 {
	out := make([]int64, len(events))
	for i, e := range events {
		out[i] = e.Seq
	}
	return out
}

func TestJobEventsAppendAndRead(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		jobs := s.Jobs()
		mustNil(t, jobs.Create(ctx, newJob("j", t0)), "create")
		last, err := jobs.LastSeq(ctx, "j")
		mustNil(t, err, "last seq of empty job")
		if last != 0 {
			t.Fatalf("LastSeq of new job = %d", last)
		}

		// Given out of order within the batch, read back in seq order.
		mustNil(t, jobs.AppendEvents(ctx, "j", []store.Event{ev(3, "c"), ev(1, "a"), ev(2, "b")}), "append")
		start := store.Event{Seq: 4, Type: 0, Message: "", Data: nil}
		mustNil(t, jobs.AppendEvents(ctx, "j", []store.Event{start}), "append no data")
		got, err := jobs.Events(ctx, "j", 0, 0)
		mustNil(t, err, "events")
		if fmt.Sprint(seqs(got)) != "[1 2 3 4]" {
			t.Fatalf("seqs %v, want [1 2 3 4]", seqs(got))
		}
		if want := ev(2, "b"); got[1].Message != want.Message || got[1].Type != want.Type ||
			got[1].Progress != want.Progress || got[1].TimestampMs != want.TimestampMs || string(got[1].Data) != string(want.Data) {
			t.Fatalf("event 2 = %+v, want %+v", got[1], want)
		}
		if got[3].Data != nil {
			t.Fatalf("nil data came back as %q", got[3].Data)
		}
		last, err = jobs.LastSeq(ctx, "j")
		mustNil(t, err, "last seq")
		if last != 4 {
			t.Fatalf("LastSeq = %d, want 4", last)
		}
		j, err := jobs.Get(ctx, "j")
		mustNil(t, err, "get")
		if j.LastSeq != 4 {
			t.Fatalf("Job.LastSeq = %d, want 4", j.LastSeq)
		}

		// fromSeq and limit page through the log.
		got, err = jobs.Events(ctx, "j", 2, 2)
		mustNil(t, err, "page")
		if fmt.Sprint(seqs(got)) != "[2 3]" {
			t.Fatalf("Events(from 2, limit 2) = %v", seqs(got))
		}
		got, err = jobs.Events(ctx, "j", 5, 10)
		mustNil(t, err, "past end")
		if len(got) != 0 {
			t.Fatalf("Events past the end = %v", seqs(got))
		}
		got, err = jobs.Events(ctx, "unknown-job", 0, 10)
		mustNil(t, err, "unknown job")
		if len(got) != 0 {
			t.Fatalf("unknown job has events %v", seqs(got))
		}
	})
}

func TestJobEventsDuplicateSeqIsIgnored(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		jobs := s.Jobs()
		mustNil(t, jobs.Create(ctx, newJob("j", t0)), "create")
		mustNil(t, jobs.AppendEvents(ctx, "j", []store.Event{ev(1, "first"), ev(2, "second")}), "append")
		// Re-delivery overlapping stored seqs, with a duplicate inside the
		// batch too: stored seqs keep their first content, new ones land.
		mustNil(t, jobs.AppendEvents(ctx, "j", []store.Event{ev(2, "REPLAYED"), ev(3, "third"), ev(3, "DUP IN BATCH"), ev(1, "REPLAYED")}), "redeliver")
		got, err := jobs.Events(ctx, "j", 1, 100)
		mustNil(t, err, "events")
		var msgs []string
		for _, e := range got {
			msgs = append(msgs, e.Message)
		}
		if fmt.Sprint(msgs) != "[first second third]" {
			t.Fatalf("messages %v, want [first second third]", msgs)
		}
		// A batch of only duplicates is a no-op, and LastSeq never goes back.
		mustNil(t, jobs.AppendEvents(ctx, "j", []store.Event{ev(1, "x")}), "all duplicates")
		last, err := jobs.LastSeq(ctx, "j")
		mustNil(t, err, "last seq")
		if last != 3 {
			t.Fatalf("LastSeq = %d, want 3", last)
		}
	})
}

func TestJobEventsErrors(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		jobs := s.Jobs()
		wantErr(t, jobs.AppendEvents(ctx, "missing", []store.Event{ev(1, "a")}), store.ErrNotFound, "append to missing job")
		got, err := jobs.Events(ctx, "missing", 0, 10)
		mustNil(t, err, "events of missing job")
		if len(got) != 0 {
			t.Fatal("events stored for a missing job")
		}
		_, err = jobs.LastSeq(ctx, "missing")
		wantErr(t, err, store.ErrNotFound, "last seq of missing job")

		mustNil(t, jobs.Create(ctx, newJob("j", t0)), "create")
		// An invalid seq anywhere rejects the whole batch.
		wantErr(t, jobs.AppendEvents(ctx, "j", []store.Event{ev(1, "a"), ev(0, "zero")}), store.ErrInvalidArgument, "seq 0")
		wantErr(t, jobs.AppendEvents(ctx, "", []store.Event{ev(1, "a")}), store.ErrInvalidArgument, "empty job id")
		got, err = jobs.Events(ctx, "j", 0, 10)
		mustNil(t, err, "events")
		if len(got) != 0 {
			t.Fatalf("rejected batch stored events %v", seqs(got))
		}
		mustNil(t, jobs.AppendEvents(ctx, "j", nil), "empty batch")
	})
}

// TestJobEventsLargeBatch crosses the multi-row INSERT chunk size: the batch
// spans several statements and still lands whole and in order.
func TestJobEventsLargeBatch(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		jobs := s.Jobs()
		mustNil(t, jobs.Create(ctx, newJob("j", t0)), "create")
		n := 2*store.EventsPerInsert + 17
		batch := make([]store.Event, n)
		for i := range batch {
			batch[i] = ev(int64(i+1), fmt.Sprintf("m%d", i+1))
		}
		mustNil(t, jobs.AppendEvents(ctx, "j", batch), "append")
		var all []store.Event
		for from := int64(1); ; {
			page, err := jobs.Events(ctx, "j", from, 100)
			mustNil(t, err, "events")
			if len(page) == 0 {
				break
			}
			all = append(all, page...)
			from = page[len(page)-1].Seq + 1
			if len(all) > n {
				t.Fatal("paging returned more events than stored")
			}
		}
		if len(all) != n {
			t.Fatalf("read %d events, want %d", len(all), n)
		}
		for i, e := range all {
			if e.Seq != int64(i+1) || e.Message != fmt.Sprintf("m%d", i+1) {
				t.Fatalf("event %d = %+v", i, e)
			}
		}
		last, err := jobs.LastSeq(ctx, "j")
		mustNil(t, err, "last seq")
		if last != int64(n) {
			t.Fatalf("LastSeq = %d, want %d", last, n)
		}
	})
}

// TestJobEventsConcurrentAppenders: batches of one job from concurrent
// writers (disjoint seqs) all land; LastSeq is the maximum.
func TestJobEventsConcurrentAppenders(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		jobs := s.Jobs()
		mustNil(t, jobs.Create(ctx, newJob("j", t0)), "create")
		const writers, batches, size = 4, 10, 20
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for w := range writers {
			wg.Go(func() {
				for b := range batches {
					batch := make([]store.Event, size)
					for i := range batch {
						// Interleaved seqs: writer w owns seqs ≡ w (mod writers).
						batch[i] = ev(int64((b*size+i)*writers+w+1), "x")
					}
					if err := jobs.AppendEvents(ctx, "j", batch); err != nil {
						errs[w] = err
						return
					}
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			mustNil(t, err, "append")
		}
		total := writers * batches * size
		got, err := jobs.Events(ctx, "j", 0, total+10)
		mustNil(t, err, "events")
		if len(got) != total {
			t.Fatalf("stored %d events, want %d", len(got), total)
		}
		for i, e := range got {
			if e.Seq != int64(i+1) {
				t.Fatalf("event %d has seq %d: not contiguous", i, e.Seq)
			}
		}
		last, err := jobs.LastSeq(ctx, "j")
		mustNil(t, err, "last seq")
		if last != int64(total) {
			t.Fatalf("LastSeq = %d, want %d", last, total)
		}
	})
}

// TestJobEventsWithStatus: events and the status change they cause are one
// write; an invalid change stores no event, a missing job is ErrNotFound, and
// a terminal job keeps its status while a late event is still stored.
func TestJobEventsWithStatus(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		jobs := s.Jobs()
		mustNil(t, jobs.Create(ctx, newJob("j", t0)), "create")
		mustNil(t, jobs.AppendEventsWithStatus(ctx, "j", []store.Event{ev(1, "start")}, store.JobRunning,
			store.SetIncarnation("inc-1")), "append with status")
		j, err := jobs.Get(ctx, "j")
		mustNil(t, err, "get")
		if j.Status != store.JobRunning || j.Incarnation != "inc-1" || j.LastSeq != 1 {
			t.Fatalf("job = %s %q seq %d, want running inc-1 seq 1", j.Status, j.Incarnation, j.LastSeq)
		}

		if err := jobs.AppendEventsWithStatus(ctx, "j", []store.Event{ev(2, "x")}, "bogus"); !errors.Is(err, store.ErrInvalidArgument) {
			t.Fatalf("unknown status: err %v, want ErrInvalidArgument", err)
		}
		if err := jobs.AppendEventsWithStatus(ctx, "nope", []store.Event{ev(1, "x")}, store.JobRunning); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("missing job: err %v, want ErrNotFound", err)
		}

		mustNil(t, jobs.AppendEventsWithStatus(ctx, "j", []store.Event{ev(2, "done")}, store.JobCompleted,
			store.SetEndedAt(t0)), "end")
		mustNil(t, jobs.AppendEventsWithStatus(ctx, "j", []store.Event{ev(3, "late")}, store.JobFailed), "late event")
		j, err = jobs.Get(ctx, "j")
		mustNil(t, err, "get")
		if j.Status != store.JobCompleted || j.LastSeq != 3 {
			t.Fatalf("job = %s seq %d, want completed seq 3 (terminal status kept, event stored)", j.Status, j.LastSeq)
		}
	})
}

// TestJobStatusFieldSetTwice: the jobs service may set progress twice in
// one update (the batch's last progress, then 1 at completion); the last
// value wins on both databases (PostgreSQL refuses duplicate assignments).
func TestJobStatusFieldSetTwice(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		jobs := s.Jobs()
		mustNil(t, jobs.Create(ctx, newJob("j", t0)), "create")
		mustNil(t, jobs.AppendEventsWithStatus(ctx, "j", []store.Event{ev(1, "done")}, store.JobCompleted,
			store.SetProgress(0.5), store.SetProgress(1), store.SetEndedAt(t0)), "append with progress twice")
		j, err := jobs.Get(ctx, "j")
		mustNil(t, err, "get")
		if j.Status != store.JobCompleted || j.Progress != 1 {
			t.Fatalf("job = %s progress %v, want completed progress 1", j.Status, j.Progress)
		}
	})
}

// TestJobEventBytesAndSkipThrough: EventBytes grows by each stored event's
// EventCost (not again for a re-sent batch), and SkipThrough moves LastSeq
// past events that were not stored, never back.
func TestJobEventBytesAndSkipThrough(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		jobs := s.Jobs()
		mustNil(t, jobs.Create(ctx, newJob("j", t0)), "create")
		e1, e2 := ev(1, "start"), ev(2, "a longer message")
		e2.Data = []byte(`{"k":"v"}`)
		mustNil(t, jobs.AppendEvents(ctx, "j", []store.Event{e1, e2}), "append")
		mustNil(t, jobs.AppendEvents(ctx, "j", []store.Event{e1, e2}), "append again (a re-sent batch)")
		mustNil(t, jobs.AppendEventsWithStatus(ctx, "j", nil, store.JobRunning, store.SkipThrough(5)), "skip through 5")
		j, err := jobs.Get(ctx, "j")
		mustNil(t, err, "get")
		if want := store.EventCost(e1) + store.EventCost(e2); j.EventBytes != want || j.LastSeq != 5 {
			t.Fatalf("event_bytes %d last_seq %d; want %d, 5", j.EventBytes, j.LastSeq, want)
		}
		mustNil(t, jobs.AppendEventsWithStatus(ctx, "j", nil, store.JobRunning, store.SkipThrough(3)), "skip through 3")
		if j, err := jobs.Get(ctx, "j"); err != nil || j.LastSeq != 5 {
			t.Fatalf("last_seq %d (%v) after SkipThrough(3); want 5 kept", j.LastSeq, err)
		}
	})
}
