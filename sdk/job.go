package sdk

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
	"unicode/utf8"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// JobHandler runs a long job. It reports through job (Progress, Log, Data);
// returning a result ends the job with DONE, returning an error ends it with
// ERROR, and ctx is cancelled when an operator cancels the job (the job then
// ends CANCELED, whatever the handler returns).
type JobHandler func(ctx context.Context, job *Job) (*structpb.Struct, error)

// Job is a running job as its handler sees it.
type Job struct {
	*Invocation
	// JobID identifies the job on the server.
	JobID string
	run   *jobRun
}

// Progress reports how far the job is (0.0–1.0) with a message (cut to
// MaxJobEventMessage bytes). It blocks while the job's event buffer is
// full, and fails once ctx is done.
func (j *Job) Progress(fraction float64, message string) error {
	return j.run.emit(&croupierv1.JobEvent{Type: croupierv1.EventType_PROGRESS, Progress: clamp01(fraction), Message: clip(message)})
}

// Log adds a log line (cut to MaxJobEventMessage bytes) to the job's event
// stream.
func (j *Job) Log(message string) error {
	return j.run.emit(&croupierv1.JobEvent{Type: croupierv1.EventType_LOG, Message: clip(message)})
}

// Limits of one job event, which the server enforces too: a message is cut
// to MaxJobEventMessage bytes; a Data document, or a handler's result,
// may encode to at most MaxJobEventData bytes (larger: Data fails, a
// result ends the job with ERROR RESULT_TOO_LARGE).
const (
	MaxJobEventMessage = 64 << 10
	MaxJobEventData    = 1 << 20
)

// maxReportBytes bounds the events sent in one report (at least one event
// goes): far below the 4 MiB a gRPC message may carry by default.
const maxReportBytes = 1 << 20

// clip cuts s to MaxJobEventMessage bytes on a UTF-8 boundary.
func clip(s string) string {
	if len(s) <= MaxJobEventMessage {
		return s
	}
	const mark = " …(cut)"
	cut := MaxJobEventMessage - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// Logf is Log with formatting.
func (j *Job) Logf(format string, args ...any) error { return j.Log(fmt.Sprintf(format, args...)) }

// Data attaches a structured document (a struct or map, encoded as a JSON
// object) to the stream as a LOG event with data.
func (j *Job) Data(v any) error {
	s, err := ToStruct(v)
	if err != nil {
		return err
	}
	if n := proto.Size(s); n > MaxJobEventData {
		return fmt.Errorf("sdk: job data of %d bytes encoded; at most %d", n, MaxJobEventData)
	}
	return j.run.emit(&croupierv1.JobEvent{Type: croupierv1.EventType_LOG, Message: "data", Data: s})
}

func clamp01(f float64) float64 {
	return min(1, max(0, f))
}

// JobBuffer bounds the events one job may hold that the server has not yet
// stored; a handler that reports faster than they can be delivered waits.
const JobBuffer = 10000

// jobRun is one job on this instance: its handler's context and its event
// log, kept until the server acknowledges it.
type jobRun struct {
	id     string
	cancel context.CancelCauseFunc
	ctx    context.Context

	mu       sync.Mutex
	next     int64                  // seq of the next event
	pending  []*croupierv1.JobEvent // events not yet acknowledged, in seq order
	ended    bool                   // the terminal event is in pending (or acked)
	space    chan struct{}          // signalled when pending shrinks
	ready    chan struct{}          // signalled when pending grows
	canceled string                 // reason, when an operator cancelled
	discard  bool                   // a synchronous call: reports go nowhere
}

func newJobRun(parent context.Context, id string) *jobRun {
	ctx, cancel := context.WithCancelCause(parent)
	return &jobRun{id: id, ctx: ctx, cancel: cancel, next: 1, space: make(chan struct{}, 1), ready: make(chan struct{}, 1)}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// emit appends an event, waiting for room in the buffer.
func (r *jobRun) emit(ev *croupierv1.JobEvent) error {
	if r.discard {
		return r.ctx.Err()
	}
	for {
		r.mu.Lock()
		if r.ended {
			r.mu.Unlock()
			return errors.New("sdk: job has ended")
		}
		if len(r.pending) < JobBuffer {
			r.appendLocked(ev)
			r.mu.Unlock()
			return nil
		}
		r.mu.Unlock()
		select {
		case <-r.space:
		case <-r.ctx.Done():
			return context.Cause(r.ctx)
		}
	}
}

// end appends the terminal event; it never blocks (the buffer may exceed its
// bound by this one event).
func (r *jobRun) end(ev *croupierv1.JobEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return
	}
	r.appendLocked(ev)
	r.ended = true
}

func (r *jobRun) appendLocked(ev *croupierv1.JobEvent) {
	ev.JobId, ev.Seq, ev.Timestamp = r.id, r.next, time.Now().UnixMilli()
	r.next++
	r.pending = append(r.pending, ev)
	signal(r.ready)
}

// batch returns up to n unacknowledged events, at most maxReportBytes of
// them encoded (but at least one).
func (r *jobRun) batch(n int) []*croupierv1.JobEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	size, k := 0, 0
	for k < min(n, len(r.pending)) {
		size += proto.Size(r.pending[k])
		if k > 0 && size > maxReportBytes {
			break
		}
		k++
	}
	return append([]*croupierv1.JobEvent(nil), r.pending[:k]...)
}

// ack drops events up to seq; it reports whether the job is over and
// everything is delivered.
func (r *jobRun) ack(seq int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := 0
	for i < len(r.pending) && r.pending[i].GetSeq() <= seq {
		i++
	}
	if i > 0 {
		r.pending = append(r.pending[:0], r.pending[i:]...)
		signal(r.space)
	}
	return r.ended && len(r.pending) == 0
}

// jobs tracks the jobs running on this instance.
type jobs struct {
	c       *Client
	report  func(ctx context.Context, req *agentv1.ReportJobEventsRequest) (*agentv1.ReportJobEventsResponse, error)
	mu      sync.Mutex
	running map[string]*jobRun
	wg      sync.WaitGroup
}

// start runs a job unless it already runs here.
func (js *jobs) start(ctx context.Context, req *agentv1.StartJobRequest) (*agentv1.StartJobResponse, error) {
	c := js.c
	inv := req.GetInvocation()
	c.mu.RLock()
	fn, ok := c.functions[inv.GetFunctionId()]
	c.mu.RUnlock()
	if !ok {
		return nil, status.Errorf(codes.NotFound, "instance %s does not serve %s", c.opts.InstanceID, inv.GetFunctionId())
	}
	resp := &agentv1.StartJobResponse{InstanceId: c.opts.InstanceID, Incarnation: c.incarnation}
	js.mu.Lock()
	defer js.mu.Unlock()
	if _, dup := js.running[req.GetJobId()]; dup {
		return resp, nil
	}
	run := newJobRun(c.serveCtx, req.GetJobId())
	js.running[req.GetJobId()] = run
	job := &Job{Invocation: invocationOf(inv), JobID: req.GetJobId(), run: run}
	js.wg.Add(2)
	go func() {
		defer js.wg.Done()
		js.execute(run, job, fn)
	}()
	go func() {
		defer js.wg.Done()
		js.deliver(run)
	}()
	return resp, nil
}

// execute runs the handler and records how it ended.
func (js *jobs) execute(run *jobRun, job *Job, fn registered) {
	run.end0(&croupierv1.JobEvent{Type: croupierv1.EventType_START, Message: "started on " + js.c.opts.InstanceID})
	result, err := js.runHandler(run, job, fn)
	run.mu.Lock()
	reason := run.canceled
	run.mu.Unlock()
	switch {
	case reason != "":
		run.end(&croupierv1.JobEvent{Type: croupierv1.EventType_CANCELED, Message: clip(reason)})
	case err != nil:
		code := "FUNCTION_ERROR"
		var fe *Error
		if errors.As(err, &fe) {
			code = fe.Code
			err = errors.New(fe.Message)
		}
		data, _ := structpb.NewStruct(map[string]any{"error_code": code})
		run.end(&croupierv1.JobEvent{Type: croupierv1.EventType_ERROR, Message: clip(err.Error()), Data: data})
	case proto.Size(result) > MaxJobEventData:
		data, _ := structpb.NewStruct(map[string]any{"error_code": "RESULT_TOO_LARGE"})
		run.end(&croupierv1.JobEvent{Type: croupierv1.EventType_ERROR, Data: data,
			Message: fmt.Sprintf("the job's result encodes to %d bytes; at most %d", proto.Size(result), MaxJobEventData)})
	default:
		run.end(&croupierv1.JobEvent{Type: croupierv1.EventType_DONE, Progress: 1, Message: "done", Data: result})
	}
}

// end0 appends the START event (never blocks: the buffer is empty).
func (r *jobRun) end0(ev *croupierv1.JobEvent) {
	r.mu.Lock()
	r.appendLocked(ev)
	r.mu.Unlock()
}

func (js *jobs) runHandler(run *jobRun, job *Job, fn registered) (result *structpb.Struct, err error) {
	defer func() {
		if r := recover(); r != nil {
			js.c.log.Error("job handler panicked", "job", run.id, "panic", r, "stack", string(debug.Stack()))
			result, err = nil, &Error{Code: "PANIC", Message: fmt.Sprint("handler panicked: ", r)}
		}
	}()
	if fn.job != nil {
		return fn.job(run.ctx, job)
	}
	return fn.handler(run.ctx, job.Invocation)
}

// deliver sends the job's events to the agent in order until the server
// has them all, retrying through agent or server outages.
func (js *jobs) deliver(run *jobRun) {
	defer func() {
		js.mu.Lock()
		delete(js.running, run.id)
		js.mu.Unlock()
		run.cancel(errors.New("job ended"))
	}()
	backoff := 50 * time.Millisecond
	for {
		evs := run.batch(500)
		if len(evs) == 0 {
			select {
			case <-run.ready:
				continue
			case <-js.c.serveCtx.Done():
				return
			}
		}
		ctx, cancel := context.WithTimeout(js.c.serveCtx, 10*time.Second)
		resp, err := js.report(ctx, &agentv1.ReportJobEventsRequest{InstanceId: js.c.opts.InstanceID, JobId: run.id, Events: evs})
		cancel()
		if err != nil {
			if js.c.serveCtx.Err() != nil {
				return
			}
			js.c.log.Debug("job events not delivered yet; retrying", "job", run.id, "err", err)
			select {
			case <-time.After(backoff):
			case <-js.c.serveCtx.Done():
				return
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if done := run.ack(resp.GetAckedSeq()); done {
			return
		}
		if isTerminal(resp.GetStatus()) {
			// The server ended the job (cancelled while unreachable, or
			// declared failed): stop the handler; nothing more will be stored.
			run.cancel(fmt.Errorf("job is %s on the server", resp.GetStatus()))
			run.mu.Lock()
			run.ended, run.pending = true, nil
			run.mu.Unlock()
			return
		}
	}
}

func isTerminal(s string) bool { return s == "completed" || s == "failed" || s == "canceled" }

// cancel stops a running job on an operator's request.
func (js *jobs) cancelJob(_ context.Context, req *agentv1.CancelJobRequest) (*agentv1.CancelJobResponse, error) {
	js.mu.Lock()
	run, ok := js.running[req.GetJobId()]
	js.mu.Unlock()
	if !ok {
		return &agentv1.CancelJobResponse{Found: false}, nil
	}
	reason := req.GetReason()
	if reason == "" {
		reason = "canceled by operator"
	}
	run.mu.Lock()
	if run.canceled == "" && !run.ended {
		run.canceled = reason
	}
	run.mu.Unlock()
	run.cancel(errors.New(reason))
	return &agentv1.CancelJobResponse{Found: true}, nil
}
