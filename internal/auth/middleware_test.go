package auth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/rbac"
	"github.com/croupier/croupier/internal/store/storetest"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
)

// certFallback stands in for the mTLS authenticator: metadata x-test-cert
// "agent" or "operator:<name>" plays a verified certificate.
func certFallback(ctx context.Context) (principal.Principal, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	return fromCert(md.Get("x-test-cert"))
}

func fromCert(v []string) (principal.Principal, error) {
	switch {
	case len(v) == 0:
		return principal.Principal{}, apierrUnauth("no client certificate")
	case v[0] == "agent":
		return principal.Principal{Kind: principal.Agent, Name: "ag1", Game: "a", Env: "prod"}, nil
	case strings.HasPrefix(v[0], "operator:"):
		return principal.Principal{Kind: principal.Operator, Name: strings.TrimPrefix(v[0], "operator:")}, nil
	}
	return principal.Principal{}, apierr.New(codes.PermissionDenied, "SCOPE_MISMATCH", "a server certificate cannot call Croupier APIs")
}

func apierrUnauth(msg string) error { return apierr.New(codes.Unauthenticated, "UNAUTHENTICATED", msg) }

func TestResolve(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	ctx := ctxT(t)
	e.user(t, "bob", "operator@game:a/*")
	e.user(t, "dis", "viewer@*")
	if err := e.svc.SetDisabled(ctx, system, "dis", true); err != nil {
		t.Fatal(err)
	}
	toks, _ := e.svc.Login(ctx, "bob", "bob-password")
	bearer := []string{"Bearer " + toks.AccessToken}
	cert := func(v string) func() (principal.Principal, error) {
		return func() (principal.Principal, error) {
			if v == "" {
				return fromCert(nil)
			}
			return fromCert([]string{v})
		}
	}
	cases := []struct {
		name     string
		authz    []string
		fallback func() (principal.Principal, error)
		public   bool
		wantKind principal.Kind
		wantName string
		wantErr  string
	}{
		{"token wins over operator cert", bearer, cert("operator:root"), false, principal.Operator, "bob", ""},
		{"token without cert", bearer, cert(""), false, principal.Operator, "bob", ""},
		{"lower-case scheme", []string{"bearer " + toks.AccessToken}, nil, false, principal.Operator, "bob", ""},
		{"agent cert stays agent", bearer, cert("agent"), false, principal.Agent, "ag1", ""},
		{"bad token never falls back", []string{"Bearer junk"}, cert("operator:root"), false, "", "", auth.CodeTokenInvalid},
		{"basic scheme", []string{"Basic dXNlcjpwdw=="}, cert("operator:root"), false, "", "", auth.CodeTokenInvalid},
		{"two headers", append(bearer, bearer...), nil, false, "", "", auth.CodeTokenInvalid},
		{"empty bearer", []string{"Bearer "}, nil, false, "", "", auth.CodeTokenInvalid},
		{"nothing at all", nil, cert(""), false, "", "", auth.CodeUnauthenticated},
		{"nothing, no fallback", nil, nil, false, "", "", auth.CodeUnauthenticated},
		{"wrong certificate kind", nil, cert("server"), false, "", "", "SCOPE_MISMATCH"},
		{"operator cert of a user", nil, cert("operator:bob"), false, principal.Operator, "bob", ""},
		{"operator cert of no user", nil, cert("operator:stranger"), false, principal.Operator, "stranger", ""},
		{"operator cert of a disabled user", nil, cert("operator:dis"), false, "", "", auth.CodeUserDisabled},
		{"public method with junk token", []string{"Bearer junk"}, cert(""), true, principal.Anonymous, "", ""},
		{"public method anonymous", nil, nil, true, principal.Anonymous, "", ""},
	}
	for _, tc := range cases {
		p, err := e.svc.Resolve(ctx, tc.authz, tc.fallback, tc.public)
		if tc.wantErr != "" {
			if info := apierr.Info(err); info == nil || info.GetCode() != tc.wantErr {
				t.Errorf("%s: got %+v, %v; want %s", tc.name, p, err, tc.wantErr)
			}
			continue
		}
		if err != nil || p.Kind != tc.wantKind || p.Name != tc.wantName {
			t.Errorf("%s: got %+v, %v; want %s %q", tc.name, p, err, tc.wantKind, tc.wantName)
		}
	}
	// A certificate operator acts with the grants of the user of its name.
	p, _ := e.svc.Resolve(ctx, nil, cert("operator:bob"), false)
	if rbac.Check(p, rbac.FunctionInvoke, "a", "prod", "f") != nil {
		t.Fatalf("cert operator bob lacks bob's grants: %+v", p.Grants)
	}
	p, _ = e.svc.Resolve(ctx, nil, cert("operator:stranger"), false)
	if rbac.Check(p, rbac.JobRead, "a", "prod", "") == nil {
		t.Fatal("cert operator without a user may read")
	}
}

// The methods and REST routes that need no credential here: the server
// reads them from its method table; these tests serve the auth services
// alone.
var (
	publicMethods = map[string]bool{
		croupierv1.AuthService_Login_FullMethodName:   true,
		croupierv1.AuthService_Refresh_FullMethodName: true,
		croupierv1.AuthService_Logout_FullMethodName:  true,
	}
	publicRoutes = map[string]bool{"POST /api/v1/auth/login": true, "POST /api/v1/auth:refresh": true, "POST /api/v1/auth:logout": true}
)

// authenticate is the server's edge reduced to authentication: it resolves
// every call's principal (auth.Service.ResolveGRPC) and puts it in the
// call's context.
func authenticate(svc *auth.Service, fallback auth.Fallback) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		p, err := svc.ResolveGRPC(ctx, publicMethods[info.FullMethod], fallback)
		if err != nil {
			return nil, err
		}
		return h(principal.NewContext(ctx, p), req)
	}
}

// startServer serves the access services over real gRPC on 127.0.0.1:0 and
// REST (grpc-gateway, in process) over real HTTP, both behind
// authentication, and returns a client connection and the HTTP base URL.
func startServer(t *testing.T, e *env) (*grpc.ClientConn, string) {
	t.Helper()
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(authenticate(e.svc, certFallback)))
	croupierv1.RegisterAuthServiceServer(gs, auth.NewAuthServer(e.svc))
	croupierv1.RegisterUserServiceServer(gs, auth.NewUserServer(e.svc))
	croupierv1.RegisterRoleServiceServer(gs, auth.NewRoleServer(e.svc))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	// The gateway as the server should configure it: proto field names, and
	// unknown JSON fields refused rather than silently dropped.
	mux := runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}), runtime.WithErrorHandler(func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
		if v, ok := ratelimit.RetryAfterHeader(err); ok {
			w.Header().Set("Retry-After", v)
		}
		runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
	}))
	ctx := context.Background()
	for _, reg := range []error{
		croupierv1.RegisterAuthServiceHandlerServer(ctx, mux, auth.NewAuthServer(e.svc)),
		croupierv1.RegisterUserServiceHandlerServer(ctx, mux, auth.NewUserServer(e.svc)),
		croupierv1.RegisterRoleServiceHandlerServer(ctx, mux, auth.NewRoleServer(e.svc)),
	} {
		if reg != nil {
			t.Fatal(reg)
		}
	}
	httpFallback := func(r *http.Request) (principal.Principal, error) { return fromCert(r.Header.Values("X-Test-Cert")) }
	public := func(r *http.Request) bool { return publicRoutes[r.Method+" "+r.URL.Path] }
	hs := httptest.NewServer(http.MaxBytesHandler(e.svc.HTTPMiddleware(mux, httpFallback, public), 1<<20))
	t.Cleanup(hs.Close)
	return conn, hs.URL
}

func TestGRPCEdge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	conn, _ := startServer(t, e)
	ctx := ctxT(t)
	authc := croupierv1.NewAuthServiceClient(conn)
	users := croupierv1.NewUserServiceClient(conn)

	_, err := users.ListUsers(ctx, &croupierv1.ListUsersRequest{})
	wantCode(t, err, codes.Unauthenticated, auth.CodeUnauthenticated, "authentication required")

	login, err := authc.Login(ctx, &croupierv1.LoginRequest{Username: "root", Password: "root-password"})
	if err != nil {
		t.Fatal(err)
	}
	if login.GetExpiresIn() != 900 || login.GetTokenType() != "Bearer" {
		t.Fatalf("login = %v", login)
	}
	bctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+login.GetAccessToken())
	who, err := authc.WhoAmI(bctx, &croupierv1.WhoAmIRequest{})
	if err != nil || who.GetName() != "root" || who.GetKind() != "operator" || len(who.GetRoles()) != 1 || who.GetRoles()[0].GetScope() != "*" {
		t.Fatalf("whoami = %v, %v", who, err)
	}
	if _, err := users.CreateUser(bctx, &croupierv1.CreateUserRequest{Username: "vic", Password: "vic-password"}); err != nil {
		t.Fatal(err)
	}
	if _, err := users.GrantRole(bctx, &croupierv1.GrantRoleRequest{Username: "vic", Role: "viewer", Scope: "*"}); err != nil {
		t.Fatal(err)
	}
	vl, err := authc.Login(ctx, &croupierv1.LoginRequest{Username: "vic", Password: "vic-password"})
	if err != nil {
		t.Fatal(err)
	}
	vctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+vl.GetAccessToken())
	_, err = users.CreateUser(vctx, &croupierv1.CreateUserRequest{Username: "x", Password: "x-password"})
	wantCode(t, err, codes.PermissionDenied, rbac.CodePermissionDenied, "permission user:admin denied on *")
	// Login with a stale token attached still works (public method).
	sctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer stale")
	if _, err := authc.Login(sctx, &croupierv1.LoginRequest{Username: "vic", Password: "vic-password"}); err != nil {
		t.Fatalf("login with a stale token: %v", err)
	}
	ref, err := authc.Refresh(ctx, &croupierv1.RefreshRequest{RefreshToken: vl.GetRefreshToken()})
	if err != nil || ref.GetRefreshToken() == vl.GetRefreshToken() {
		t.Fatalf("refresh = %v, %v", ref, err)
	}
	if _, err := authc.Logout(ctx, &croupierv1.LogoutRequest{RefreshToken: ref.GetRefreshToken()}); err != nil {
		t.Fatal(err)
	}
	_, err = authc.WhoAmI(vctx, &croupierv1.WhoAmIRequest{})
	wantCode(t, err, codes.Unauthenticated, auth.CodeTokenRevoked)
	// An agent certificate stays an agent even with an operator token.
	actx := metadata.AppendToOutgoingContext(bctx, "x-test-cert", "agent")
	who, err = authc.WhoAmI(actx, &croupierv1.WhoAmIRequest{})
	if err != nil || who.GetKind() != "agent" {
		t.Fatalf("agent whoami = %v, %v", who, err)
	}
	roles, err := croupierv1.NewRoleServiceClient(conn).ListRoles(bctx, &croupierv1.ListRolesRequest{})
	if err != nil || len(roles.GetRoles()) != len(rbac.Builtins()) {
		t.Fatalf("roles = %v, %v", roles, err)
	}
}

func TestRESTEdge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	_, base := startServer(t, e)
	do := func(method, path, token, body string) (int, http.Header, map[string]any) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctxT(t), method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s: body %q is not JSON", method, path, raw)
		}
		return resp.StatusCode, resp.Header, m
	}
	code, hdr, body := do("GET", "/api/v1/users", "", "")
	if code != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") || body["code"] != float64(codes.Unauthenticated) {
		t.Fatalf("unauthenticated: %d %v %v", code, hdr, body)
	}
	if details, _ := body["details"].([]any); len(details) != 1 {
		t.Fatalf("error body lacks ErrorInfo details: %v", body)
	}
	code, _, body = do("POST", "/api/v1/auth/login", "", `{"username":"root","password":"wrong-password"}`)
	if code != http.StatusUnauthorized || !strings.Contains(body["message"].(string), "invalid username or password") {
		t.Fatalf("bad login: %d %v", code, body)
	}
	code, _, body = do("POST", "/api/v1/auth/login", "", `{"username":"root","password":"root-password"}`)
	if code != http.StatusOK {
		t.Fatalf("login: %d %v", code, body)
	}
	token := body["access_token"].(string)
	refresh := body["refresh_token"].(string)
	code, _, body = do("GET", "/api/v1/auth/whoami", token, "")
	if code != http.StatusOK || body["name"] != "root" {
		t.Fatalf("whoami: %d %v", code, body)
	}
	code, _, body = do("POST", "/api/v1/users", token, `{"username":"vic","password":"vic-password"}`)
	if code != http.StatusOK {
		t.Fatalf("create user: %d %v", code, body)
	}
	// A grant without a scope is refused, not made on "*".
	code, _, body = do("POST", "/api/v1/users/vic/roles", token, `{"role":"viewer"}`)
	if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(body["message"]), "scope is required") {
		t.Fatalf("grant without scope: %d %v", code, body)
	}
	code, _, _ = do("POST", "/api/v1/users/vic/roles", token, `{"role":"viewer","scope":"game:a/*"}`)
	if code != http.StatusOK {
		t.Fatalf("grant: %d", code)
	}
	code, _, body = do("GET", "/api/v1/users", token, "")
	if users, _ := body["users"].([]any); code != http.StatusOK || len(users) != 2 {
		t.Fatalf("list users: %d %v", code, body)
	}
	// Hostile input gets clean 4xx answers and changes nothing.
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"username":"x","password":`, http.StatusBadRequest},                           // malformed JSON
		{`{"username":"y","password":"y-password","admin":true}`, http.StatusBadRequest}, // unknown field
		{`{"username":"x'; DROP TABLE users; --","password":"good-password"}`, http.StatusBadRequest},
		{`{"username":"vic","password":"vic-password"}`, http.StatusConflict},
	} {
		if code, _, body := do("POST", "/api/v1/users", token, tc.body); code != tc.want {
			t.Errorf("POST /api/v1/users %s: %d %v, want %d", tc.body, code, body, tc.want)
		}
	}
	code, _, body = do("GET", "/api/v1/users", token, "")
	if users, _ := body["users"].([]any); code != http.StatusOK || len(users) != 2 {
		t.Fatalf("hostile requests changed the users: %d %v", code, body)
	}
	code, _, body = do("POST", "/api/v1/roles", token, `{"name":"gm","permissions":["function:invoke","player:ban"]}`)
	if code != http.StatusOK {
		t.Fatalf("create role: %d %v", code, body)
	}
	if code, _, _ = do("DELETE", "/api/v1/roles/gm", token, ""); code != http.StatusOK {
		t.Fatalf("delete role: %d", code)
	}
	code, _, body = do("POST", "/api/v1/auth:refresh", "", `{"refresh_token":"`+refresh+`"}`)
	if code != http.StatusOK || body["refresh_token"] == refresh {
		t.Fatalf("refresh: %d %v", code, body)
	}
	newRefresh := body["refresh_token"].(string)
	if code, _, _ = do("POST", "/api/v1/auth:logout", "", `{"refresh_token":"`+newRefresh+`"}`); code != http.StatusOK {
		t.Fatalf("logout: %d", code)
	}
	code, _, body = do("GET", "/api/v1/auth/whoami", token, "")
	if code != http.StatusUnauthorized || !strings.Contains(body["message"].(string), "revoked") {
		t.Fatalf("after logout: %d %v", code, body)
	}
}
