// Package approval implements the two-person rule: a call to a function
// whose descriptor requires approval does not run when invoked; it becomes a
// pending request that a different operator holding approval:decide on the
// function's scope approves (the call then starts as a job) or rejects, or
// that expires. See docs/access.md.
package approval

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/idempotency"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/rbac"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Stable ErrorInfo codes of this package: names for entries of the one
// catalog in internal/apierr.
const (
	CodeNotFound      = apierr.CodeApprovalNotFound
	CodeSelfApproval  = apierr.CodeSelfApproval
	CodeNotPending    = apierr.CodeApprovalNotPending
	CodeExpired       = apierr.CodeApprovalExpired
	CodeExecuteFailed = apierr.CodeApprovalExecuteFailed
)

// Statuses, as stored.
const (
	StatusPending  = store.ApprovalPending
	StatusApproved = store.ApprovalApproved
	StatusRejected = store.ApprovalRejected
	StatusExpired  = store.ApprovalExpired
	StatusExecuted = store.ApprovalExecuted
	StatusFailed   = store.ApprovalFailed
)

// Request is an approval request.
type Request struct {
	ID string
	// Requester is the principal (principal.Principal.String()) who invoked.
	Requester string
	Game      string
	Env       string
	Function  string
	// Payload is the JSON the call runs with.
	Payload json.RawMessage
	// Body is the same payload as the call's Struct, when the caller has it
	// (the edge does): Submit hashes it for an idempotency key rather than
	// decode Payload again. Not stored.
	Body    *structpb.Struct
	Options *croupierv1.InvokeOptions
	// SensitiveFields (JSON pointers) are masked whenever the request is shown.
	SensitiveFields []string
	Status          string
	CreatedAt       time.Time
	ExpiresAt       time.Time
	DecidedBy       string
	DecidedAt       time.Time
	// Reason is the approver's comment or the rejection reason.
	Reason string
	JobID  string
	// Error says why an approved call could not be started.
	Error string
}

// Executor starts an approved call and returns the id of the job it
// started. The server passes one that starts the job as the requester
// would have (same game, env, function, payload and options), using
// "approval:"+req.ID as the idempotency key so a repeated start is a no-op.
type Executor func(ctx context.Context, req Request) (jobID string, err error)

// Config configures a Service.
type Config struct {
	Store   *store.Store
	Execute Executor
	// Audit records requests, decisions, expiries; nil records nothing.
	Audit audit.Recorder
	// TTL is how long a request waits for a decision; default 1 hour.
	TTL time.Duration
	// ExecuteTimeout bounds one Execute call; default 30 s.
	ExecuteTimeout time.Duration
	// StaleAfter: a request approved this long ago that has not started
	// (the server stopped in between) is marked failed by Sweep; default 5
	// minutes.
	StaleAfter time.Duration
	// IdempotencyWindow is how long an idempotency key keeps standing for
	// the request it made (Submit); default 24 hours.
	IdempotencyWindow time.Duration
	// KeyStaleAfter is how long a key claimed by a Submit may stay
	// unsettled before a retry takes it over (the server stopped in the
	// middle of that Submit); default 1 minute.
	KeyStaleAfter time.Duration
	Now           func() time.Time
	Logger        *slog.Logger
}

// Service manages approval requests.
type Service struct {
	store      *store.Store
	execute    Executor
	audit      audit.Recorder
	ttl        time.Duration
	execTO     time.Duration
	staleAfter time.Duration
	keys       *idempotency.Keeper
	now        func() time.Time
	log        *slog.Logger
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Execute == nil {
		return nil, errors.New("approval: a store and an executor are required")
	}
	s := &Service{store: cfg.Store, execute: cfg.Execute, audit: cfg.Audit, ttl: cfg.TTL, execTO: cfg.ExecuteTimeout,
		staleAfter: cfg.StaleAfter, now: cfg.Now, log: cfg.Logger}
	if s.ttl <= 0 {
		s.ttl = time.Hour
	}
	if s.execTO <= 0 {
		s.execTO = 30 * time.Second
	}
	if s.staleAfter <= 0 {
		s.staleAfter = 5 * time.Minute
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	window := cfg.IdempotencyWindow
	if window <= 0 {
		window = 24 * time.Hour
	}
	// A key claimed and not settled after a minute was left by a server that
	// stopped in the middle: Submit is one insert.
	stale := cfg.KeyStaleAfter
	if stale <= 0 {
		stale = time.Minute
	}
	s.keys = idempotency.New(idempotency.Config{Window: window, StaleAfter: stale, Recover: s.recoverKey, Logger: s.log},
		cfg.Store.Idempotency())
	return s, nil
}

// maxNoteLen bounds comments and reasons.
const maxNoteLen = 1024

// Submit records a pending request for a call p made and returns it. The
// caller has already authorised the call as if it were to run now (scope,
// function:invoke or job:start, the descriptor's permissions); approval
// adds the second person, it does not replace the first check.
//
// Under an idempotency key (req.Options.idempotency_key) the outcome of the
// call is its approval request: a retry with the key gets the same request
// (ID and ExpiresAt) back, a different payload or routing under it is
// IDEMPOTENCY_KEY_REUSED; never a second request. Keys are scoped to p and
// the function, as for invoke and jobs.
func (s *Service) Submit(ctx context.Context, p principal.Principal, req Request) (Request, error) {
	id, err := newID()
	if err != nil {
		return Request{}, err
	}
	opts := []byte("{}")
	if req.Options != nil {
		if opts, err = protojson.Marshal(req.Options); err != nil {
			return Request{}, fmt.Errorf("approval: encode options: %w", err)
		}
	}
	payload := req.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("{}")
	}
	if !json.Valid(payload) {
		return Request{}, apierr.New(codes.InvalidArgument, apierr.CodeInvalidPayload, "payload is not valid JSON")
	}
	claim, prev, err := s.claimKey(ctx, p, req, payload)
	if err != nil {
		return Request{}, err
	}
	if prev != nil {
		return Request{ID: prev.GetId(), ExpiresAt: time.UnixMilli(prev.GetExpiresAtMs())}, nil
	}
	now := s.now()
	a := store.Approval{ID: id, Requester: p.String(), Game: req.Game, Env: req.Env, Function: req.Function,
		Payload: payload, Options: opts, SensitiveFields: req.SensitiveFields, CreatedAt: now, ExpiresAt: now.Add(s.ttl)}
	err = s.store.Approvals().Create(ctx, a)
	s.record(ctx, p.String(), audit.ActionApprovalRequest, a, map[string]any{"id": id, "payload": payload}, err)
	if err != nil {
		claim.Release(ctx) // no request was made: a retry may make it
		return Request{}, err
	}
	claim.Complete(ctx, &croupierv1.Approval{Id: a.ID, ExpiresAtMs: a.ExpiresAt.UnixMilli()})
	a.Status = StatusPending
	return fromStore(a)
}

// recoverKey finds the request a Submit that claimed a key made before its
// server stopped, leaving the key unsettled: the requester's request for the
// function, created since the claim, whose options carry the key. Without
// it a retry after KeyStaleAfter would make a second request.
func (s *Service) recoverKey(ctx context.Context, req idempotency.Request, claimedAt time.Time) (proto.Message, bool, error) {
	key := req.Options.GetIdempotencyKey()
	f := store.ApprovalFilter{Requester: req.Caller, Game: req.Game, Env: req.Env, PageSize: store.MaxApprovalsPageSize}
	for range 10 { // newest first: the pages reach back to the claim unless 5,000 requests came since
		rows, next, err := s.store.Approvals().List(ctx, f)
		if err != nil {
			return nil, false, err
		}
		for _, a := range rows {
			if a.CreatedAt.Before(claimedAt.Add(-time.Second)) { // a second for clocks a little apart
				return nil, false, nil
			}
			var o croupierv1.InvokeOptions
			if a.Function == req.Function && protojson.Unmarshal(a.Options, &o) == nil && o.GetIdempotencyKey() == key {
				return &croupierv1.Approval{Id: a.ID, ExpiresAtMs: a.ExpiresAt.UnixMilli()}, true, nil
			}
		}
		if next == "" {
			break
		}
		f.PageToken = next
	}
	return nil, false, nil
}

// claimKey claims req's idempotency key, if it has one. prev is the
// approval the key already stands for (claim is then nil); otherwise the
// caller ends claim (a claim without a key does nothing).
func (s *Service) claimKey(ctx context.Context, p principal.Principal, req Request, payload json.RawMessage) (claim *idempotency.Claim, prev *croupierv1.Approval, err error) {
	body := req.Body
	if req.Options.GetIdempotencyKey() != "" && body == nil {
		// The key's request hash is over the payload's canonical JSON, as for
		// invoke and jobs; the payload is a JSON object (the call's Struct).
		var m map[string]any
		if err := json.Unmarshal(payload, &m); err != nil {
			return nil, nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidPayload, "payload is not a JSON object")
		}
		if body, err = structpb.NewStruct(m); err != nil {
			return nil, nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidPayload, "payload: "+err.Error())
		}
	}
	out := &croupierv1.Approval{}
	claim, err = s.keys.Begin(ctx, idempotency.Request{Op: "approval", Caller: p.String(), Game: req.Game, Env: req.Env,
		Function: req.Function, Options: req.Options, Payload: body}, out)
	if err != nil {
		return nil, nil, err
	}
	if claim.Replayed {
		return nil, out, nil
	}
	return claim, nil, nil
}

// Get returns a request to its requester or to a holder of
// approval:decide on its scope.
func (s *Service) Get(ctx context.Context, p principal.Principal, id string) (Request, error) {
	a, err := s.find(ctx, p, id, true)
	if err != nil {
		return Request{}, err
	}
	return fromStore(a)
}

// Filter selects requests for List.
type Filter struct {
	Status, Game, Env string
	PageSize          int
	PageToken         string
}

// List returns requests newest first. A caller holding approval:decide on
// the filter's game/env sees every request there; anyone else sees their
// own requests only.
func (s *Service) List(ctx context.Context, p principal.Principal, f Filter) ([]Request, string, error) {
	sf := store.ApprovalFilter{Status: f.Status, Game: f.Game, Env: f.Env, PageSize: f.PageSize, PageToken: f.PageToken}
	if !rbac.Allowed(p, rbac.ApprovalDecide, f.Game, envIfGame(f.Game, f.Env), "") {
		sf.Requester = p.String()
	}
	rows, next, err := s.store.Approvals().List(ctx, sf)
	if err != nil {
		return nil, "", err
	}
	out := make([]Request, 0, len(rows))
	for _, a := range rows {
		r, err := fromStore(a)
		if err != nil {
			return nil, "", err
		}
		out = append(out, r)
	}
	return out, next, nil
}

// envIfGame: a check on an env without a game is a check across all games.
func envIfGame(game, env string) string {
	if game == "" {
		return ""
	}
	return env
}

// Approve approves a pending request and starts the call. Refused with
// PERMISSION_DENIED unless p holds approval:decide on the request's scope
// and is not its requester, and with FAILED_PRECONDITION when the request
// is not pending or has expired. If the call cannot be started the request
// is marked failed and the executor's error is returned.
func (s *Service) Approve(ctx context.Context, p principal.Principal, id, comment string) (Request, error) {
	a, err := s.decide(ctx, p, id, StatusApproved, comment)
	if err != nil {
		return Request{}, err
	}
	req, err := fromStore(a)
	if err != nil {
		return Request{}, err
	}
	// Started detached from the approver's context: once approved, the call
	// starts even if the approver hangs up now.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.execTO)
	defer cancel()
	jobID, execErr := s.execute(ectx, req)
	if execErr != nil {
		a, err = s.store.Approvals().MarkFailed(ectx, id, status.Convert(execErr).Message())
	} else {
		a, err = s.store.Approvals().MarkExecuted(ectx, id, jobID)
	}
	s.record(ctx, p.String(), audit.ActionApprovalExecute, a, map[string]any{"id": id, "job_id": jobID}, execErr)
	if err != nil {
		return Request{}, err
	}
	if execErr != nil {
		return Request{}, wrapExecErr(id, execErr)
	}
	return fromStore(a)
}

// Reject rejects a pending request; reason is required.
func (s *Service) Reject(ctx context.Context, p principal.Principal, id, reason string) (Request, error) {
	if reason == "" {
		return Request{}, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "a rejection needs a reason")
	}
	a, err := s.decide(ctx, p, id, StatusRejected, reason)
	if err != nil {
		return Request{}, err
	}
	return fromStore(a)
}

// decide checks and records a decision; every attempt is audited.
func (s *Service) decide(ctx context.Context, p principal.Principal, id, status, note string) (store.Approval, error) {
	action := audit.ActionApprovalApprove
	if status == StatusRejected {
		action = audit.ActionApprovalReject
	}
	a, err := s.checkDecision(ctx, p, id, note)
	if err == nil {
		var got store.Approval
		got, err = s.store.Approvals().Decide(ctx, id, status, p.String(), note, s.now())
		if errors.Is(err, store.ErrConflict) { // decided or expired meanwhile
			err = s.notDecidable(got)
		}
		if err == nil {
			a = got
		}
	}
	s.record(ctx, p.String(), action, a, map[string]any{"id": id, "note": note}, err)
	return a, err
}

func (s *Service) checkDecision(ctx context.Context, p principal.Principal, id, note string) (store.Approval, error) {
	if len(note) > maxNoteLen {
		return store.Approval{}, apierr.Newf(codes.InvalidArgument, apierr.CodeInvalidArgument, "comment or reason too long: at most %d bytes", maxNoteLen)
	}
	a, err := s.find(ctx, p, id, false)
	if err != nil {
		return a, err
	}
	if a.Requester == p.String() {
		return a, apierr.New(codes.PermissionDenied, CodeSelfApproval,
			fmt.Sprintf("%s requested this call and cannot decide on it; another user holding approval:decide on %s must",
				p, rbac.Resource(a.Game, a.Env, a.Function)))
	}
	if a.Status == StatusPending && !s.now().Before(a.ExpiresAt) {
		if _, err := s.store.Approvals().ExpireDue(ctx, s.now()); err != nil {
			s.log.WarnContext(ctx, "expire approvals", "err", err)
		}
		a.Status = StatusExpired
	}
	return a, s.notDecidable(a)
}

// notDecidable explains why a request cannot be decided, or returns nil if
// it is pending.
func (s *Service) notDecidable(a store.Approval) error {
	switch a.Status {
	case StatusPending:
		if !s.now().Before(a.ExpiresAt) {
			return expiredErr(a)
		}
		return nil
	case StatusExpired:
		return expiredErr(a)
	}
	by := ""
	if a.DecidedBy != "" {
		by = " by " + a.DecidedBy
	}
	return apierr.New(codes.FailedPrecondition, CodeNotPending,
		fmt.Sprintf("approval %s is no longer pending: it was %s%s", a.ID, a.Status, by), "status", a.Status)
}

func expiredErr(a store.Approval) error {
	return apierr.New(codes.FailedPrecondition, CodeExpired,
		fmt.Sprintf("approval %s expired at %s without a decision; invoke the function again to request a new one",
			a.ID, a.ExpiresAt.UTC().Format(time.RFC3339)), "status", StatusExpired)
}

// find loads request id for p, who must hold approval:decide on its
// scope or, with own, have made it. Whether it exists is told only to a
// caller who could see it if it did: a refusal reads the same either way
// (rbac.CheckNamed), and only a holder of approval:decide on every game
// gets NOT_FOUND.
func (s *Service) find(ctx context.Context, p principal.Principal, id string, own bool) (store.Approval, error) {
	a, err := s.load(ctx, id)
	named := "approval " + id
	switch {
	case status.Code(err) == codes.NotFound:
		if derr := rbac.CheckNamed(p, rbac.ApprovalDecide, named, "", "", ""); derr != nil {
			return store.Approval{}, derr
		}
		return store.Approval{}, err
	case err != nil:
		return store.Approval{}, err
	case own && a.Requester == p.String():
		return a, nil
	}
	return a, rbac.CheckNamed(p, rbac.ApprovalDecide, named, a.Game, a.Env, a.Function)
}

func (s *Service) load(ctx context.Context, id string) (store.Approval, error) {
	if id == "" {
		return store.Approval{}, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "an approval id is required")
	}
	a, err := s.store.Approvals().Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Approval{}, apierr.Newf(codes.NotFound, CodeNotFound, "no approval request %q", id)
	}
	return a, err
}

func wrapExecErr(id string, err error) error {
	msg := fmt.Sprintf("approval %s was approved but the call could not be started: %s", id, status.Convert(err).Message())
	if info := apierr.Info(err); info != nil {
		return apierr.New(codes.FailedPrecondition, CodeExecuteFailed, msg, "cause", info.GetCode())
	}
	return apierr.New(codes.FailedPrecondition, CodeExecuteFailed, msg)
}

// Sweep expires pending requests past their expiry and fails approved ones
// that never started, recording each. It returns how many of each.
func (s *Service) Sweep(ctx context.Context) (expired, failed int, err error) {
	now := s.now()
	exp, err := s.store.Approvals().ExpireDue(ctx, now)
	if err != nil {
		return 0, 0, err
	}
	for _, a := range exp {
		s.record(ctx, "system", audit.ActionApprovalExpire, a, map[string]any{"id": a.ID}, nil)
	}
	stale, err := s.store.Approvals().FailStale(ctx, now.Add(-s.staleAfter),
		"the server stopped before the approved call started; invoke the function again")
	if err != nil {
		return len(exp), 0, err
	}
	for _, a := range stale {
		s.record(ctx, "system", audit.ActionApprovalExecute, a, map[string]any{"id": a.ID},
			apierr.New(codes.Aborted, CodeExecuteFailed, a.Error))
	}
	return len(exp), len(stale), nil
}

// Run sweeps every interval until ctx is done. The caller owns the
// goroutine it runs in.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "approval sweep failed", "err", err)
			}
		}
	}
}

func (s *Service) record(ctx context.Context, actor, action string, a store.Approval, payload any, err error) {
	if s.audit == nil {
		return
	}
	if rerr := s.audit.Record(ctx, audit.Entry{Actor: actor, Action: action, Game: a.Game, Env: a.Env, Function: a.Function,
		Payload: payload, SensitiveFields: prefixed(a.SensitiveFields, "/payload"), Err: err}); rerr != nil {
		s.log.ErrorContext(ctx, "audit record failed", "action", action, "err", rerr)
	}
}

// prefixed rebases JSON pointers into a wrapper object's member.
func prefixed(pointers []string, prefix string) []string {
	if len(pointers) == 0 {
		return nil
	}
	out := make([]string, len(pointers))
	for i, p := range pointers {
		out[i] = prefix + p
	}
	return out
}

func fromStore(a store.Approval) (Request, error) {
	r := Request{ID: a.ID, Requester: a.Requester, Game: a.Game, Env: a.Env, Function: a.Function,
		Payload: json.RawMessage(a.Payload), SensitiveFields: a.SensitiveFields, Status: a.Status,
		CreatedAt: a.CreatedAt, ExpiresAt: a.ExpiresAt, DecidedBy: a.DecidedBy, DecidedAt: a.DecidedAt,
		Reason: a.Reason, JobID: a.JobID, Error: a.Error, Options: &croupierv1.InvokeOptions{}}
	if len(a.Options) > 0 {
		if err := protojson.Unmarshal(a.Options, r.Options); err != nil {
			return Request{}, fmt.Errorf("approval %s: stored options: %w", a.ID, err)
		}
	}
	return r, nil
}

func newID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("approval id: %w", err)
	}
	return "apr_" + hex.EncodeToString(b), nil
}
