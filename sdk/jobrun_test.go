package sdk

// Internal tests of a job's event buffer (jobRun): numbering, the bound that
// blocks a handler reporting faster than events are delivered, and
// acknowledgement. The black-box tests in sdk_test drive whole jobs.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

func progressEvent() *croupierv1.JobEvent {
	return &croupierv1.JobEvent{Type: croupierv1.EventType_PROGRESS}
}

func pendingSeqs(r *jobRun) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]int64, len(r.pending))
	for i, e := range r.pending {
		out[i] = e.GetSeq()
	}
	return out
}

func TestJobRunNumbersEvents(t *testing.T) {
	t.Parallel()
	r := newJobRun(context.Background(), "job_1")
	before := time.Now().UnixMilli()
	for range 3 {
		if err := r.emit(progressEvent()); err != nil {
			t.Fatal(err)
		}
	}
	evs := r.batch(10)
	if len(evs) != 3 {
		t.Fatalf("batch has %d events, want 3", len(evs))
	}
	for i, e := range evs {
		if e.GetSeq() != int64(i+1) || e.GetJobId() != "job_1" || e.GetTimestamp() < before {
			t.Fatalf("event %d = %v; want seq %d, job id and a timestamp", i, e, i+1)
		}
	}
	if got := r.batch(2); len(got) != 2 || got[1].GetSeq() != 2 {
		t.Fatalf("batch(2) = %v", got)
	}
	// batch copies: acknowledging does not disturb a batch being sent.
	b := r.batch(3)
	r.ack(2)
	if b[0].GetSeq() != 1 || len(b) != 3 {
		t.Fatalf("a batch changed after ack: %v", b)
	}
}

func TestJobRunAck(t *testing.T) {
	t.Parallel()
	r := newJobRun(context.Background(), "job_1")
	for range 5 {
		if err := r.emit(progressEvent()); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		ack  int64
		want string
		done bool
	}{
		{0, "[1 2 3 4 5]", false}, // nothing acknowledged yet
		{2, "[3 4 5]", false},     // exactly up to seq 2
		{2, "[3 4 5]", false},     // repeated ack: no change
		{1, "[3 4 5]", false},     // an older ack: no change
		{4, "[5]", false},
		{9, "[]", false}, // beyond: everything, but the job has not ended
	}
	for _, s := range steps {
		if done := r.ack(s.ack); done != s.done {
			t.Fatalf("ack(%d) done = %v", s.ack, done)
		}
		if got := fmt.Sprint(pendingSeqs(r)); got != s.want {
			t.Fatalf("after ack(%d) pending %s, want %s", s.ack, got, s.want)
		}
	}
	r.end(&croupierv1.JobEvent{Type: croupierv1.EventType_DONE})
	if got := fmt.Sprint(pendingSeqs(r)); got != "[6]" {
		t.Fatalf("terminal event pending as %s, want [6]", got)
	}
	if r.ack(5) {
		t.Fatal("done before the terminal event was acknowledged")
	}
	if !r.ack(6) {
		t.Fatal("not done after the terminal event was acknowledged")
	}
	if err := r.emit(progressEvent()); err == nil {
		t.Fatal("emit after the end succeeded")
	}
	r.end(&croupierv1.JobEvent{Type: croupierv1.EventType_ERROR}) // a second end is ignored
	if got := fmt.Sprint(pendingSeqs(r)); got != "[]" {
		t.Fatalf("second end added %s", got)
	}
}

// TestJobRunBufferBound: with JobBuffer events unacknowledged, emit blocks
// until an ack makes room; end never blocks.
func TestJobRunBufferBound(t *testing.T) {
	t.Parallel()
	r := newJobRun(context.Background(), "job_1")
	for i := range JobBuffer {
		if err := r.emit(progressEvent()); err != nil {
			t.Fatalf("emit %d: %v", i, err)
		}
	}
	emitted := make(chan error, 1)
	go func() { emitted <- r.emit(progressEvent()) }()
	select {
	case err := <-emitted:
		t.Fatalf("emit with a full buffer returned (%v) instead of blocking", err)
	case <-time.After(50 * time.Millisecond):
	}
	r.ack(1)
	select {
	case err := <-emitted:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("emit still blocked after an ack made room")
	}
	if n := len(pendingSeqs(r)); n != JobBuffer {
		t.Fatalf("%d pending, want %d", n, JobBuffer)
	}

	// Full again: the terminal event still goes in, past the bound.
	ended := make(chan struct{})
	go func() {
		r.end(&croupierv1.JobEvent{Type: croupierv1.EventType_DONE})
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("end blocked on a full buffer")
	}
	seqs := pendingSeqs(r)
	if len(seqs) != JobBuffer+1 || seqs[len(seqs)-1] != JobBuffer+2 {
		t.Fatalf("after end: %d pending, last seq %d; want %d, %d", len(seqs), seqs[len(seqs)-1], JobBuffer+1, JobBuffer+2)
	}
}

// TestJobRunBlockedEmitEndsWithContext: a handler blocked on a full buffer
// is released when its job is cancelled, with the cancellation's cause.
func TestJobRunBlockedEmitEndsWithContext(t *testing.T) {
	t.Parallel()
	r := newJobRun(context.Background(), "job_1")
	for range JobBuffer {
		if err := r.emit(progressEvent()); err != nil {
			t.Fatal(err)
		}
	}
	emitted := make(chan error, 1)
	go func() { emitted <- r.emit(progressEvent()) }()
	cause := errors.New("operator cancelled")
	r.cancel(cause)
	select {
	case err := <-emitted:
		if !errors.Is(err, cause) {
			t.Fatalf("blocked emit returned %v, want %v", err, cause)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocked emit not released by cancellation")
	}
}

// TestJobRunDiscard: a job handler invoked synchronously has nobody to
// report to; its reports succeed and go nowhere.
func TestJobRunDiscard(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	r := newJobRun(ctx, "inv-1")
	r.discard = true
	job := &Job{Invocation: &Invocation{ID: "inv-1"}, JobID: "inv-1", run: r}
	for range JobBuffer + 10 { // more than the bound: never blocks
		if err := job.Progress(0.5, "half"); err != nil {
			t.Fatal(err)
		}
	}
	if err := job.Logf("n=%d", 3); err != nil {
		t.Fatal(err)
	}
	if err := job.Data(map[string]any{"k": 1}); err != nil {
		t.Fatal(err)
	}
	if n := len(pendingSeqs(r)); n != 0 {
		t.Fatalf("discarding run buffered %d events", n)
	}
	cancel()
	if err := job.Log("late"); !errors.Is(err, context.Canceled) {
		t.Fatalf("report after cancel = %v, want context.Canceled", err)
	}
}

func TestJobReportsShapeEvents(t *testing.T) {
	t.Parallel()
	r := newJobRun(context.Background(), "job_1")
	job := &Job{Invocation: &Invocation{ID: "job_1"}, JobID: "job_1", run: r}
	if err := job.Progress(1.7, "over"); err != nil {
		t.Fatal(err)
	}
	if err := job.Progress(-1, "under"); err != nil {
		t.Fatal(err)
	}
	if err := job.Logf("sent %d", 4); err != nil {
		t.Fatal(err)
	}
	if err := job.Data(struct {
		Sent int `json:"sent"`
	}{4}); err != nil {
		t.Fatal(err)
	}
	if err := job.Data([]int{1}); err == nil {
		t.Fatal("Data accepted a non-object")
	}
	evs := r.batch(10)
	if len(evs) != 4 {
		t.Fatalf("%d events, want 4", len(evs))
	}
	if evs[0].GetProgress() != 1 || evs[1].GetProgress() != 0 || evs[0].GetType() != croupierv1.EventType_PROGRESS {
		t.Fatalf("progress not clamped: %v, %v", evs[0], evs[1])
	}
	if evs[2].GetType() != croupierv1.EventType_LOG || evs[2].GetMessage() != "sent 4" {
		t.Fatalf("log event %v", evs[2])
	}
	if evs[3].GetType() != croupierv1.EventType_LOG || evs[3].GetData().GetFields()["sent"].GetNumberValue() != 4 {
		t.Fatalf("data event %v", evs[3])
	}
}

// TestJobEventLimits: a report carries at most maxReportBytes of events
// (600 log lines of 9 KB went as one 5 MB report, over gRPC's 4 MiB, and
// were retried for ever: nothing was ever delivered); a message is cut to
// MaxJobEventMessage; Data over MaxJobEventData fails.
func TestJobEventLimits(t *testing.T) {
	t.Parallel()
	r := newJobRun(context.Background(), "job_1")
	job := &Job{Invocation: &Invocation{ID: "job_1"}, JobID: "job_1", run: r}
	line := strings.Repeat("x", 9000)
	for range 600 {
		if err := job.Log(line); err != nil {
			t.Fatal(err)
		}
	}
	delivered := 0
	for delivered < 600 {
		evs := r.batch(500)
		size := 0
		for _, ev := range evs {
			size += proto.Size(ev)
		}
		if len(evs) == 0 || size > maxReportBytes {
			t.Fatalf("a batch of %d events, %d bytes (at most %d)", len(evs), size, maxReportBytes)
		}
		delivered += len(evs)
		r.ack(evs[len(evs)-1].GetSeq())
	}
	if err := job.Log(strings.Repeat("é", MaxJobEventMessage)); err != nil {
		t.Fatal(err)
	}
	if m := r.batch(1)[0].GetMessage(); len(m) > MaxJobEventMessage || !utf8.ValidString(m) || !strings.HasSuffix(m, "(cut)") {
		t.Fatalf("a long message went as %d bytes (valid UTF-8: %v)", len(m), utf8.ValidString(m))
	}
	if err := job.Data(map[string]any{"x": strings.Repeat("x", MaxJobEventData)}); err == nil {
		t.Fatal("Data accepted a document over MaxJobEventData")
	}
}

// TestJobResultTooLarge: a handler's result over MaxJobEventData ends the
// job with ERROR RESULT_TOO_LARGE, not a DONE event no report could carry.
func TestJobResultTooLarge(t *testing.T) {
	t.Parallel()
	js := &jobs{c: New(Options{InstanceID: "i1", AgentAddr: "127.0.0.1:1"}), running: map[string]*jobRun{}}
	r := newJobRun(context.Background(), "job_1")
	big, _ := structpb.NewStruct(map[string]any{"x": strings.Repeat("x", MaxJobEventData)})
	js.execute(r, &Job{Invocation: &Invocation{ID: "job_1"}, JobID: "job_1", run: r}, registered{
		job: func(context.Context, *Job) (*structpb.Struct, error) { return big, nil }})
	evs := r.batch(10)
	last := evs[len(evs)-1]
	if last.GetType() != croupierv1.EventType_ERROR || last.GetData().GetFields()["error_code"].GetStringValue() != "RESULT_TOO_LARGE" {
		t.Fatalf("the job ended with %v", last)
	}
}
