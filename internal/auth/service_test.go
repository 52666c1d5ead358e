package auth_test

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/rbac"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
)

func TestLoginAuthenticateRefreshLogout(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		ctx := ctxT(t)
		e.user(t, "bob", "operator@game:a/*")

		toks, err := e.svc.Login(ctx, "bob", "bob-password")
		if err != nil {
			t.Fatal(err)
		}
		if toks.TokenType != "Bearer" || toks.ExpiresIn != 15*time.Minute || !strings.HasPrefix(toks.RefreshToken, "crt_") {
			t.Fatalf("tokens = %+v", toks)
		}
		p, err := e.svc.Authenticate(ctx, toks.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if p.Kind != principal.Operator || p.Name != "bob" || p.SessionID == "" || len(p.Grants) != 1 ||
			p.Grants[0].Role != rbac.OperatorRole || p.Grants[0].Scope != "game:a/*" {
			t.Fatalf("principal = %+v", p)
		}
		if err := rbac.Check(p, rbac.FunctionInvoke, "a", "prod", "f"); err != nil {
			t.Fatalf("operator cannot invoke in its game: %v", err)
		}

		// Refresh rotates: a new pair in the same session.
		e.clock.Advance(time.Minute)
		toks2, err := e.svc.Refresh(ctx, toks.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		if toks2.RefreshToken == toks.RefreshToken || toks2.AccessToken == toks.AccessToken {
			t.Fatal("refresh did not rotate")
		}
		p2, err := e.svc.Authenticate(ctx, toks2.AccessToken)
		if err != nil || p2.SessionID != p.SessionID {
			t.Fatalf("refreshed token: %+v, %v", p2, err)
		}

		// Logout ends the session: both of its access tokens and its
		// refresh token stop working at once.
		if err := e.svc.Logout(ctx, toks2.RefreshToken); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.Logout(ctx, toks2.RefreshToken); err != nil {
			t.Fatalf("second logout: %v", err)
		}
		_, err = e.svc.Authenticate(ctx, toks2.AccessToken)
		wantCode(t, err, codes.Unauthenticated, auth.CodeTokenRevoked, "revoked (logged out)")
		_, err = e.svc.Authenticate(ctx, toks.AccessToken)
		wantCode(t, err, codes.Unauthenticated, auth.CodeTokenRevoked)
		_, err = e.svc.Refresh(ctx, toks2.RefreshToken)
		wantCode(t, err, codes.Unauthenticated, auth.CodeTokenRevoked, "log in again")
		wantCode(t, e.svc.Logout(ctx, "crt_unknown"), codes.Unauthenticated, auth.CodeTokenInvalid)
		wantCode(t, e.svc.Logout(ctx, ""), codes.Unauthenticated, auth.CodeTokenInvalid)

		acts := e.auditActions(t)
		for _, want := range []string{"user.create:OK", "role.grant:OK", "login:OK", "logout:OK"} {
			if !slices.Contains(acts, want) {
				t.Errorf("audit %v lacks %s", acts, want)
			}
		}
	})
}

func TestRefreshReuseRevokesFamily(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		ctx := ctxT(t)
		e.user(t, "bob")
		first, err := e.svc.Login(ctx, "bob", "bob-password")
		if err != nil {
			t.Fatal(err)
		}
		second, err := e.svc.Refresh(ctx, first.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		third, err := e.svc.Refresh(ctx, second.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		// Within the reuse grace the spent token rotates again (two tabs
		// renewing one session at once) and the session lives on.
		again, err := e.svc.Refresh(ctx, first.RefreshToken)
		if err != nil {
			t.Fatalf("replay within the grace: %v", err)
		}
		if _, err := e.svc.Authenticate(ctx, again.AccessToken); err != nil {
			t.Fatalf("access token of a replay within the grace: %v", err)
		}
		// An attacker replays the first refresh token later.
		e.clock.Advance(store.DefaultReuseGrace)
		_, err = e.svc.Refresh(ctx, first.RefreshToken)
		wantCode(t, err, codes.Unauthenticated, auth.CodeTokenRevoked, "already used")
		// The whole family is dead: the legitimate holder's newest tokens too.
		_, err = e.svc.Refresh(ctx, third.RefreshToken)
		wantCode(t, err, codes.Unauthenticated, auth.CodeTokenRevoked, "refresh token reused")
		_, err = e.svc.Authenticate(ctx, third.AccessToken)
		wantCode(t, err, codes.Unauthenticated, auth.CodeTokenRevoked)
		// Another session of the same user is untouched.
		other, err := e.svc.Login(ctx, "bob", "bob-password")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Authenticate(ctx, other.AccessToken); err != nil {
			t.Fatalf("unrelated session revoked: %v", err)
		}
		if !slices.Contains(e.auditActions(t), "token.reuse:UNAUTHENTICATED") {
			t.Fatalf("token reuse not audited: %v", e.auditActions(t))
		}
		_, err = e.svc.Refresh(ctx, "crt_nope")
		wantCode(t, err, codes.Unauthenticated, auth.CodeTokenInvalid, "not recognised")
		_, err = e.svc.Refresh(ctx, "")
		wantCode(t, err, codes.Unauthenticated, auth.CodeTokenInvalid)
	})
}

func TestTokenExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	ctx := ctxT(t)
	e.user(t, "bob")
	toks, err := e.svc.Login(ctx, "bob", "bob-password")
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(15*time.Minute - time.Second)
	if _, err := e.svc.Authenticate(ctx, toks.AccessToken); err != nil {
		t.Fatalf("token refused before expiry: %v", err)
	}
	e.clock.Advance(time.Second)
	_, err = e.svc.Authenticate(ctx, toks.AccessToken)
	wantCode(t, err, codes.Unauthenticated, auth.CodeTokenExpired, "access token expired at 2030-01-01T00:15:00Z")
	// The refresh token still works and yields a fresh access token.
	toks2, err := e.svc.Refresh(ctx, toks.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Authenticate(ctx, toks2.AccessToken); err != nil {
		t.Fatal(err)
	}
	// Refresh tokens expire after 30 days.
	e.clock.Advance(30 * 24 * time.Hour)
	_, err = e.svc.Refresh(ctx, toks2.RefreshToken)
	wantCode(t, err, codes.Unauthenticated, auth.CodeTokenExpired, "refresh token expired")
}

func TestLoginFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	ctx := ctxT(t)
	e.user(t, "bob")
	for _, tc := range []struct{ user, pw string }{
		{"bob", "wrong-password"},
		{"nobody", "bob-password"},
		{"", ""},
		{"bob", strings.Repeat("x", auth.MaxPasswordLen+1)},
		{strings.Repeat("b", 65), "x"},
		{"x'; DROP TABLE users; --", "x"},
	} {
		_, err := e.svc.Login(ctx, tc.user, tc.pw)
		wantCode(t, err, codes.Unauthenticated, auth.CodeInvalidCredentials, "invalid username or password")
	}
	if !slices.Contains(e.auditActions(t), "login:UNAUTHENTICATED") {
		t.Fatal("failed logins are not audited")
	}
	// Disabled: the right password learns the account is disabled; the
	// user's sessions were revoked.
	toks, _ := e.svc.Login(ctx, "bob", "bob-password")
	if err := e.svc.SetDisabled(ctx, system, "bob", true); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Login(ctx, "bob", "bob-password")
	wantCode(t, err, codes.Unauthenticated, auth.CodeUserDisabled, "disabled")
	_, err = e.svc.Login(ctx, "bob", "wrong-password")
	wantCode(t, err, codes.Unauthenticated, auth.CodeInvalidCredentials)
	_, err = e.svc.Authenticate(ctx, toks.AccessToken)
	wantCode(t, err, codes.Unauthenticated, auth.CodeTokenRevoked, "user disabled")
	_, err = e.svc.Refresh(ctx, toks.RefreshToken)
	wantCode(t, err, codes.Unauthenticated, auth.CodeTokenRevoked)
	_, err = e.svc.IssueTokens(ctx, "bob")
	wantCode(t, err, codes.Unauthenticated, auth.CodeUserDisabled)
	if err := e.svc.SetDisabled(ctx, system, "bob", false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Login(ctx, "bob", "bob-password"); err != nil {
		t.Fatalf("re-enabled user cannot log in: %v", err)
	}
}

func TestPasswordChangeRevokesSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	ctx := ctxT(t)
	e.user(t, "bob")
	toks, _ := e.svc.Login(ctx, "bob", "bob-password")
	bob, err := e.svc.Authenticate(ctx, toks.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	// Changing one's own password needs the current one.
	wantCode(t, e.svc.SetPassword(ctx, bob, "bob", "new-password", "wrong"), codes.PermissionDenied, auth.CodeInvalidCredentials, "current_password")
	wantCode(t, e.svc.SetPassword(ctx, bob, "bob", "short", "bob-password"), codes.InvalidArgument, "", "too short")
	if err := e.svc.SetPassword(ctx, bob, "bob", "new-password", "bob-password"); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Authenticate(ctx, toks.AccessToken)
	wantCode(t, err, codes.Unauthenticated, auth.CodeTokenRevoked, "password changed")
	if _, err := e.svc.Login(ctx, "bob", "bob-password"); err == nil {
		t.Fatal("old password still works")
	}
	if _, err := e.svc.Login(ctx, "bob", "new-password"); err != nil {
		t.Fatal(err)
	}
	// Nobody else's password without user:admin.
	e.user(t, "eve")
	eve := e.as(t, "eve")
	wantCode(t, e.svc.SetPassword(ctx, eve, "bob", "pwned-password", "new-password"), codes.PermissionDenied, rbac.CodePermissionDenied, "permission user:admin denied on *")
	wantCode(t, e.svc.SetPassword(ctx, system, "ghost", "whatever-pw", ""), codes.NotFound, auth.CodeUserNotFound)
}

func TestForgedTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	ctx := ctxT(t)
	e.user(t, "bob")
	toks, _ := e.svc.Login(ctx, "bob", "bob-password")
	parts := strings.Split(toks.AccessToken, ".")
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forgedClaims := strings.Replace(string(claims), `"sub":"bob"`, `"sub":"root"`, 1)
	sign := func(m jwt.SigningMethod, key any, c jwt.MapClaims, kid string) string {
		tok := jwt.NewWithClaims(m, c)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := jwt.MapClaims{"sub": "bob", "sid": "x", "iss": "croupier", "iat": e.clock.Now().Unix(), "exp": e.clock.Now().Add(time.Hour).Unix()}
	for name, tc := range map[string]struct{ token, reason string }{
		"garbage":       {"not-a-jwt", "malformed"},
		"edited claims": {parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forgedClaims)) + "." + parts[2], "bad signature"},
		"other key":     {sign(jwt.SigningMethodHS256, []byte(strings.Repeat("k", 32)), valid, "default"), "bad signature"},
		"unknown kid":   {sign(jwt.SigningMethodHS256, []byte(strings.Repeat("k", 32)), valid, "other"), "unknown key"},
		"alg none":      {sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid, "default"), "bad signature"},
		"refresh token": {toks.RefreshToken, "refresh token was sent"},
		"truncated":     {toks.AccessToken[:len(toks.AccessToken)-3], "bad signature"},
		"no signature":  {parts[0] + "." + parts[1] + ".", "bad signature"},
	} {
		_, err := e.svc.Authenticate(ctx, tc.token)
		wantCode(t, err, codes.Unauthenticated, auth.CodeTokenInvalid)
		if !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: %v does not say %q", name, err, tc.reason)
		}
	}
}

func TestSigningKeySharedAcrossNodes(t *testing.T) {
	t.Parallel()
	s := storetest.SQLite(t)
	e := newEnv(t, s)
	ctx := ctxT(t)
	e.user(t, "bob")
	// A second node on the same database reads the key the first stored.
	other, err := auth.New(ctx, auth.Config{Store: s, Argon2: cheapArgon, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	toks, _ := e.svc.Login(ctx, "bob", "bob-password")
	if _, err := other.Authenticate(ctx, toks.AccessToken); err != nil {
		t.Fatalf("second node refuses the first node's token: %v", err)
	}
	// A configured key replaces it (and must be long enough).
	cfgd, err := auth.New(ctx, auth.Config{Store: s, Argon2: cheapArgon, Now: e.clock.Now, SigningKey: []byte(strings.Repeat("s", 32))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfgd.Authenticate(ctx, toks.AccessToken); err == nil {
		t.Fatal("a node with another key accepted the token")
	}
	if _, err := auth.New(ctx, auth.Config{Store: s, SigningKey: []byte("short")}); err == nil {
		t.Fatal("short signing key accepted")
	}
}

func TestGrantsFollowBindings(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	ctx := ctxT(t)
	e.user(t, "bob")
	toks, _ := e.svc.Login(ctx, "bob", "bob-password")
	p, _ := e.svc.Authenticate(ctx, toks.AccessToken)
	if len(p.Grants) != 0 || rbac.Check(p, rbac.JobRead, "a", "prod", "") == nil {
		t.Fatalf("a user without roles may do something: %+v", p.Grants)
	}
	if _, err := e.svc.CreateRole(ctx, system, "banner", []string{rbac.FunctionInvoke, "player:ban"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.GrantRole(ctx, system, "bob", "banner", "game:a/env:prod"); err != nil {
		t.Fatal(err)
	}
	// The same token now carries the new grant: grants are read per request.
	p, _ = e.svc.Authenticate(ctx, toks.AccessToken)
	if len(p.Grants) != 1 || p.Grants[0].Scope != "game:a/env:prod/*" || !slices.Contains(p.Grants[0].Permissions, "player:ban") {
		t.Fatalf("grants after GrantRole = %+v", p.Grants)
	}
	if err := e.svc.RevokeRole(ctx, system, "bob", "banner", "game:a/env:prod/*"); err != nil {
		t.Fatal(err)
	}
	p, _ = e.svc.Authenticate(ctx, toks.AccessToken)
	if len(p.Grants) != 0 {
		t.Fatalf("grants after RevokeRole = %+v", p.Grants)
	}
}

func TestIssueTokensAndBootstrapIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	ctx := ctxT(t)
	created, err := e.svc.Bootstrap(ctx, "root", "other-password")
	if err != nil || created {
		t.Fatalf("second bootstrap: %v, %v", created, err)
	}
	if _, err := e.svc.Login(ctx, "root", "root-password"); err != nil {
		t.Fatalf("bootstrap changed an existing password: %v", err)
	}
	toks, err := e.svc.IssueTokens(ctx, "root")
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.svc.Authenticate(ctx, toks.AccessToken)
	if err != nil || rbac.Check(p, rbac.UserAdmin, "", "", "") != nil {
		t.Fatalf("bootstrap admin: %+v, %v", p, err)
	}
	_, err = e.svc.IssueTokens(ctx, "ghost")
	if err == nil {
		t.Fatal("IssueTokens for an unknown user")
	}
}
