package rbac_test

import (
	"strings"
	"testing"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/rbac"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestParseScope(t *testing.T) {
	t.Parallel()
	good := []struct{ in, canonical string }{
		{"*", "*"},
		{"game:demo", "game:demo/*"},
		{"game:demo/*", "game:demo/*"},
		{"game:demo/env:*", "game:demo/*"},
		{"game:demo/env:*/function:*", "game:demo/*"},
		{"game:demo/env:prod", "game:demo/env:prod/*"},
		{"game:demo/env:prod/*", "game:demo/env:prod/*"},
		{"game:*/env:prod/*", "game:*/env:prod/*"},
		{"game:*/env:*/function:player.ban", "game:*/env:*/function:player.ban"},
		{"game:demo/env:prod/function:player.*", "game:demo/env:prod/function:player.*"},
		{"game:x';DROP/env:%/function:_", "game:x';DROP/env:%/function:_"},
	}
	for _, tc := range good {
		got, err := rbac.CanonicalScope(tc.in)
		if err != nil || got != tc.canonical {
			t.Errorf("CanonicalScope(%q) = %q, %v; want %q", tc.in, got, err, tc.canonical)
			continue
		}
		// The canonical form parses to itself.
		if again, err := rbac.CanonicalScope(got); err != nil || again != got {
			t.Errorf("canonical %q does not round-trip: %q, %v", got, again, err)
		}
	}
	bad := []struct{ in, wantMsg string }{
		{"", "empty scope"},
		{"env:prod", "part 1 must be game"},
		{"game:demo/function:x", "part 2 must be env"},
		{"game:demo/env:prod/function:x/extra", "at most"},
		{"*/env:prod", "must be the last part"},
		{"game:", "must not be empty"},
		{"game:de*", "use * alone"},
		{"game:demo/env:prod/function:*x", "may only end"},
		{"game:demo/env:prod/function:a*b*", "may only end"},
		{"game:a b", "white space"},
		{"GAME:demo", "part 1 must be game"},
	}
	for _, tc := range bad {
		_, err := rbac.ParseScope(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
			t.Errorf("ParseScope(%q) = %v, want error containing %q", tc.in, err, tc.wantMsg)
		}
	}
}

func TestScopeCovers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		scope         string
		game, env, fn string
		want          bool
	}{
		{"*", "a", "prod", "f", true},
		{"*", "", "", "", true},
		{"game:a/*", "a", "prod", "f", true},
		{"game:a/*", "a", "prod", "", true},
		{"game:a/*", "a", "", "", true},
		{"game:a/*", "b", "prod", "f", false},
		{"game:a/*", "", "", "", false}, // a game grant does not cover global checks
		{"game:a/env:prod/*", "a", "prod", "f", true},
		{"game:a/env:prod/*", "a", "dev", "f", false},
		{"game:a/env:prod/function:f", "a", "prod", "f", true},
		{"game:a/env:prod/function:f", "a", "prod", "g", false},
		{"game:a/env:prod/function:f", "a", "prod", "", false}, // one function does not cover its env
		{"game:*/env:prod/*", "zzz", "prod", "f", true},
		{"game:*/env:prod/*", "zzz", "dev", "f", false},
		{"game:a/env:prod/function:player.*", "a", "prod", "player.ban", true},
		{"game:a/env:prod/function:player.*", "a", "prod", "player.", true},
		{"game:a/env:prod/function:player.*", "a", "prod", "playerx", false},
		{"game:a/env:prod/function:player.*", "a", "prod", "", false},
		{"game:%/*", "a", "prod", "f", false}, // no LIKE semantics
	}
	for _, tc := range cases {
		sc, err := rbac.ParseScope(tc.scope)
		if err != nil {
			t.Fatalf("ParseScope(%q): %v", tc.scope, err)
		}
		if got := sc.Covers(tc.game, tc.env, tc.fn); got != tc.want {
			t.Errorf("%q covers %s = %v, want %v", tc.scope, rbac.Resource(tc.game, tc.env, tc.fn), got, tc.want)
		}
	}
}

func op(name string, grants ...principal.Grant) principal.Principal {
	return principal.Principal{Kind: principal.Operator, Name: name, Grants: grants}
}

func builtin(t *testing.T, role, scope string) principal.Grant {
	t.Helper()
	r, ok := rbac.Builtin(role)
	if !ok {
		t.Fatalf("no built-in role %q", role)
	}
	return rbac.Grant(role, scope, r.Permissions)
}

func TestCheck(t *testing.T) {
	t.Parallel()
	admin := op("root", builtin(t, rbac.AdminRole, "*"))
	gameAdmin := op("ga", builtin(t, rbac.AdminRole, "game:a/*"))
	operatorA := op("opa", builtin(t, rbac.OperatorRole, "game:a/*"))
	viewer := op("v", builtin(t, rbac.ViewerRole, "*"))
	fleetAdminA := op("fa", builtin(t, rbac.FleetAdminRole, "game:a/*"))
	jobsOnly := op("j", rbac.Grant("custom", "game:a/env:prod/*", []string{"job:*"}))
	multi := op("m", builtin(t, rbac.ViewerRole, "*"), builtin(t, rbac.OperatorRole, "game:b/env:dev/function:player.*"))
	agent := principal.Principal{Kind: principal.Agent, Name: "ag1", Game: "a", Env: "prod"}
	anon := principal.Principal{Kind: principal.Anonymous}
	corrupt := op("c", rbac.Grant(rbac.AdminRole, "game:a/env", []string{"*"}))

	cases := []struct {
		name          string
		p             principal.Principal
		perm          string
		game, env, fn string
		allow         bool
	}{
		{"admin anything", admin, rbac.FunctionInvoke, "x", "y", "z", true},
		{"admin global", admin, rbac.UserAdmin, "", "", "", true},
		{"game admin in game", gameAdmin, rbac.AssignmentWrite, "a", "prod", "f", true},
		{"game admin not global", gameAdmin, rbac.UserAdmin, "", "", "", false},
		{"game admin other game", gameAdmin, rbac.FunctionInvoke, "b", "prod", "f", false},
		{"operator invokes in scope", operatorA, rbac.FunctionInvoke, "a", "prod", "player.ban", true},
		{"operator other game", operatorA, rbac.FunctionInvoke, "b", "prod", "player.ban", false},
		{"operator no approval", operatorA, rbac.ApprovalDecide, "a", "prod", "player.ban", false},
		{"operator no audit", operatorA, rbac.AuditRead, "a", "prod", "", false},
		// fleet:write decides what agents execute: fleet-admin, not operator.
		{"operator reads fleets", operatorA, rbac.FleetRead, "a", "prod", "", true},
		{"operator cannot write fleets", operatorA, rbac.FleetWrite, "a", "prod", "", false},
		{"fleet admin writes fleets", fleetAdminA, rbac.FleetWrite, "a", "prod", "", true},
		{"fleet admin other game", fleetAdminA, rbac.FleetWrite, "b", "prod", "", false},
		{"fleet admin cannot invoke", fleetAdminA, rbac.FunctionInvoke, "a", "prod", "f", false},
		{"game admin writes fleets", gameAdmin, rbac.FleetWrite, "a", "prod", "", true},
		{"viewer reads fleets", viewer, rbac.FleetRead, "a", "prod", "", true},
		{"viewer cannot write fleets", viewer, rbac.FleetWrite, "a", "prod", "", false},
		{"viewer reads", viewer, rbac.JobRead, "a", "prod", "", true},
		{"viewer cannot invoke", viewer, rbac.FunctionInvoke, "a", "prod", "f", false},
		{"viewer cannot cancel", viewer, rbac.JobCancel, "a", "prod", "f", false},
		{"resource wildcard perm", jobsOnly, rbac.JobCancel, "a", "prod", "f", true},
		{"resource wildcard no other", jobsOnly, rbac.FunctionInvoke, "a", "prod", "f", false},
		{"resource wildcard not prefix", jobsOnly, "jobx:read", "a", "prod", "f", false},
		{"second grant applies", multi, rbac.FunctionInvoke, "b", "dev", "player.kick", true},
		{"second grant out of scope", multi, rbac.FunctionInvoke, "b", "dev", "economy.give", false},
		{"agent registers own scope", agent, rbac.FunctionRegister, "a", "prod", "f", true},
		{"agent other scope", agent, rbac.FunctionRegister, "a", "dev", "f", false},
		{"agent cannot invoke", agent, rbac.FunctionInvoke, "a", "prod", "f", false},
		{"anonymous denied", anon, rbac.RegistryRead, "a", "prod", "", false},
		{"corrupt grant denied", corrupt, rbac.JobRead, "a", "prod", "f", false},
	}
	for _, tc := range cases {
		err := rbac.Check(tc.p, tc.perm, tc.game, tc.env, tc.fn)
		if tc.allow {
			if err != nil {
				t.Errorf("%s: denied: %v", tc.name, err)
			}
			continue
		}
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s: got %v, want PERMISSION_DENIED", tc.name, err)
			continue
		}
		res := rbac.Resource(tc.game, tc.env, tc.fn)
		want := "permission " + tc.perm + " denied on " + res
		if !strings.Contains(status.Convert(err).Message(), want) {
			t.Errorf("%s: message %q does not contain %q", tc.name, status.Convert(err).Message(), want)
		}
		info := apierr.Info(err)
		if info == nil || info.GetCode() != rbac.CodePermissionDenied || info.GetDetails()["permission"] != tc.perm || info.GetDetails()["scope"] != res {
			t.Errorf("%s: ErrorInfo = %v", tc.name, info)
		}
	}
}

func TestCheckMessageExample(t *testing.T) {
	t.Parallel()
	p := op("bob", builtin(t, rbac.OperatorRole, "game:a/*"))
	err := rbac.Check(p, rbac.FunctionInvoke, "b", "prod", "player.ban")
	want := "permission function:invoke denied on game:b/env:prod/function:player.ban for operator:bob"
	if got := status.Convert(err).Message(); got != want {
		t.Fatalf("message = %q, want %q", got, want)
	}
}

func TestCheckFunction(t *testing.T) {
	t.Parallel()
	banner := rbac.Grant("banner", "game:a/*", []string{rbac.FunctionInvoke, "player:ban"})
	opr := builtin(t, rbac.OperatorRole, "game:a/*")
	fa := rbac.FunctionAuth{Permissions: []string{"player:ban"}}
	if err := rbac.CheckFunction(op("b", banner), rbac.FunctionInvoke, "a", "prod", "player.ban", fa); err != nil {
		t.Fatalf("banner denied: %v", err)
	}
	err := rbac.CheckFunction(op("o", opr), rbac.FunctionInvoke, "a", "prod", "player.ban", fa)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "permission player:ban denied") {
		t.Fatalf("operator without player:ban: %v", err)
	}
	roles := rbac.FunctionAuth{AllowedRoles: []string{"gm"}}
	err = rbac.CheckFunction(op("o", opr), rbac.FunctionInvoke, "a", "prod", "f", roles)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "only be called by roles gm") {
		t.Fatalf("role restriction: %v", err)
	}
	gm := rbac.Grant("gm", "game:a/env:prod/*", []string{rbac.FunctionInvoke})
	if err := rbac.CheckFunction(op("g", gm), rbac.FunctionInvoke, "a", "prod", "f", roles); err != nil {
		t.Fatalf("gm denied: %v", err)
	}
	// A gm grant elsewhere does not qualify, even with invoke from another role.
	gmElsewhere := rbac.Grant("gm", "game:b/*", []string{rbac.FunctionInvoke})
	if err := rbac.CheckFunction(op("g", opr, gmElsewhere), rbac.FunctionInvoke, "a", "prod", "f", roles); err == nil {
		t.Fatal("gm role on another game qualified")
	}
	if err := rbac.CheckFunction(op("r", builtin(t, rbac.AdminRole, "*")), rbac.FunctionInvoke, "a", "prod", "f", roles); err != nil {
		t.Fatalf("admin denied by allowed roles: %v", err)
	}
	if err := rbac.Check(principal.Principal{Kind: principal.Anonymous, Grants: rbac.AdminGrants()}, rbac.UserAdmin, "", "", ""); err != nil {
		t.Fatalf("AdminGrants: %v", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, p := range append([]string{"*", "job:*", "player:ban", "x.y:z_w-1"}, rbac.Known...) {
		if err := rbac.ValidatePermission(p); err != nil {
			t.Errorf("ValidatePermission(%q): %v", p, err)
		}
	}
	for _, p := range []string{"", "job", ":read", "Job:read", "job:", "*:read", "job:read ", "a:b:c", "job;drop:x"} {
		if err := rbac.ValidatePermission(p); err == nil {
			t.Errorf("ValidatePermission(%q) accepted", p)
		}
	}
	for _, n := range []string{"gm", "game-master", "a.b_c"} {
		if err := rbac.ValidateRoleName(n); err != nil {
			t.Errorf("ValidateRoleName(%q): %v", n, err)
		}
	}
	for _, n := range []string{"", "GM", "1gm", "g m", strings.Repeat("a", 65), "x';--"} {
		if err := rbac.ValidateRoleName(n); err == nil {
			t.Errorf("ValidateRoleName(%q) accepted", n)
		}
	}
	// Builtins are copies: callers cannot widen a built-in role.
	b := rbac.Builtins()
	b[1].Permissions[0] = "*"
	if r, _ := rbac.Builtin(rbac.OperatorRole); r.Permissions[0] == "*" {
		t.Fatal("Builtins returned shared slices")
	}
}
