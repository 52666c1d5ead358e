package auth_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/rbac"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type fakeClock struct{ ms atomic.Int64 }

func newClock() *fakeClock {
	c := &fakeClock{}
	c.ms.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type env struct {
	store *store.Store
	svc   *auth.Service
	log   *audit.Log
	clock *fakeClock
}

// newEnv returns a service over s with an admin "root" (password
// "root-password") and an audit log.
func newEnv(t *testing.T, s *store.Store) *env {
	t.Helper()
	clock := newClock()
	l, err := audit.New(audit.Config{Store: s, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := auth.New(ctxT(t), auth.Config{Store: s, Audit: l, Argon2: cheapArgon, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if created, err := svc.Bootstrap(ctxT(t), "root", "root-password"); err != nil || !created {
		t.Fatalf("bootstrap: %v, %v", created, err)
	}
	return &env{store: s, svc: svc, log: l, clock: clock}
}

var system = principal.Principal{Kind: principal.Anonymous, Name: "test", Grants: rbac.AdminGrants()}

// user creates a user with password name+"-password" and the given
// role@scope bindings.
func (e *env) user(t *testing.T, name string, bindings ...string) {
	t.Helper()
	ctx := ctxT(t)
	if err := e.svc.CreateUser(ctx, system, name, name+"-password"); err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	for _, b := range bindings {
		role, scope, _ := strings.Cut(b, "@")
		if _, err := e.svc.GrantRole(ctx, system, name, role, scope); err != nil {
			t.Fatalf("grant %s to %s: %v", b, name, err)
		}
	}
}

// as logs name in and returns its principal.
func (e *env) as(t *testing.T, name string) principal.Principal {
	t.Helper()
	toks, err := e.svc.Login(ctxT(t), name, name+"-password")
	if err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	p, err := e.svc.Authenticate(ctxT(t), toks.AccessToken)
	if err != nil {
		t.Fatalf("authenticate %s: %v", name, err)
	}
	return p
}

// wantCode checks the gRPC code and ErrorInfo code of err and that its
// message contains every fragment.
func wantCode(t *testing.T, err error, c codes.Code, info string, fragments ...string) {
	t.Helper()
	if status.Code(err) != c {
		t.Fatalf("got %v, want code %v", err, c)
	}
	if info != "" {
		if got := apierr.Info(err); got == nil || got.GetCode() != info {
			t.Fatalf("error %v: ErrorInfo %v, want code %s", err, got, info)
		}
	}
	for _, f := range fragments {
		if !strings.Contains(status.Convert(err).Message(), f) {
			t.Fatalf("message %q does not contain %q", status.Convert(err).Message(), f)
		}
	}
}

// auditActions returns "action:result" of every audit row, oldest first.
func (e *env) auditActions(t *testing.T) []string {
	t.Helper()
	rows, _, err := e.store.Audit().List(ctxT(t), store.AuditFilter{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(rows))
	for i := len(rows) - 1; i >= 0; i-- {
		out = append(out, rows[i].Action+":"+rows[i].Result)
	}
	return out
}
