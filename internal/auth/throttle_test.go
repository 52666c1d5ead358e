package auth_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Regression (issue 9, defect 5): 600 wrong passwords in a row were all
// answered 401 and the right one was then accepted.
func TestLoginThrottledOverGRPCAndREST(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	e.user(t, "vic")
	conn, base := startServer(t, e)
	ctx := ctxT(t)
	authc := croupierv1.NewAuthServiceClient(conn)

	for range 5 {
		_, err := authc.Login(ctx, &croupierv1.LoginRequest{Username: "root", Password: "wrong-password"})
		wantCode(t, err, codes.Unauthenticated, auth.CodeInvalidCredentials)
	}
	// The sixth attempt is refused before the password is looked at, even
	// the right one, with when to retry.
	var trailer metadata.MD
	_, err := authc.Login(ctx, &croupierv1.LoginRequest{Username: "root", Password: "root-password"}, grpc.Trailer(&trailer))
	wantCode(t, err, codes.ResourceExhausted, ratelimit.CodeRateLimited, "too many failed logins for this username", "retry in 1s")
	if got := trailer.Get("retry-after"); len(got) != 1 || got[0] != "1" {
		t.Fatalf("retry-after trailer = %v, want [1]", got)
	}
	if d, ok := ratelimit.RetryAfter(err); !ok || d != time.Second {
		t.Fatalf("ErrorInfo retry after = %v, %v", d, ok)
	}
	e.clock.Advance(time.Second)
	if _, err := authc.Login(ctx, &croupierv1.LoginRequest{Username: "root", Password: "root-password"}); err != nil {
		t.Fatalf("right password after the wait: %v", err)
	}

	// REST: the same throttle answers 429 with Retry-After.
	login := func(user, pw string) (int, http.Header, map[string]any) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, "POST", base+"/api/v1/auth/login",
			strings.NewReader(`{"username":"`+user+`","password":"`+pw+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("login body %q is not JSON", raw)
		}
		return resp.StatusCode, resp.Header, m
	}
	for range 5 {
		if code, _, body := login("vic", "wrong-password"); code != http.StatusUnauthorized {
			t.Fatalf("wrong password: %d %v", code, body)
		}
	}
	code, hdr, body := login("vic", "vic-password")
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") != "1" || !strings.Contains(body["message"].(string), "too many failed logins") {
		t.Fatalf("throttled REST login: %d %v %v", code, hdr, body)
	}
	e.clock.Advance(time.Second)
	if code, _, body := login("vic", "vic-password"); code != http.StatusOK {
		t.Fatalf("right password after the wait: %d %v", code, body)
	}

	// Each throttled run left one audit row naming the source.
	rows, _, err := e.store.Audit().List(ctx, store.AuditFilter{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	throttled := 0
	for _, r := range rows {
		if r.Action == "login" && r.Result == "RESOURCE_EXHAUSTED" {
			throttled++
			if !strings.Contains(r.Payload, `"source":"127.0.0.1"`) || !strings.Contains(r.Payload, `"throttled":"login.user"`) {
				t.Errorf("throttled audit row payload = %s", r.Payload)
			}
		}
	}
	if throttled != 2 {
		t.Fatalf("%d throttled audit rows, want 2", throttled)
	}
}

// A flood of refused attempts writes one audit row per wait, and an
// overlong username is stored truncated.
func TestLoginThrottleAuditIsBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	ctx := peer.NewContext(ctxT(t), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 4000}})
	long := strings.Repeat("x", 100000)
	for range 5 {
		if _, err := e.svc.Login(ctx, long, "pw"); err == nil {
			t.Fatal("login accepted")
		}
	}
	for range 100 {
		_, err := e.svc.Login(ctx, long, "pw")
		wantCode(t, err, codes.ResourceExhausted, ratelimit.CodeRateLimited)
	}
	rows, _, err := e.store.Audit().List(ctx, store.AuditFilter{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	logins := 0
	for _, r := range rows {
		if r.Action != "login" {
			continue
		}
		logins++
		if len(r.Payload) > 200 || !strings.Contains(r.Payload, `"source":"2001:db8::/64"`) {
			t.Errorf("login audit payload (%d bytes) = %.200s", len(r.Payload), r.Payload)
		}
	}
	if logins != 6 {
		t.Fatalf("%d login audit rows, want 5 failures + 1 refusal", logins)
	}
}

// Concurrent guesses: however they interleave, no more than the free
// attempts reach the password check.
func TestLoginThrottleConcurrentGuesses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	ctx := peer.NewContext(ctxT(t), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 4000}})
	const n = 40
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := e.svc.Login(ctx, "root", "wrong-password")
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	checked, refused := 0, 0
	for err := range errs {
		switch status.Code(err) {
		case codes.Unauthenticated:
			checked++
		case codes.ResourceExhausted:
			refused++
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if checked > 5 || checked+refused != n {
		t.Fatalf("%d guesses checked, %d refused; want at most 5 checked", checked, refused)
	}
}

func TestSource(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"no peer", context.Background(), ""},
		{"ipv4 peer", peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 9}}), "10.1.2.3"},
		{"mapped ipv4", peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 9}}), "10.1.2.3"},
		{"ipv6 /64", peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6"), Port: 9}}), "2001:db8:1:2::/64"},
		// The gateway appends the connection's address after whatever the
		// client claimed.
		{"gateway", metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-forwarded-for", "6.6.6.6, 192.0.2.9")), "192.0.2.9"},
		// A gRPC peer wins over metadata the client sent.
		{"grpc with xff", metadata.NewIncomingContext(peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 9}}),
			metadata.Pairs("x-forwarded-for", "6.6.6.6")), "10.0.0.1"},
	} {
		if got := auth.Source(tc.ctx); got != tc.want {
			t.Errorf("%s: Source = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// Regression: with a user's access token, SetPassword's current_password
// could be guessed without limit; it now goes through the login throttle,
// over gRPC and REST, and shares it with Login.
func TestSetPasswordCurrentPasswordThrottled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	e.user(t, "bob")
	e.user(t, "ann")
	conn, base := startServer(t, e)
	ctx := ctxT(t)
	// Logged in without a source address, so 127.0.0.1 is not an address
	// bob is known to log in from: the username's limit applies there.
	toks, err := e.svc.Login(ctx, "bob", "bob-password")
	if err != nil {
		t.Fatal(err)
	}
	bctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+toks.AccessToken)
	users := croupierv1.NewUserServiceClient(conn)
	setPassword := func(current string, opts ...grpc.CallOption) error {
		_, err := users.SetPassword(bctx, &croupierv1.SetPasswordRequest{Username: "bob", Password: "new-password", CurrentPassword: current}, opts...)
		return err
	}

	for range 5 {
		wantCode(t, setPassword("wrong-guess"), codes.PermissionDenied, auth.CodeInvalidCredentials, "current_password is wrong")
	}
	// The sixth guess is refused before the password is looked at, even
	// the right one, with when to retry; and so is a login.
	var trailer metadata.MD
	wantCode(t, setPassword("bob-password", grpc.Trailer(&trailer)), codes.ResourceExhausted, ratelimit.CodeRateLimited,
		"too many failed logins for this username", "retry in 1s")
	if got := trailer.Get("retry-after"); len(got) != 1 || got[0] != "1" {
		t.Fatalf("retry-after trailer = %v, want [1]", got)
	}
	_, err = croupierv1.NewAuthServiceClient(conn).Login(ctx, &croupierv1.LoginRequest{Username: "bob", Password: "bob-password"})
	wantCode(t, err, codes.ResourceExhausted, ratelimit.CodeRateLimited)
	e.clock.Advance(time.Second)
	if err := setPassword("bob-password"); err != nil {
		t.Fatalf("right current password after the wait: %v", err)
	}

	// REST: 429 with Retry-After. Guesses at ann's password also count
	// against the address; its limit is higher than the username's.
	atoks, err := e.svc.Login(ctx, "ann", "ann-password")
	if err != nil {
		t.Fatal(err)
	}
	restSetPassword := func(current string) (int, http.Header, map[string]any) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, "POST", base+"/api/v1/users/ann:setPassword",
			strings.NewReader(`{"password":"new-password","current_password":"`+current+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+atoks.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("setPassword body %q is not JSON", raw)
		}
		return resp.StatusCode, resp.Header, m
	}
	for range 5 {
		if code, _, body := restSetPassword("wrong-guess"); code != http.StatusForbidden {
			t.Fatalf("wrong current password: %d %v", code, body)
		}
	}
	code, hdr, body := restSetPassword("ann-password")
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") != "1" || !strings.Contains(body["message"].(string), "too many failed logins") {
		t.Fatalf("throttled REST setPassword: %d %v %v", code, hdr, body)
	}

	// Audit: each guess is a user.passwd row with the source; of each run
	// of refusals only the first, naming the limit.
	rows, _, err := e.store.Audit().List(ctx, store.AuditFilter{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	results := map[string]int{}
	for _, r := range rows {
		if r.Action != "user.passwd" {
			continue
		}
		results[r.Result]++
		if !strings.Contains(r.Payload, `"source":"127.0.0.1"`) {
			t.Errorf("user.passwd audit payload without source: %s", r.Payload)
		}
		if r.Result == "RESOURCE_EXHAUSTED" && !strings.Contains(r.Payload, `"throttled":"login.user"`) {
			t.Errorf("throttled user.passwd audit payload = %s", r.Payload)
		}
	}
	if results["PERMISSION_DENIED"] != 10 || results["RESOURCE_EXHAUSTED"] != 2 || results["OK"] != 1 {
		t.Fatalf("user.passwd audit results = %v, want 10 PERMISSION_DENIED, 2 RESOURCE_EXHAUSTED, 1 OK", results)
	}
}
