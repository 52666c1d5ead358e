package auth_test

import (
	"context"
	"testing"

	"github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/rbac"
	"github.com/croupier/croupier/internal/store/storetest"
	"google.golang.org/grpc/codes"
)

// TestHeldStreamsEndWithTheirSession: a stream held for a token-authenticated
// caller ends when its session is revoked through this node (logout, a
// password change) at once, and when its user is disabled through another
// node at this node's next RecheckStreams; one of an operator's certificate
// ends when its user is disabled; streams of other sessions and users run
// on. Its context's cause is the error a new call would get.
func TestHeldStreamsEndWithTheirSession(t *testing.T) {
	t.Parallel()
	s := storetest.SQLite(t)
	e := newEnv(t, s)
	ctx := ctxT(t)
	e.user(t, "bob", "operator@game:a/*")
	e.user(t, "carol", "operator@game:a/*")
	e.user(t, "dave", "operator@game:a/*")

	login := func(name string) (principal.Principal, string) {
		t.Helper()
		toks, err := e.svc.Login(ctx, name, name+"-password")
		if err != nil {
			t.Fatal(err)
		}
		p, err := e.svc.Authenticate(ctx, toks.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		return p, toks.RefreshToken
	}
	hold := func(name string) (context.Context, string) {
		t.Helper()
		p, refresh := login(name)
		held, release := e.svc.HoldStream(ctx, p, rbac.Need{})
		t.Cleanup(release)
		return held, refresh
	}
	running := func(what string, held context.Context) {
		t.Helper()
		if held.Err() != nil {
			t.Fatalf("%s ended: %v", what, context.Cause(held))
		}
	}
	ended := func(what string, held context.Context, info string, fragments ...string) {
		t.Helper()
		if held.Err() == nil {
			t.Fatalf("%s still runs", what)
		}
		wantCode(t, context.Cause(held), codes.Unauthenticated, info, fragments...)
	}

	bob1, bobRefresh := hold("bob")
	bob2, _ := hold("bob")
	carol, _ := hold("carol")
	dave, _ := hold("dave")

	// Logout ends the streams of its session only.
	if err := e.svc.Logout(ctx, bobRefresh); err != nil {
		t.Fatal(err)
	}
	ended("bob's stream of the session logged out", bob1, auth.CodeTokenRevoked, "logged out")
	running("bob's stream of another session", bob2)

	// A password change revokes every session of its user.
	if err := e.svc.SetPassword(ctx, system, "bob", "bob-new-password", ""); err != nil {
		t.Fatal(err)
	}
	ended("bob's stream after his password changed", bob2, auth.CodeTokenRevoked)
	running("carol's stream", carol)

	// Carol is disabled through another node: this node learns of it at its
	// next check.
	other, err := auth.New(ctx, auth.Config{Store: s, Argon2: cheapArgon, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.SetDisabled(ctx, system, "carol", true); err != nil {
		t.Fatal(err)
	}
	running("carol's stream before this node checked", carol)
	e.svc.RecheckStreams(ctx)
	ended("carol's stream after the check", carol, auth.CodeTokenRevoked, "user disabled") // disabling revoked her sessions
	running("dave's stream", dave)

	// An operator authenticated by certificate has no session: the stream
	// ends when the user is disabled, at once through this node.
	e.user(t, "erin", "operator@game:a/*")
	certOp := principal.Principal{Kind: principal.Operator, Name: "erin", CertSerial: "1f"}
	erin, releaseErin := e.svc.HoldStream(ctx, certOp, rbac.Need{})
	defer releaseErin()
	e.svc.RecheckStreams(ctx)
	running("erin's stream (certificate) after a check", erin)
	if err := e.svc.SetDisabled(ctx, system, "erin", true); err != nil {
		t.Fatal(err)
	}
	ended("erin's stream (certificate) after she was disabled", erin, auth.CodeUserDisabled, "erin is disabled")
	running("dave's stream", dave)

	// Release stops the tracking; agents and anonymous callers are not held.
	n := e.svc.HeldStreams()
	p, _ := login("dave")
	_, release := e.svc.HoldStream(ctx, p, rbac.Need{})
	if e.svc.HeldStreams() != n+1 {
		t.Fatalf("held streams: %d, want %d", e.svc.HeldStreams(), n+1)
	}
	release()
	if e.svc.HeldStreams() != n {
		t.Fatalf("held streams after a release: %d, want %d", e.svc.HeldStreams(), n)
	}
	for _, other := range []principal.Principal{{Kind: principal.Agent, Name: "a1"}, {Kind: principal.Anonymous, Name: "x"}} {
		if _, release := e.svc.HoldStream(ctx, other, rbac.Need{}); e.svc.HeldStreams() != n {
			t.Fatalf("a %v was held", other.Kind)
		} else {
			release()
		}
	}
}

// TestHeldStreamsEndWhenTheirRoleIsRevoked: a stream held with the
// permission it was admitted with ends PERMISSION_DENIED, with the refusal
// a new call would get, once its user's grants no longer give that
// permission — at once for a role revoked through this node, at the next
// RecheckStreams for one revoked through another. Streams the remaining
// grants still cover, and streams that needed no permission, run on.
func TestHeldStreamsEndWhenTheirRoleIsRevoked(t *testing.T) {
	t.Parallel()
	s := storetest.SQLite(t)
	e := newEnv(t, s)
	ctx := ctxT(t)
	e.user(t, "frank", "viewer@game:a/*", "viewer@game:b/*", "operator@game:c/*")
	p := e.as(t, "frank")
	hold := func(need rbac.Need) context.Context {
		t.Helper()
		if err := need.Check(p); err != nil {
			t.Fatalf("frank cannot open a stream needing %+v: %v", need, err)
		}
		held, release := e.svc.HoldStream(ctx, p, need)
		t.Cleanup(release)
		return held
	}
	running := func(what string, held context.Context) {
		t.Helper()
		if held.Err() != nil {
			t.Fatalf("%s ended: %v", what, context.Cause(held))
		}
	}
	ended := func(what string, held context.Context, fragments ...string) {
		t.Helper()
		if held.Err() == nil {
			t.Fatalf("%s still runs", what)
		}
		wantCode(t, context.Cause(held), codes.PermissionDenied, rbac.CodePermissionDenied, fragments...)
	}

	onA := hold(rbac.Need{Perm: rbac.RegistryRead, Game: "a", Env: "prod"})
	onB := hold(rbac.Need{Perm: rbac.RegistryRead, Game: "b", Env: "prod"})
	jobOnB := hold(rbac.Need{Perm: rbac.JobRead, Named: "job j-1", Game: "b", Env: "prod", Fn: "f"})
	onC := hold(rbac.Need{Perm: rbac.RegistryRead, Game: "c", Env: "prod"})
	open := hold(rbac.Need{})

	// Revoked here: the streams on game b end at once.
	if err := e.svc.RevokeRole(ctx, system, "frank", "viewer", "game:b/*"); err != nil {
		t.Fatal(err)
	}
	ended("the registry stream on game b", onB, "registry:read denied on game:b/env:prod")
	ended("the job stream on game b", jobOnB, "job:read denied on job j-1")
	running("the stream on game a", onA)
	running("the stream on game c", onC)

	// Revoked through another node: this node learns of it at its next
	// check; game c is still granted by another role.
	other, err := auth.New(ctx, auth.Config{Store: s, Argon2: cheapArgon, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.RevokeRole(ctx, system, "frank", "viewer", "game:a/*"); err != nil {
		t.Fatal(err)
	}
	running("the stream on game a before this node checked", onA)
	e.svc.RecheckStreams(ctx)
	ended("the stream on game a after the check", onA, "registry:read denied on game:a/env:prod")
	running("the stream on game c after the check", onC)
	running("the stream that needed no permission", open)
}
