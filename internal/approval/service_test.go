package approval_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/approval"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/idempotency"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/rbac"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

type fakeClock struct{ ms atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// executor records what it was asked to start.
type executor struct {
	mu    sync.Mutex
	calls []approval.Request
	fail  error
}

func (e *executor) Execute(_ context.Context, r approval.Request) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail != nil {
		return "", e.fail
	}
	e.calls = append(e.calls, r)
	return fmt.Sprintf("job-%d", len(e.calls)), nil
}

func (e *executor) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.calls)
}

type env struct {
	svc   *approval.Service
	exec  *executor
	clock *fakeClock
	store *store.Store
}

func newEnv(t *testing.T, s *store.Store) *env {
	t.Helper()
	clock := &fakeClock{}
	clock.ms.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	l, err := audit.New(audit.Config{Store: s, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ex := &executor{}
	svc, err := approval.New(approval.Config{Store: s, Execute: ex.Execute, Audit: l, TTL: time.Hour, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &env{svc: svc, exec: ex, clock: clock, store: s}
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func operator(name string, grants ...principal.Grant) principal.Principal {
	return principal.Principal{Kind: principal.Operator, Name: name, Grants: grants}
}

var (
	approverGrant = rbac.Grant(rbac.ApproverRole, "game:demo/*", []string{rbac.ApprovalDecide})
	amy           = operator("amy", rbac.Grant(rbac.OperatorRole, "game:demo/*", []string{rbac.FunctionInvoke}), approverGrant)
	bob           = operator("bob", approverGrant)
	cy            = operator("cy", rbac.Grant(rbac.ApproverRole, "game:other/*", []string{rbac.ApprovalDecide}))
	dee           = operator("dee")
)

func submit(t *testing.T, e *env, p principal.Principal) approval.Request {
	t.Helper()
	r, err := e.svc.Submit(ctxT(t), p, approval.Request{Game: "demo", Env: "prod", Function: "player.ban",
		Payload:         json.RawMessage(`{"player":"p1","reason":"cheating","secret":"s3"}`),
		Options:         &croupierv1.InvokeOptions{Timeout: 7, RoutingMode: "lb"},
		SensitiveFields: []string{"/secret"}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func wantCode(t *testing.T, err error, c codes.Code, info string, fragments ...string) {
	t.Helper()
	if status.Code(err) != c {
		t.Fatalf("got %v, want %v", err, c)
	}
	if got := apierr.Info(err); info != "" && (got == nil || got.GetCode() != info) {
		t.Fatalf("error %v: ErrorInfo %v, want %s", err, got, info)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Fatalf("%v does not contain %q", err, f)
		}
	}
}

func TestTwoPersonApproval(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		ctx := ctxT(t)
		req := submit(t, e, amy)
		if req.Status != approval.StatusPending || req.Requester != "operator:amy" || !strings.HasPrefix(req.ID, "apr_") ||
			!req.ExpiresAt.Equal(e.clock.Now().Add(time.Hour)) {
			t.Fatalf("submitted = %+v", req)
		}

		// Nobody approves their own request, even holding approval:decide.
		_, err := e.svc.Approve(ctx, amy, req.ID, "")
		wantCode(t, err, codes.PermissionDenied, approval.CodeSelfApproval, "operator:amy requested this call", "game:demo/env:prod/function:player.ban")
		_, err = e.svc.Reject(ctx, amy, req.ID, "changed my mind")
		wantCode(t, err, codes.PermissionDenied, approval.CodeSelfApproval)
		// approval:decide on another game, or none at all, is not enough.
		// The refusal names the request, not its game, and reads the same
		// for an id that does not exist: those callers learn neither.
		_, err = e.svc.Approve(ctx, cy, req.ID, "")
		wantCode(t, err, codes.PermissionDenied, rbac.CodePermissionDenied, "permission approval:decide denied on approval "+req.ID+" for operator:cy, or it does not exist")
		if strings.Contains(err.Error(), "demo") {
			t.Fatalf("a refusal names the request's game: %v", err)
		}
		_, err = e.svc.Approve(ctx, dee, req.ID, "")
		wantCode(t, err, codes.PermissionDenied, rbac.CodePermissionDenied)
		for _, p := range []principal.Principal{cy, dee, bob} {
			_, err = e.svc.Approve(ctx, p, "apr_nosuchrequest", "")
			wantCode(t, err, codes.PermissionDenied, rbac.CodePermissionDenied, "denied on approval apr_nosuchrequest for "+p.String()+", or it does not exist")
			_, err = e.svc.Get(ctx, p, "apr_nosuchrequest")
			wantCode(t, err, codes.PermissionDenied, rbac.CodePermissionDenied)
		}
		if _, err = e.svc.Get(ctx, cy, req.ID); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("Get by an approver of another game: %v", err)
		}
		// Only a caller who could see it anywhere learns it does not exist.
		root := operator("root", rbac.Grant(rbac.ApproverRole, "*", []string{rbac.ApprovalDecide}))
		_, err = e.svc.Approve(ctx, root, "apr_nosuchrequest", "")
		wantCode(t, err, codes.NotFound, approval.CodeNotFound)
		_, err = e.svc.Get(ctx, root, "apr_nosuchrequest")
		wantCode(t, err, codes.NotFound, approval.CodeNotFound)
		if e.exec.count() != 0 {
			t.Fatal("a refused approval started the call")
		}

		got, err := e.svc.Approve(ctx, bob, req.ID, "looks right")
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != approval.StatusExecuted || got.JobID != "job-1" || got.DecidedBy != "operator:bob" || got.Reason != "looks right" {
			t.Fatalf("after approve: %+v", got)
		}
		e.exec.mu.Lock()
		call := e.exec.calls[0]
		e.exec.mu.Unlock()
		if call.ID != req.ID || call.Function != "player.ban" || string(call.Payload) != `{"player":"p1","reason":"cheating","secret":"s3"}` ||
			call.Options.GetTimeout() != 7 || call.Requester != "operator:amy" {
			t.Fatalf("executor got %+v", call)
		}
		// Deciding again is a precondition failure and starts nothing.
		_, err = e.svc.Approve(ctx, bob, req.ID, "")
		wantCode(t, err, codes.FailedPrecondition, approval.CodeNotPending, "it was executed by operator:bob")
		_, err = e.svc.Reject(ctx, bob, req.ID, "too late")
		wantCode(t, err, codes.FailedPrecondition, approval.CodeNotPending)
		if e.exec.count() != 1 {
			t.Fatalf("executor called %d times", e.exec.count())
		}

		// Reject needs a reason and never runs the call.
		req2 := submit(t, e, amy)
		_, err = e.svc.Reject(ctx, bob, req2.ID, "")
		wantCode(t, err, codes.InvalidArgument, "", "needs a reason")
		got, err = e.svc.Reject(ctx, bob, req2.ID, "wrong player")
		if err != nil || got.Status != approval.StatusRejected || got.Reason != "wrong player" {
			t.Fatalf("reject: %+v, %v", got, err)
		}
		_, err = e.svc.Approve(ctx, bob, req2.ID, "")
		wantCode(t, err, codes.FailedPrecondition, approval.CodeNotPending, "rejected")
		_, err = e.svc.Approve(ctx, bob, "apr_nope", "")
		wantCode(t, err, codes.PermissionDenied, rbac.CodePermissionDenied, "or it does not exist") // bob decides on game demo only
		_, err = e.svc.Approve(ctx, bob, "", "")
		wantCode(t, err, codes.InvalidArgument, "")
		_, err = e.svc.Approve(ctx, bob, req2.ID, strings.Repeat("x", 2000))
		wantCode(t, err, codes.InvalidArgument, "", "too long")
		if e.exec.count() != 1 {
			t.Fatal("executor ran for a rejected request")
		}

		rows, _, err := s.Audit().List(ctx, store.AuditFilter{PageSize: 100})
		if err != nil {
			t.Fatal(err)
		}
		var acts []string
		for _, r := range rows {
			acts = append(acts, r.Action+":"+r.Result+":"+r.Actor)
			if strings.Contains(r.Payload, "s3") {
				t.Fatalf("audit row %d leaks a sensitive field: %s", r.ID, r.Payload)
			}
		}
		for _, want := range []string{"approval.request:OK:operator:amy", "approval.approve:PERMISSION_DENIED:operator:amy",
			"approval.approve:OK:operator:bob", "approval.execute:OK:operator:bob", "approval.reject:OK:operator:bob"} {
			if !slices.Contains(acts, want) {
				t.Errorf("audit lacks %s: %v", want, acts)
			}
		}
	})
}

func TestApprovalExpiry(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		ctx := ctxT(t)
		early := submit(t, e, amy)
		e.clock.Advance(30 * time.Minute)
		late := submit(t, e, amy)
		e.clock.Advance(30 * time.Minute) // early is due exactly now

		_, err := e.svc.Approve(ctx, bob, early.ID, "")
		wantCode(t, err, codes.FailedPrecondition, approval.CodeExpired, "expired at 2030-01-01T01:00:00Z")
		got, err := e.svc.Get(ctx, bob, early.ID)
		if err != nil || got.Status != approval.StatusExpired {
			t.Fatalf("after a late approve: %+v, %v", got, err)
		}
		e.clock.Advance(30 * time.Minute)
		expired, failed, err := e.svc.Sweep(ctx)
		if err != nil || expired != 1 || failed != 0 {
			t.Fatalf("sweep = %d, %d, %v", expired, failed, err)
		}
		if got, _ := e.svc.Get(ctx, amy, late.ID); got.Status != approval.StatusExpired {
			t.Fatalf("late request after sweep: %s", got.Status)
		}
		if e.exec.count() != 0 {
			t.Fatal("an expired request ran")
		}
	})
}

func TestApprovalExecuteFailureAndStale(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	ctx := ctxT(t)
	req := submit(t, e, amy)
	e.exec.fail = apierr.New(codes.Unavailable, "NO_INSTANCE", "no live instance serves player.ban")
	_, err := e.svc.Approve(ctx, bob, req.ID, "")
	wantCode(t, err, codes.FailedPrecondition, approval.CodeExecuteFailed, "approved but the call could not be started", "no live instance")
	got, _ := e.svc.Get(ctx, bob, req.ID)
	if got.Status != approval.StatusFailed || !strings.Contains(got.Error, "no live instance") || got.DecidedBy != "operator:bob" {
		t.Fatalf("after a failed start: %+v", got)
	}

	// A request approved by a server that then stopped is failed by the sweep.
	e.exec.fail = nil
	req2 := submit(t, e, amy)
	if _, err := e.store.Approvals().Decide(ctx, req2.ID, store.ApprovalApproved, "operator:bob", "", e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, failed, _ := e.svc.Sweep(ctx); failed != 0 {
		t.Fatal("a fresh approval was failed")
	}
	e.clock.Advance(6 * time.Minute)
	if _, failed, err := e.svc.Sweep(ctx); failed != 1 || err != nil {
		t.Fatalf("stale sweep: %d, %v", failed, err)
	}
	if got, _ := e.svc.Get(ctx, bob, req2.ID); got.Status != approval.StatusFailed {
		t.Fatalf("stale approval: %+v", got)
	}
}

func TestConcurrentApproversStartOnce(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		ctx := ctxT(t)
		req := submit(t, e, amy)
		const n = 6
		var wg sync.WaitGroup
		oks := make(chan struct{}, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.svc.Approve(ctx, operator(fmt.Sprint("ap", i), approverGrant), req.ID, ""); err == nil {
					oks <- struct{}{}
				} else if status.Code(err) != codes.FailedPrecondition {
					t.Errorf("approver %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		close(oks)
		if len(oks) != 1 || e.exec.count() != 1 {
			t.Fatalf("%d approvals succeeded, executor ran %d times; want 1 and 1", len(oks), e.exec.count())
		}
	})
}

func TestVisibility(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	ctx := ctxT(t)
	mine := submit(t, e, dee) // dee may request (invoke was checked upstream) but not decide
	other := submit(t, e, amy)
	if _, err := e.svc.Get(ctx, dee, mine.ID); err != nil {
		t.Fatalf("requester cannot see own request: %v", err)
	}
	_, err := e.svc.Get(ctx, dee, other.ID)
	wantCode(t, err, codes.PermissionDenied, rbac.CodePermissionDenied)
	list, _, err := e.svc.List(ctx, dee, approval.Filter{})
	if err != nil || len(list) != 1 || list[0].ID != mine.ID {
		t.Fatalf("dee's list = %+v, %v", list, err)
	}
	list, _, err = e.svc.List(ctx, bob, approval.Filter{Game: "demo", Status: approval.StatusPending})
	if err != nil || len(list) != 2 {
		t.Fatalf("approver's list = %d, %v", len(list), err)
	}
	list, _, _ = e.svc.List(ctx, bob, approval.Filter{}) // bob decides on demo only: no game filter → own only
	if len(list) != 0 {
		t.Fatalf("approver without game filter sees %d", len(list))
	}
	_, _, err = e.svc.List(ctx, bob, approval.Filter{Status: "bogus"})
	if status.Code(err) == codes.OK || !errors.Is(err, store.ErrInvalidArgument) {
		t.Fatalf("bad status filter: %v", err)
	}
	for _, m := range []string{`x'; DROP TABLE approvals; --`, "%", "_"} {
		list, _, err := e.svc.List(ctx, bob, approval.Filter{Game: m, Env: m})
		if err != nil || len(list) != 0 {
			t.Fatalf("metacharacter filter %q: %d, %v", m, len(list), err)
		}
	}
	// The API view masks sensitive fields.
	pb := approval.Proto(other)
	if pb.GetPayload().GetFields()["secret"].GetStringValue() != "***" || pb.GetPayload().GetFields()["player"].GetStringValue() != "p1" {
		t.Fatalf("API payload = %v", pb.GetPayload())
	}
	if pb.GetOptions().GetTimeout() != 7 || pb.GetStatus() != "pending" {
		t.Fatalf("API view = %v", pb)
	}
	_, err = e.svc.Submit(ctx, amy, approval.Request{Game: "demo", Env: "prod", Function: "f", Payload: json.RawMessage(`{bad`)})
	wantCode(t, err, codes.InvalidArgument, apierr.CodeInvalidPayload)
}

// Under an idempotency key a call's outcome is its approval request: a retry
// gets the same request back and makes no second one; the same key with
// another payload is refused; the key is the caller's and the function's.
func TestSubmitIdempotencyKey(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		ctx := ctxT(t)
		sub := func(p principal.Principal, fn, payload string) (approval.Request, error) {
			return e.svc.Submit(ctx, p, approval.Request{Game: "demo", Env: "prod", Function: fn, Payload: json.RawMessage(payload),
				Options: &croupierv1.InvokeOptions{IdempotencyKey: "k-1"}})
		}
		first, err := sub(amy, "player.ban", `{"player":"p1","days":3}`)
		if err != nil {
			t.Fatal(err)
		}
		// The same payload spelled differently is the same request.
		again, err := sub(amy, "player.ban", `{ "days": 3, "player": "p1" }`)
		if err != nil {
			t.Fatal(err)
		}
		if again.ID != first.ID || !again.ExpiresAt.Equal(first.ExpiresAt) {
			t.Fatalf("retry got %s (expires %v), want %s (expires %v)", again.ID, again.ExpiresAt, first.ID, first.ExpiresAt)
		}
		// The payload as a Struct (what the edge passes) hashes as its JSON.
		withBody := func(body map[string]any) (approval.Request, error) {
			b, err := structpb.NewStruct(body)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(body)
			return e.svc.Submit(ctx, amy, approval.Request{Game: "demo", Env: "prod", Function: "player.ban", Payload: raw, Body: b,
				Options: &croupierv1.InvokeOptions{IdempotencyKey: "k-1"}})
		}
		if viaBody, err := withBody(map[string]any{"player": "p1", "days": 3}); err != nil || viaBody.ID != first.ID {
			t.Fatalf("retry with the Struct got %s, %v; want %s", viaBody.ID, err, first.ID)
		}
		_, err = withBody(map[string]any{"player": "p2", "days": 3})
		wantCode(t, err, codes.AlreadyExists, apierr.CodeIdempotencyConflict, "k-1")
		_, err = sub(amy, "player.ban", `{"player":"p2","days":3}`)
		wantCode(t, err, codes.AlreadyExists, apierr.CodeIdempotencyConflict, "k-1")
		other, err := sub(bob, "player.ban", `{"player":"p1","days":3}`)
		if err != nil {
			t.Fatal(err)
		}
		otherFn, err := sub(amy, "player.kick", `{"player":"p1","days":3}`)
		if err != nil {
			t.Fatal(err)
		}
		if other.ID == first.ID || otherFn.ID == first.ID || other.ID == otherFn.ID {
			t.Fatalf("another caller's (%s) or function's (%s) use of the key got request %s", other.ID, otherFn.ID, first.ID)
		}
		_, err = sub(amy, "player.mute", `[1,2]`)
		wantCode(t, err, codes.InvalidArgument, apierr.CodeInvalidPayload)
		rows, _, err := s.Approvals().List(ctx, store.ApprovalFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 3 {
			t.Fatalf("%d requests stored, want 3 (the retry and the refused uses made none)", len(rows))
		}
	})
}

// A server that stopped in the middle of a Submit under a key — after
// claiming the key, with or without storing the request — leaves the key
// unsettled. A retry once the claim is stale gets the request that was
// stored, or makes the one that was not; never a second one.
func TestSubmitKeyLeftByAStoppedServer(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		ex := &executor{}
		svc, err := approval.New(approval.Config{Store: s, Execute: ex.Execute, KeyStaleAfter: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := structpb.NewStruct(map[string]any{"player": "p1"})
		opts := func(key string) *croupierv1.InvokeOptions { return &croupierv1.InvokeOptions{IdempotencyKey: key} }
		// What the stopped server did: claim the key as Submit does (the
		// same scope and request), and for k-1 store the request too.
		dead := idempotency.New(idempotency.Config{Window: time.Hour, StaleAfter: time.Hour}, s.Idempotency())
		for _, key := range []string{"k-1", "k-2"} {
			if _, err := dead.Begin(ctx, idempotency.Request{Op: "approval", Caller: amy.String(), Game: "demo", Env: "prod",
				Function: "player.ban", Options: opts(key), Payload: body}, &croupierv1.Approval{}); err != nil {
				t.Fatal(err)
			}
		}
		stored := store.Approval{ID: "apr_left", Requester: amy.String(), Game: "demo", Env: "prod", Function: "player.ban",
			Payload: []byte(`{"player":"p1"}`), Options: []byte(`{"idempotencyKey":"k-1"}`), CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
		if err := s.Approvals().Create(ctx, stored); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // the claims are now stale (KeyStaleAfter 1 ms)

		submit := func(key string) approval.Request {
			t.Helper()
			r, err := svc.Submit(ctx, amy, approval.Request{Game: "demo", Env: "prod", Function: "player.ban",
				Payload: json.RawMessage(`{"player":"p1"}`), Options: opts(key)})
			if err != nil {
				t.Fatalf("Submit under %s: %v", key, err)
			}
			return r
		}
		if r := submit("k-1"); r.ID != "apr_left" {
			t.Fatalf("retry under k-1 got request %s, want the stored apr_left", r.ID)
		}
		made := submit("k-2")
		if made.ID == "apr_left" || made.ID == "" {
			t.Fatalf("retry under k-2 got request %q, want a new one", made.ID)
		}
		if again := submit("k-2"); again.ID != made.ID {
			t.Fatalf("second retry under k-2 got %s, want %s", again.ID, made.ID)
		}
		rows, _, err := s.Approvals().List(ctx, store.ApprovalFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 {
			t.Fatalf("%d requests stored, want 2 (apr_left and the one k-2 made)", len(rows))
		}
	})
}
