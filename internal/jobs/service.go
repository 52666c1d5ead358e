// Package jobs runs asynchronous invocations. InvokeJob validates and routes
// like InvokeFunction, stores the job and returns its id at once; the game
// server runs it and reports events (START, PROGRESS, LOG, DONE, ERROR,
// CANCELED) numbered by a per-job sequence. Events are stored before they
// are acknowledged, so the game server re-sends anything unacknowledged
// after an agent or server outage; duplicates are ignored. Watchers read the
// stored log from any sequence and then follow it live.
package jobs

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/idempotency"
	"github.com/croupier/croupier/internal/invoke"
	"github.com/croupier/croupier/internal/registry"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/telemetry"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Caller sends job commands to agents over their tunnels.
type Caller interface {
	StartJob(ctx context.Context, agent string, req *agentv1.StartJobRequest) (*agentv1.StartJobResponse, error)
	CancelJob(ctx context.Context, agent string, req *agentv1.CancelJobRequest) (*agentv1.CancelJobResponse, error)
}

// Preparer validates and routes an invocation (invoke.Service).
type Preparer interface {
	Prepare(ctx context.Context, game, env, fn string, payload *structpb.Struct, opts *croupierv1.InvokeOptions) (*invoke.Call, error)
}

// Registry tells which agents and instances are alive.
type Registry interface {
	Agent(id string) (registry.Agent, bool)
}

// Store is the persistence the service needs.
type Store interface {
	Jobs() *store.Jobs
	Idempotency() *store.Idempotency
}

// Config tunes the service.
type Config struct {
	// CheckInterval is how often running jobs are checked against the
	// registry (the server's heartbeat interval).
	CheckInterval time.Duration
	// OrphanGrace is how long a job's agent may stay disconnected (restart,
	// network blip) before the job is declared failed, and how long a job
	// may stay unconfirmed: not started, or reloaded after a crash without
	// a record of the process that runs it.
	OrphanGrace time.Duration
	// IdempotencyWindow is how long InvokeJob idempotency keys are kept.
	IdempotencyWindow time.Duration
	// Retention and KeepJobs prune finished jobs: older than Retention, but
	// always the newest KeepJobs.
	Retention time.Duration
	KeepJobs  int
	Logger    *slog.Logger
	// Metrics receives job event counts; nil records nothing.
	Metrics *telemetry.Metrics
	// MaxEventBytes is a job's event budget: once its stored events weigh
	// this much (store.EventCost), its further events are acknowledged but
	// not stored, except the terminal one. 0 means DefaultMaxEventBytes.
	MaxEventBytes int64
}

// DefaultMaxEventBytes is the default Config.MaxEventBytes.
const DefaultMaxEventBytes = 32 << 20

// Service implements the job methods of FunctionService.
type Service struct {
	cfg    Config
	log    *slog.Logger
	store  Store
	prep   Preparer
	caller Caller
	reg    Registry
	notify *notifier
	now    func() time.Time
	keys   *idempotency.Keeper

	mu     sync.Mutex
	active map[string]*activeJob // non-terminal jobs this node knows of
	closed bool                  // Run has ended: no new dispatches

	ctx context.Context // the service's lifetime, for dispatches
	wg  sync.WaitGroup
}

// activeJob is the in-memory state of a non-terminal job. mu serialises
// everything that appends to the job's log on this node.
type activeJob struct {
	mu          sync.Mutex
	id          string
	agent       string
	instance    string // instance id within the agent
	incarnation string
	status      string
	lastSeq     int64
	eventBytes  int64 // store.Job.EventBytes as this node knows it
	overBudget  bool  // an event was not stored for the budget (logged once)
	absentSince time.Time
	// since is when this node began waiting for the job to start: its
	// creation, or its loading after a restart. A job not started within
	// OrphanGrace of it fails NOT_STARTED.
	since time.Time
	// unconfirmed marks a running job loaded without a recorded incarnation
	// (a crash hit before it was stored): nothing tells whether the instance
	// still runs it, so it must report within OrphanGrace or fail.
	unconfirmed bool
	// synced is when this state was last known to match the stored row:
	// with several server nodes the job's events may be stored by another
	// node (the one holding its agent's tunnel), leaving this copy behind.
	synced time.Time
}

// resyncAfter is how long check trusts an active job's cached state
// without a report through this node before re-reading its row, so a job
// that ended on another node leaves this node's memory.
const resyncAfter = time.Minute

// New returns a Service; Run must be running for dispatch and checks.
func New(cfg Config, st Store, prep Preparer, caller Caller, reg Registry) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxEventBytes <= 0 {
		cfg.MaxEventBytes = DefaultMaxEventBytes
	}
	s := &Service{cfg: cfg, log: cfg.Logger, store: st, prep: prep, caller: caller, reg: reg,
		notify: newNotifier(), now: time.Now, active: map[string]*activeJob{}, ctx: context.Background()}
	// Creating a job is a few writes: a claim pending for a minute was left
	// by a server that died after claiming the key — before storing the job
	// (the key is taken over) or after (recoverJob finds the job).
	s.keys = idempotency.New(idempotency.Config{Window: cfg.IdempotencyWindow, StaleAfter: claimLifetime,
		Recover: s.recoverJob, Logger: cfg.Logger}, st.Idempotency())
	return s
}

// claimLifetime is how long creating a job may hold its idempotency key.
const claimLifetime = time.Minute

// recoverJob finds the job a dead server stored under a key it claimed at
// claimedAt but never completed: created by the same caller, with the same
// key, while the claim was alive.
func (s *Service) recoverJob(ctx context.Context, req idempotency.Request, claimedAt time.Time) (proto.Message, bool, error) {
	key := req.Options.GetIdempotencyKey()
	f := store.JobFilter{Game: req.Game, Env: req.Env, Function: req.Function,
		CreatedAfter: claimedAt.Add(-time.Second), CreatedBefore: claimedAt.Add(claimLifetime + time.Second), PageSize: store.MaxJobsPageSize}
	for range 10 { // 10,000 jobs of one function created within a minute
		list, next, err := s.store.Jobs().List(ctx, f)
		if err != nil {
			return nil, false, err
		}
		for _, j := range list {
			if j.Actor == req.Caller && j.IdempotencyKey == key {
				return &croupierv1.InvokeJobResponse{Success: true, JobId: j.ID, Status: store.JobPending}, true, nil
			}
		}
		if next == "" {
			break
		}
		f.PageToken = next
	}
	return nil, false, nil
}

// Start runs InvokeJob for actor: Prepare, then StartCall.
func (s *Service) Start(ctx context.Context, req *croupierv1.InvokeJobRequest, actor string) (*croupierv1.InvokeJobResponse, error) {
	call, err := s.Prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	return s.StartCall(ctx, call, actor)
}

// Prepare validates and routes an InvokeJob request without starting it.
func (s *Service) Prepare(ctx context.Context, req *croupierv1.InvokeJobRequest) (*invoke.Call, error) {
	if mode := req.GetOptions().GetRoutingMode(); mode == invoke.ModeBroadcast {
		return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument,
			"a job runs on one instance: use routing_mode lb, targeted or hash", "field", "options.routing_mode")
	}
	return s.prep.Prepare(ctx, req.GetGameId(), req.GetEnv(), req.GetFunctionId(), req.GetPayload(), req.GetOptions())
}

// StartCall stores a prepared call as a job, returns its id at once and
// starts it on its instance in the background.
func (s *Service) StartCall(ctx context.Context, call *invoke.Call, actor string) (*croupierv1.InvokeJobResponse, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, apierr.New(codes.Unavailable, apierr.CodeUnavailable, "the server is shutting down; start the job again shortly")
	}
	payload, err := json.Marshal(call.Payload.AsMap())
	if err != nil {
		return nil, apierr.Internal(s.log, err)
	}
	key := call.Options.GetIdempotencyKey()
	resp := &croupierv1.InvokeJobResponse{}
	claim, err := s.keys.Begin(ctx, idempotency.Request{Op: "job", Caller: actor, Game: call.Game, Env: call.Env,
		Function: call.Function, Options: call.Options, Payload: call.Payload}, resp)
	if err != nil {
		return nil, err
	}
	if claim.Replayed {
		if j, err := s.store.Jobs().Get(ctx, resp.GetJobId()); err == nil {
			resp.Status = j.Status
		}
		return resp, nil
	}
	target := call.Targets[0]
	job := &store.Job{
		ID: newJobID(), GameID: call.Game, Env: call.Env, FunctionID: call.Function, Status: store.JobPending,
		Instance: target.Key(), Payload: payload, Actor: actor, IdempotencyKey: key,
	}
	if err := s.store.Jobs().Create(ctx, job); err != nil {
		claim.Release(ctx) // no job, nothing dispatched
		return nil, apierr.Internal(s.log, err)
	}
	resp = &croupierv1.InvokeJobResponse{Success: true, JobId: job.ID, Status: store.JobPending}
	claim.Complete(ctx, resp)
	aj := &activeJob{id: job.ID, agent: target.Agent, instance: target.Instance, status: store.JobPending, since: s.now(), synced: s.now()}
	inv := &agentv1.InvokeRequest{InvocationId: job.ID, GameId: call.Game, Env: call.Env, FunctionId: call.Function,
		InstanceId: target.Instance, Payload: call.Payload, IdempotencyKey: key, Config: call.Config, Actor: actor}
	s.mu.Lock()
	s.active[job.ID] = aj
	if !s.closed { // shutting down: the job stays pending; the next start's check() ends it
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.dispatch(aj, inv)
		}()
	}
	s.mu.Unlock()
	s.log.Info("job created", "job", job.ID, "function", call.Function, "instance", target.Key(), "actor", actor)
	return resp, nil
}

func newJobID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "job_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// dispatch starts the job on its instance.
func (s *Service) dispatch(aj *activeJob, inv *agentv1.InvokeRequest) {
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	resp, err := s.caller.StartJob(ctx, aj.agent, &agentv1.StartJobRequest{JobId: aj.id, Invocation: inv})
	if err != nil {
		st := status.Convert(err)
		s.finish(aj, store.JobFailed, croupierv1.EventType_ERROR, "START_FAILED",
			fmt.Sprintf("could not start the job on %s/%s: %s: %s", aj.agent, aj.instance, st.Code(), st.Message()))
		return
	}
	aj.mu.Lock()
	aj.incarnation = resp.GetIncarnation()
	st := aj.status
	aj.mu.Unlock()
	if store.IsTerminal(st) {
		if st != store.JobCanceled {
			return // it already ran to the end (its events beat this answer)
		}
		// Cancelled while it was being started: stop it on the instance.
		_, _ = s.caller.CancelJob(ctx, aj.agent, &agentv1.CancelJobRequest{JobId: aj.id, InstanceId: aj.instance, Reason: "canceled before it started"})
		return
	}
	applied, err := s.store.Jobs().UpdateStatus(ctx, aj.id, []string{store.JobPending}, store.JobRunning,
		store.SetIncarnation(resp.GetIncarnation()), store.SetStartedAt(s.now()))
	if err == nil && !applied {
		_, err = s.store.Jobs().UpdateStatus(ctx, aj.id, []string{store.JobRunning}, store.JobRunning, store.SetIncarnation(resp.GetIncarnation()))
	}
	if err != nil {
		s.log.Warn("record job start", "job", aj.id, "err", err)
	}
	aj.mu.Lock()
	if aj.status == store.JobPending {
		aj.status = store.JobRunning
	}
	aj.mu.Unlock()
	s.notify.notify(aj.id)
}

// load returns the active state of a job, loading it from the store when
// this node has not seen it (after a restart, or on another node).
func (s *Service) load(ctx context.Context, id string) (*activeJob, *store.Job, error) {
	s.mu.Lock()
	aj, ok := s.active[id]
	s.mu.Unlock()
	if ok {
		return aj, nil, nil
	}
	j, err := s.store.Jobs().Get(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, apierr.New(codes.NotFound, apierr.CodeJobNotFound, "job "+id+" does not exist", "job_id", id)
		}
		return nil, nil, apierr.Internal(s.log, err)
	}
	if store.IsTerminal(j.Status) {
		return nil, j, nil
	}
	if j, err = s.settle(ctx, j); err != nil {
		return nil, nil, apierr.Internal(s.log, err)
	}
	if store.IsTerminal(j.Status) {
		return nil, j, nil
	}
	agent, instance, _ := strings.Cut(j.Instance, "/")
	aj = &activeJob{id: j.ID, agent: agent, instance: instance, incarnation: j.Incarnation, status: j.Status,
		lastSeq: j.LastSeq, eventBytes: j.EventBytes, since: s.now(), synced: s.now(), unconfirmed: j.Status == store.JobRunning && j.Incarnation == ""}
	s.mu.Lock()
	if existing, ok := s.active[id]; ok {
		aj = existing
	} else {
		s.active[id] = aj
	}
	s.mu.Unlock()
	return aj, j, nil
}

// settle ends a job whose log already holds its terminal event but whose
// status does not say so: what a crash between the two writes left behind
// before they shared a transaction (record). Without it the game server,
// which has its events acknowledged, never reports again and the job stays
// running for ever.
func (s *Service) settle(ctx context.Context, j *store.Job) (*store.Job, error) {
	if j.LastSeq == 0 {
		return j, nil
	}
	evs, err := s.store.Jobs().Events(ctx, j.ID, j.LastSeq, 1)
	if err != nil || len(evs) == 0 {
		return j, err
	}
	ev := toProtoEvent(j.ID, evs[0])
	to, ok := terminalStatus(ev.GetType())
	if !ok {
		return j, nil
	}
	aj := &activeJob{id: j.ID, incarnation: j.Incarnation, status: j.Status, lastSeq: j.LastSeq}
	if err := s.record(ctx, aj, batch{progress: -1, end: ev}); err != nil {
		return nil, err
	}
	s.log.Warn("job status settled from its stored terminal event", "job", j.ID, "status", to)
	s.notify.notify(j.ID)
	return s.store.Jobs().Get(ctx, j.ID)
}

// Report stores events a game server reported through agentID.
func (s *Service) Report(ctx context.Context, req *croupierv1.ReportJobEventsRequest) (*croupierv1.ReportJobEventsResponse, error) {
	if n := len(req.GetEvents()); n > MaxEventsInReport {
		return nil, apierr.Newf(codes.InvalidArgument, apierr.CodeInvalidArgument, "%d events in one report; at most %d", n, MaxEventsInReport)
	}
	aj, j, err := s.load(ctx, req.GetJobId())
	if err != nil {
		return nil, err
	}
	if aj == nil { // finished: acknowledge so the sender stops
		if req.GetInstance() != j.Instance {
			return nil, apierr.New(codes.PermissionDenied, apierr.CodeScopeMismatch,
				fmt.Sprintf("job %s did not run on %s", j.ID, req.GetInstance()), "job_id", j.ID)
		}
		return &croupierv1.ReportJobEventsResponse{AckedSeq: j.LastSeq, Status: j.Status}, nil
	}
	if req.GetInstance() != aj.agent+"/"+aj.instance || req.GetAgentId() != aj.agent {
		return nil, apierr.New(codes.PermissionDenied, apierr.CodeScopeMismatch,
			fmt.Sprintf("job %s runs on %s/%s, not %s", aj.id, aj.agent, aj.instance, req.GetInstance()), "job_id", aj.id)
	}
	aj.mu.Lock()
	defer aj.mu.Unlock()
	for resynced := false; ; resynced = true {
		if store.IsTerminal(aj.status) {
			s.forget(aj.id)
			return &croupierv1.ReportJobEventsResponse{AckedSeq: aj.lastSeq, Status: aj.status}, nil
		}
		b, err := accept(aj, req.GetEvents(), s.cfg.MaxEventBytes)
		if err == nil {
			if b.through == 0 {
				return &croupierv1.ReportJobEventsResponse{AckedSeq: aj.lastSeq, Status: aj.status}, nil
			}
			b.incarnation = aj.incarnation
			if b.incarnation == "" {
				// The dispatch has not recorded it yet (or a crash lost it):
				// the instance's current process is the one reporting.
				b.incarnation = s.currentIncarnation(aj)
			}
			if b.dropped > 0 && !aj.overBudget {
				aj.overBudget = true
				s.log.Warn("job over its event budget: its further events are not stored, but for the terminal one", "job", aj.id,
					"event_bytes", aj.eventBytes, "max_event_bytes", s.cfg.MaxEventBytes)
			}
			if err = s.record(ctx, aj, b); err == nil {
				aj.unconfirmed, aj.synced = false, s.now()
				s.notify.notify(aj.id)
				if store.IsTerminal(aj.status) {
					s.forget(aj.id)
				}
				return &croupierv1.ReportJobEventsResponse{AckedSeq: aj.lastSeq, Status: aj.status}, nil
			}
			err = errWrite{err}
		}
		// A gap, or a write that failed (an event already stored), may only
		// mean that another node stored this job's events since this node
		// cached it: the agent's tunnel moved. Re-read the row once.
		before, was := aj.lastSeq, aj.status
		if resynced || s.resync(ctx, aj) != nil || (aj.lastSeq == before && aj.status == was) {
			if we, ok := err.(errWrite); ok {
				return nil, apierr.Internal(s.log, we.error)
			}
			return nil, err
		}
	}
}

// errWrite marks a store error in Report, logged only if re-reading the
// job does not explain it.
type errWrite struct{ error }

// batch is the new part of a report, and what it changes in the job.
type batch struct {
	events []store.Event // to store
	// through is the seq of the report's last new event (0: none), stored
	// or not; dropped counts the new events not stored (the job is over its
	// event budget).
	through  int64
	dropped  int
	started  bool
	progress float64 // -1: no progress event
	end      *croupierv1.JobEvent
	// incarnation runs the job (empty: the one the job has).
	incarnation string
}

// Limits of what a game server reports (sdk.MaxJobEventMessage and
// sdk.MaxJobEventData are the same; the SDK cuts and sends within them), checked
// before anything is stored.
const (
	MaxEventMessage   = 64 << 10
	MaxEventData      = 1 << 20
	MaxEventsInReport = 1000
)

// accept returns the events of a report that follow aj.lastSeq; aj.mu is
// held. A non-terminal event that does not fit in what is left of the job's
// event budget, maxBytes (counting the events before it in the report),
// is acknowledged (through) but not stored (dropped); the job's status and
// progress still follow it. The terminal event is always stored.
func accept(aj *activeJob, evs []*croupierv1.JobEvent, maxBytes int64) (batch, error) {
	b := batch{progress: -1}
	next := aj.lastSeq + 1
	weight := aj.eventBytes
	for _, ev := range evs {
		if ev.GetSeq() < next {
			continue // already stored: a re-send after a lost acknowledgement
		}
		if ev.GetSeq() != next {
			return batch{}, apierr.New(codes.FailedPrecondition, apierr.CodeEventGap,
				fmt.Sprintf("job %s: expected event seq %d, got %d; re-send from %d", aj.id, next, ev.GetSeq(), next),
				"expected_seq", fmt.Sprint(next))
		}
		if b.end != nil {
			return batch{}, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "events after the job's terminal event")
		}
		if len(ev.GetMessage()) > MaxEventMessage {
			return batch{}, apierr.Newf(codes.InvalidArgument, apierr.CodeInvalidArgument, "event %d: message of %d bytes; at most %d", ev.GetSeq(), len(ev.GetMessage()), MaxEventMessage)
		}
		if n := proto.Size(ev.GetData()); n > MaxEventData {
			return batch{}, apierr.Newf(codes.InvalidArgument, apierr.CodeInvalidArgument, "event %d: data of %d bytes encoded; at most %d", ev.GetSeq(), n, MaxEventData)
		}
		se, err := toStoreEvent(ev)
		if err != nil {
			return batch{}, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "event data: "+err.Error())
		}
		_, terminal := terminalStatus(ev.GetType())
		if cost := store.EventCost(se); terminal || weight+cost <= maxBytes {
			b.events = append(b.events, se)
			weight += cost
		} else {
			b.dropped++
		}
		b.through = next
		next++
		switch ev.GetType() {
		case croupierv1.EventType_START:
			b.started = true
		case croupierv1.EventType_PROGRESS:
			b.progress = ev.GetProgress()
		}
		if terminal {
			b.end = ev
		}
	}
	return b, nil
}

// resync brings aj up to the job's stored row: with several server nodes
// another node may have stored events of this job, or ended it, since this
// node cached it. aj.mu is held.
func (s *Service) resync(ctx context.Context, aj *activeJob) error {
	j, err := s.store.Jobs().Get(ctx, aj.id)
	if err != nil {
		return err
	}
	aj.lastSeq = max(aj.lastSeq, j.LastSeq)
	aj.eventBytes = max(aj.eventBytes, j.EventBytes)
	if j.Incarnation != "" {
		aj.incarnation = j.Incarnation
	}
	if j.Status != store.JobPending || store.IsTerminal(aj.status) {
		aj.status = j.Status // never back to pending: the dispatch may be ahead of its write
	}
	aj.synced = s.now()
	return nil
}

func (s *Service) currentIncarnation(aj *activeJob) string {
	a, ok := s.reg.Agent(aj.agent)
	if !ok {
		return ""
	}
	for _, in := range a.Instances {
		if in.ID == aj.instance {
			return in.Incarnation
		}
	}
	return ""
}

// record stores a batch of events and what it changes in the job's row in
// one transaction, so that no crash leaves a START or terminal event stored
// without its status (or a running job without the incarnation that runs
// it); aj.mu is held.
func (s *Service) record(ctx context.Context, aj *activeJob, b batch) error {
	var fields []store.JobField
	to, inc, end := aj.status, b.incarnation, b.end
	if inc == "" {
		inc = aj.incarnation
	}
	if b.started && aj.status == store.JobPending {
		to = store.JobRunning
		fields = append(fields, store.SetStartedAt(s.now()))
	}
	if inc != aj.incarnation {
		fields = append(fields, store.SetIncarnation(inc))
	}
	if b.progress >= 0 {
		fields = append(fields, store.SetProgress(b.progress))
	}
	if b.dropped > 0 {
		fields = append(fields, store.SkipThrough(b.through))
	}
	if end != nil {
		to, _ = terminalStatus(end.GetType())
		fields = append(fields, store.SetEndedAt(s.now()))
		switch to {
		case store.JobCompleted:
			fields = append(fields, store.SetProgress(1))
			if end.GetData() != nil {
				res, err := json.Marshal(end.GetData().AsMap())
				if err != nil {
					return err
				}
				fields = append(fields, store.SetResult(res))
			}
		case store.JobFailed:
			code := end.GetData().GetFields()["error_code"].GetStringValue()
			if code == "" {
				code = apierr.ResultFunctionError
			}
			fields = append(fields, store.SetError(code, end.GetMessage()))
		case store.JobCanceled:
			fields = append(fields, store.SetError("CANCELED", end.GetMessage()))
		}
	}
	var err error
	if to == aj.status && len(fields) == 0 {
		err = s.store.Jobs().AppendEvents(ctx, aj.id, b.events)
	} else {
		err = s.store.Jobs().AppendEventsWithStatus(ctx, aj.id, b.events, to, fields...)
	}
	if err != nil {
		return err
	}
	for _, e := range b.events {
		s.cfg.Metrics.JobEvent(croupierv1.EventType(e.Type).String())
		aj.eventBytes += store.EventCost(e)
	}
	s.cfg.Metrics.JobEventsDropped(b.dropped)
	aj.lastSeq = max(aj.lastSeq, b.through) // through: the batch's last new event, stored or not
	aj.incarnation, aj.status = inc, to
	return nil
}

// finish ends a job from the server side (it could not start, its game
// server is gone, or it was cancelled while unreachable) with a terminal
// event that says why.
func (s *Service) finish(aj *activeJob, to string, typ croupierv1.EventType, code, msg string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
	defer cancel()
	aj.mu.Lock()
	defer aj.mu.Unlock()
	// Another node may have stored events since this node cached the job
	// (or ended it): the terminal event goes after the stored ones.
	if err := s.resync(ctx, aj); err != nil {
		s.log.Error("end job", "job", aj.id, "err", err)
		return err
	}
	if store.IsTerminal(aj.status) {
		s.forget(aj.id)
		return nil
	}
	data, _ := structpb.NewStruct(map[string]any{"error_code": code})
	ev := &croupierv1.JobEvent{JobId: aj.id, Seq: aj.lastSeq + 1, Type: typ, Message: msg, Timestamp: s.now().UnixMilli(), Data: data}
	se, _ := toStoreEvent(ev)
	if err := s.record(ctx, aj, batch{events: []store.Event{se}, through: ev.GetSeq(), progress: -1, end: ev}); err != nil {
		s.log.Error("end job", "job", aj.id, "err", err)
		return err
	}
	s.log.Warn("job ended by the server", "job", aj.id, "status", to, "reason", msg)
	s.notify.notify(aj.id)
	s.forget(aj.id)
	return nil
}

func (s *Service) forget(id string) {
	s.mu.Lock()
	delete(s.active, id)
	s.mu.Unlock()
}

// cancelPoll is how often Cancel re-reads a job while it waits for the
// game server's CANCELED event, which may be stored by another node.
const cancelPoll = 250 * time.Millisecond

// Cancel runs CancelJob.
func (s *Service) Cancel(ctx context.Context, req *croupierv1.CancelJobRequest) (*croupierv1.CancelJobResponse, error) {
	aj, j, err := s.load(ctx, req.GetJobId())
	if err != nil {
		return nil, err
	}
	if aj == nil {
		return nil, apierr.New(codes.FailedPrecondition, apierr.CodeJobFinished,
			fmt.Sprintf("job %s already ended (%s); only running or pending jobs can be cancelled", j.ID, j.Status), "status", j.Status)
	}
	reason := req.GetReason()
	if reason == "" {
		reason = "canceled by operator"
	}
	aj.mu.Lock()
	started := aj.incarnation != "" || aj.status == store.JobRunning
	aj.mu.Unlock()
	if !started {
		if err := s.finish(aj, store.JobCanceled, croupierv1.EventType_CANCELED, "CANCELED", reason); err != nil {
			return nil, apierr.Internal(s.log, err)
		}
		return &croupierv1.CancelJobResponse{Success: true, Status: store.JobCanceled}, nil
	}
	wait, release := s.notify.wait(aj.id)
	defer func() { release() }()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	resp, err := s.caller.CancelJob(cctx, aj.agent, &agentv1.CancelJobRequest{JobId: aj.id, Reason: reason, InstanceId: aj.instance})
	cancel()
	if err != nil || !resp.GetFound() {
		why := "the game server no longer runs it"
		if err != nil {
			why = "the game server could not be reached: " + status.Convert(err).Message()
		}
		if err := s.finish(aj, store.JobCanceled, croupierv1.EventType_CANCELED, "CANCELED", reason+" ("+why+")"); err != nil {
			return nil, apierr.Internal(s.log, err)
		}
		return &croupierv1.CancelJobResponse{Success: true, Status: store.JobCanceled}, nil
	}
	// The handler's context is cancelled; give it a moment to report CANCELED
	// (through this node, or through another one holding the agent's tunnel
	// now: the row is re-read every cancelPoll).
	deadline := time.After(5 * time.Second)
	poll := time.NewTicker(cancelPoll)
	defer poll.Stop()
	for {
		aj.mu.Lock()
		st := aj.status
		aj.mu.Unlock()
		if store.IsTerminal(st) {
			return &croupierv1.CancelJobResponse{Success: true, Status: st}, nil
		}
		select {
		case <-wait:
			release()
			wait, release = s.notify.wait(aj.id)
		case <-poll.C:
			aj.mu.Lock()
			if err := s.resync(ctx, aj); err == nil && store.IsTerminal(aj.status) {
				s.forget(aj.id)
			}
			aj.mu.Unlock()
		case <-deadline:
			return &croupierv1.CancelJobResponse{Success: true, Status: st}, nil
		case <-ctx.Done():
			return nil, apierr.FromContext(ctx.Err())
		}
	}
}

// Get returns a job.
func (s *Service) Get(ctx context.Context, id string) (*croupierv1.Job, error) {
	j, err := s.store.Jobs().Get(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, apierr.New(codes.NotFound, apierr.CodeJobNotFound, "job "+id+" does not exist", "job_id", id)
		}
		return nil, apierr.Internal(s.log, err)
	}
	return toProtoJob(j), nil
}

// List returns jobs, newest first.
func (s *Service) List(ctx context.Context, req *croupierv1.ListJobsRequest) (*croupierv1.ListJobsResponse, error) {
	f := store.JobFilter{Game: req.GetGameId(), Env: req.GetEnv(), Function: req.GetFunctionId(), Status: req.GetStatus(),
		PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()}
	if req.GetCreatedAfter() > 0 {
		f.CreatedAfter = time.UnixMilli(req.GetCreatedAfter())
	}
	if req.GetCreatedBefore() > 0 {
		f.CreatedBefore = time.UnixMilli(req.GetCreatedBefore())
	}
	list, next, err := s.store.Jobs().List(ctx, f)
	if err != nil {
		if errors.Is(err, store.ErrInvalidArgument) {
			return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, store.Message(err))
		}
		return nil, apierr.Internal(s.log, err)
	}
	resp := &croupierv1.ListJobsResponse{NextPageToken: next}
	for i := range list {
		resp.Jobs = append(resp.Jobs, toProtoJob(&list[i]))
	}
	return resp, nil
}

// Stream sends a job's events from fromSeq (1 = the first) and then follows
// the log until the job's terminal event has been sent or ctx ends.
func (s *Service) Stream(ctx context.Context, id string, fromSeq int64, send func(*croupierv1.JobEvent) error) error {
	if fromSeq < 0 {
		return apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "from_seq must not be negative")
	}
	if _, err := s.Get(ctx, id); err != nil {
		return err
	}
	next := max(fromSeq, 1)
	for {
		done, err := s.streamOnce(ctx, id, &next, send)
		if done || err != nil {
			return err
		}
	}
}

// streamOnce sends what is stored from *next and, when caught up, waits for
// more. It reports whether the stream is over.
func (s *Service) streamOnce(ctx context.Context, id string, next *int64, send func(*croupierv1.JobEvent) error) (bool, error) {
	wait, release := s.notify.wait(id) // before reading: no notify is missed
	defer release()
	evs, err := s.store.Jobs().Events(ctx, id, *next, store.DefaultEventsLimit)
	if err != nil {
		if ctx.Err() != nil {
			return true, streamEnded(*next)
		}
		return true, apierr.Internal(s.log, err)
	}
	for _, e := range evs {
		ev := toProtoEvent(id, e)
		if err := send(ev); err != nil {
			return true, err
		}
		*next = e.Seq + 1
		if _, ok := terminalStatus(ev.GetType()); ok {
			return true, nil
		}
	}
	if len(evs) == store.DefaultEventsLimit {
		return false, nil
	}
	if len(evs) == 0 && *next > 1 {
		// A finished job whose terminal event precedes fromSeq ends the stream.
		if j, err := s.store.Jobs().Get(ctx, id); err == nil && store.IsTerminal(j.Status) && j.LastSeq < *next {
			return true, nil
		}
	}
	select {
	case <-ctx.Done():
		return true, streamEnded(*next)
	case <-wait:
	case <-time.After(time.Second): // events stored by another server node
	}
	return false, nil
}

// streamEnded is what a watch returns when it is cut short (the server is
// shutting down, or the caller left — then nobody reads it): UNAVAILABLE
// with the cursor to resume from.
func streamEnded(next int64) error {
	return apierr.New(codes.Unavailable, apierr.CodeUnavailable,
		fmt.Sprintf("event stream interrupted; watch again with from_seq %d", next), "from_seq", fmt.Sprint(next))
}

// Open loads the unfinished jobs and binds the service to ctx, which bounds
// every dispatch. Call it before serving requests.
func (s *Service) Open(ctx context.Context) error {
	s.ctx = ctx
	return s.loadActive(ctx)
}

// Run checks jobs until ctx ends: it fails those whose game server is gone
// and prunes old finished jobs. It waits for dispatches before returning.
func (s *Service) Run(ctx context.Context) error {
	defer func() {
		s.mu.Lock()
		s.closed = true // under mu: no dispatch is added after this
		s.mu.Unlock()
		s.wg.Wait()
	}()
	t := time.NewTicker(s.cfg.CheckInterval)
	defer t.Stop()
	lastPrune := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		s.check()
		if s.now().Sub(lastPrune) > 10*time.Minute {
			lastPrune = s.now()
			if n, err := s.store.Jobs().Prune(ctx, s.now().Add(-s.cfg.Retention), s.cfg.KeepJobs); err != nil {
				s.log.Warn("prune jobs", "err", err)
			} else if n > 0 {
				s.log.Info("pruned finished jobs", "n", n)
			}
		}
	}
}

func (s *Service) loadActive(ctx context.Context) error {
	for _, st := range []string{store.JobPending, store.JobRunning} {
		token := ""
		for {
			list, next, err := s.store.Jobs().List(ctx, store.JobFilter{Status: st, PageSize: 500, PageToken: token})
			if err != nil {
				return fmt.Errorf("load %s jobs: %w", st, err)
			}
			for _, j := range list {
				if _, _, err := s.load(ctx, j.ID); err != nil {
					return err
				}
			}
			if next == "" {
				break
			}
			token = next
		}
	}
	return nil
}

// check fails jobs whose game server is gone: at once when the agent is
// connected and the instance (or its incarnation) is not there, after
// OrphanGrace when the agent itself is away.
func (s *Service) check() {
	s.mu.Lock()
	list := make([]*activeJob, 0, len(s.active))
	for _, aj := range s.active {
		list = append(list, aj)
	}
	s.mu.Unlock()
	now := s.now()
	for _, aj := range list {
		if s.resyncStale(aj, now) {
			continue
		}
		aj.mu.Lock()
		agentID, instanceID, inc, absent := aj.agent, aj.instance, aj.incarnation, aj.absentSince
		started := inc != "" || aj.status == store.JobRunning
		since, unconfirmed := aj.since, aj.unconfirmed
		aj.mu.Unlock()
		if !started {
			// Not started within the grace: the dispatch hangs, or the
			// server restarted before the start was confirmed (and the game
			// server, if it did start it, has not reported since).
			if now.Sub(since) > s.cfg.OrphanGrace {
				s.finish(aj, store.JobFailed, croupierv1.EventType_ERROR, "NOT_STARTED",
					fmt.Sprintf("the job was not confirmed started on game server %s/%s within %s", agentID, instanceID, s.cfg.OrphanGrace))
			}
			continue
		}
		if unconfirmed {
			if now.Sub(since) > s.cfg.OrphanGrace {
				s.finish(aj, store.JobFailed, croupierv1.EventType_ERROR, "GAME_SERVER_LOST",
					fmt.Sprintf("the server restarted before recording which process of game server %s/%s runs the job, and the job has not reported for %s", agentID, instanceID, s.cfg.OrphanGrace))
			}
			continue
		}
		a, ok := s.reg.Agent(agentID)
		if !ok {
			if absent.IsZero() {
				aj.mu.Lock()
				aj.absentSince = now
				aj.mu.Unlock()
			} else if now.Sub(absent) > s.cfg.OrphanGrace {
				s.finish(aj, store.JobFailed, croupierv1.EventType_ERROR, "AGENT_LOST",
					fmt.Sprintf("agent %s has been disconnected for %s; the job's game server %s is presumed lost", agentID, now.Sub(absent).Round(time.Second), instanceID))
			}
			continue
		}
		present, restarted := false, false
		for _, in := range a.Instances {
			if in.ID == instanceID {
				present = true
				restarted = inc != "" && in.Incarnation != "" && in.Incarnation != inc
				break
			}
		}
		switch {
		case restarted:
			s.finish(aj, store.JobFailed, croupierv1.EventType_ERROR, "GAME_SERVER_LOST",
				fmt.Sprintf("game server %s/%s restarted while running the job", agentID, instanceID))
		case present:
			aj.mu.Lock()
			aj.absentSince = time.Time{}
			aj.mu.Unlock()
		case absent.IsZero():
			// Not (yet) reconnected to its agent, e.g. after an agent restart.
			aj.mu.Lock()
			aj.absentSince = now
			aj.mu.Unlock()
		case now.Sub(absent) > s.cfg.OrphanGrace:
			s.finish(aj, store.JobFailed, croupierv1.EventType_ERROR, "GAME_SERVER_LOST",
				fmt.Sprintf("game server %s/%s has not reconnected for %s", agentID, instanceID, now.Sub(absent).Round(time.Second)))
		}
	}
}

// resyncStale re-reads a job not reported through this node for
// resyncAfter and forgets it if it ended (on another node); it reports
// whether it did.
func (s *Service) resyncStale(aj *activeJob, now time.Time) bool {
	aj.mu.Lock()
	defer aj.mu.Unlock()
	if now.Sub(aj.synced) < resyncAfter {
		return false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
	defer cancel()
	if err := s.resync(ctx, aj); err != nil {
		s.log.Warn("re-read job", "job", aj.id, "err", err)
		return false
	}
	if !store.IsTerminal(aj.status) {
		return false
	}
	s.forget(aj.id)
	return true
}

// InstancesDeparted fails at once the jobs of instances whose agent saw
// their process go (gone maps instance id to incarnation).
func (s *Service) InstancesDeparted(agentID string, gone map[string]string) {
	s.mu.Lock()
	var hit []*activeJob
	for _, aj := range s.active {
		if aj.agent != agentID {
			continue
		}
		if inc, ok := gone[aj.instance]; ok {
			aj.mu.Lock()
			match := aj.incarnation == "" || inc == "" || aj.incarnation == inc
			aj.mu.Unlock()
			if match {
				hit = append(hit, aj)
			}
		}
	}
	s.mu.Unlock()
	for _, aj := range hit {
		s.finish(aj, store.JobFailed, croupierv1.EventType_ERROR, "GAME_SERVER_LOST",
			fmt.Sprintf("game server %s/%s exited while running the job", agentID, aj.instance))
	}
}
