package cli

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/approval"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/rbac"
	"github.com/croupier/croupier/internal/store"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"gopkg.in/yaml.v3"
)

// accessServer is an in-process server with the access services behind the
// token interceptors, on plaintext loopback.
type accessServer struct {
	addr     string
	dbPath   string
	approval *approval.Service
	auth     *auth.Service
}

func startAccessServer(t *testing.T) *accessServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dbPath := filepath.Join(t.TempDir(), "croupier.db")
	st, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, DSN: dbPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	log, err := audit.New(audit.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	// An access token shorter than the CLI's renewal margin: every command
	// renews it, exercising renewal and the profile rewrite.
	svc, err := auth.New(ctx, auth.Config{Store: st, Audit: log, AccessTTL: 10 * time.Second,
		Argon2: auth.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Bootstrap(ctx, "root", "root-password"); err != nil {
		t.Fatal(err)
	}
	jobs := 0
	apr, err := approval.New(approval.Config{Store: st, Audit: log, Execute: func(context.Context, approval.Request) (string, error) {
		jobs++
		return "job-" + string(rune('0'+jobs)), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	noCert := func(context.Context) (principal.Principal, error) {
		return principal.Principal{}, apierr.New(codes.Unauthenticated, "UNAUTHENTICATED", "no client certificate")
	}
	// The server's edge reduced to authentication (its method table makes
	// sign-in public).
	public := map[string]bool{croupierv1.AuthService_Login_FullMethodName: true,
		croupierv1.AuthService_Refresh_FullMethodName: true, croupierv1.AuthService_Logout_FullMethodName: true}
	authenticate := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		p, err := svc.ResolveGRPC(ctx, public[info.FullMethod], noCert)
		if err != nil {
			return nil, err
		}
		return h(principal.NewContext(ctx, p), req)
	}
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(authenticate))
	croupierv1.RegisterAuthServiceServer(gs, auth.NewAuthServer(svc))
	croupierv1.RegisterUserServiceServer(gs, auth.NewUserServer(svc))
	croupierv1.RegisterRoleServiceServer(gs, auth.NewRoleServer(svc))
	croupierv1.RegisterApprovalServiceServer(gs, approval.NewServer(apr))
	croupierv1.RegisterAuditServiceServer(gs, audit.NewServer(log))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return &accessServer{addr: lis.Addr().String(), dbPath: dbPath, approval: apr, auth: svc}
}

// runAccess runs one of this feature's commands under a test root.
func runAccess(t *testing.T, profile, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	g := &globals{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, profile: profile}
	root := &cobra.Command{Use: "croupier", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newLoginCmd(g), newLogoutCmd(g), newUserCmd(g), newRoleCmd(g), newApprovalsCmd(g), newAuditCmd(g))
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return -1
	}
	return 0
}

func readProfile(t *testing.T, path string) Profile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var p Profile
	if err := yaml.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAccessCommands(t *testing.T) {
	t.Parallel()
	srv := startAccessServer(t)
	profile := filepath.Join(t.TempDir(), "client.yaml")
	if err := os.WriteFile(profile, []byte("address: "+srv.addr+"\ninsecure: true\nca: ca.pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun := func(stdin string, args ...string) string {
		t.Helper()
		out, err := runAccess(t, profile, stdin, args...)
		if err != nil {
			t.Fatalf("croupier %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	// Not logged in: a clean UNAUTHENTICATED with exit status 2.
	_, err := runAccess(t, profile, "", "user", "list")
	if exitCode(err) != exitCallFailed || !strings.Contains(err.Error(), "Unauthenticated") {
		t.Fatalf("user list before login: %v", err)
	}
	_, err = runAccess(t, profile, "root-password\n", "login", "--username", "root")
	if err == nil || !strings.Contains(err.Error(), "--password-stdin") {
		t.Fatalf("login without a terminal: %v", err)
	}
	_, err = runAccess(t, profile, "wrong-password\n", "login", "-u", "root", "--password-stdin")
	if exitCode(err) != exitCallFailed || !strings.Contains(err.Error(), "invalid username or password") {
		t.Fatalf("bad login: %v", err)
	}
	out := mustRun("root-password\n", "login", "-u", "root", "--password-stdin")
	if !strings.Contains(out, "Logged in as root") {
		t.Fatalf("login said %q", out)
	}
	p := readProfile(t, profile)
	if p.Token == "" || p.RefreshToken == "" || p.CA != "ca.pem" || p.Address != srv.addr {
		t.Fatalf("profile after login = %+v (relative paths must stay relative)", p)
	}
	if fi, _ := os.Stat(profile); fi.Mode().Perm() != 0o600 {
		t.Fatalf("profile mode %v, want 0600", fi.Mode().Perm())
	}

	mustRun("bob-password\n", "user", "add", "bob", "--password-stdin")
	mustRun("", "role", "grant", "bob", "operator", "--scope", "game:a/*")
	mustRun("", "role", "create", "gm", "-p", "function:invoke,player:ban", "--description", "game masters")
	out = mustRun("", "role", "list", "-o", "json")
	var roles struct {
		Roles []struct {
			Name    string `json:"name"`
			Builtin bool   `json:"builtin"`
		} `json:"roles"`
	}
	if err := json.Unmarshal([]byte(out), &roles); err != nil || len(roles.Roles) != len(rbac.Builtins())+1 || roles.Roles[len(roles.Roles)-1].Name != "gm" || !roles.Roles[0].Builtin {
		t.Fatalf("role list json: %s (%v)", out, err)
	}
	out = mustRun("", "user", "list")
	if !strings.Contains(out, "operator@game:a/*") || !strings.Contains(out, "admin@*") {
		t.Fatalf("user list: %s", out)
	}
	// Every command renewed the 10 s access token and saved the new pair.
	if p2 := readProfile(t, profile); p2.RefreshToken == p.RefreshToken || p2.Token == p.Token {
		t.Fatal("the access token was not renewed and saved")
	}
	_, err = runAccess(t, profile, "", "role", "grant", "bob", "gm", "--scope", "game:")
	if exitCode(err) != exitCallFailed || !strings.Contains(err.Error(), "InvalidArgument") {
		t.Fatalf("bad scope: %v", err)
	}
	// Regression: without --scope, a grant was made on "*". The scope is
	// required, by the CLI and by the server.
	if _, err = runAccess(t, profile, "", "role", "grant", "bob", "admin"); err == nil || !strings.Contains(err.Error(), `required flag(s) "scope" not set`) {
		t.Fatalf("grant without --scope: %v", err)
	}
	_, err = runAccess(t, profile, "", "role", "grant", "bob", "admin", "--scope", "")
	if exitCode(err) != exitCallFailed || !strings.Contains(err.Error(), "scope is required") {
		t.Fatalf("grant with an empty --scope: %v", err)
	}
	if _, err = runAccess(t, profile, "", "role", "revoke", "bob", "operator"); err == nil || !strings.Contains(err.Error(), `required flag(s) "scope" not set`) {
		t.Fatalf("revoke without --scope: %v", err)
	}
	if out = mustRun("", "user", "list"); strings.Count(out, "admin@*") != 1 {
		t.Fatalf("a grant without a scope was made: %s", out)
	}

	// Approvals: bob requests, root decides.
	ctx := context.Background()
	bob := principal.Principal{Kind: principal.Operator, Name: "bob"}
	r1, err := srv.approval.Submit(ctx, bob, approval.Request{Game: "a", Env: "prod", Function: "player.ban", Payload: []byte(`{"player":"p1"}`)})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := srv.approval.Submit(ctx, bob, approval.Request{Game: "a", Env: "prod", Function: "player.ban", Payload: []byte(`{"player":"p2"}`)})
	if err != nil {
		t.Fatal(err)
	}
	out = mustRun("", "approvals", "list", "--game", "a", "--status", "pending")
	if !strings.Contains(out, r1.ID) || !strings.Contains(out, r2.ID) || !strings.Contains(out, "operator:bob") {
		t.Fatalf("approvals list: %s", out)
	}
	out = mustRun("", "approvals", "approve", r1.ID, "--comment", "ok")
	if !strings.Contains(out, "started as job job-1") {
		t.Fatalf("approve: %s", out)
	}
	mustRun("", "approvals", "reject", r2.ID, "--reason", "wrong player")
	_, err = runAccess(t, profile, "", "approvals", "approve", r2.ID)
	if exitCode(err) != exitCallFailed || !strings.Contains(err.Error(), "APPROVAL_NOT_PENDING") {
		t.Fatalf("approve a rejected request: %v", err)
	}
	out = mustRun("", "approvals", "get", r1.ID)
	var got struct {
		Status string `json:"status"`
		JobID  string `json:"job_id"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Status != "executed" || got.JobID != "job-1" {
		t.Fatalf("approvals get: %s (%v)", out, err)
	}

	// Audit: list with filters, verify, then tamper and verify again.
	out = mustRun("", "audit", "list", "--action", "user.create", "-o", "json")
	var listed struct {
		Entries []struct {
			Actor   string         `json:"actor"`
			Payload map[string]any `json:"payload"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(out), &listed); err != nil || len(listed.Entries) != 2 || listed.Entries[0].Payload["username"] != "bob" {
		t.Fatalf("audit list json: %s (%v)", out, err)
	}
	out = mustRun("", "audit", "list", "--actor", "operator:root", "--since", "1h")
	if !strings.Contains(out, "approval.approve") || !strings.Contains(out, "role.grant") {
		t.Fatalf("audit list table: %s", out)
	}
	_, err = runAccess(t, profile, "", "audit", "list", "--from", "yesterday")
	if exitCode(err) != exitCallFailed || !strings.Contains(err.Error(), "RFC 3339") {
		t.Fatalf("bad --from: %v", err)
	}
	out = mustRun("", "audit", "verify")
	if !strings.Contains(out, "audit log intact") {
		t.Fatalf("verify: %s", out)
	}
	db, err := sql.Open("sqlite", srv.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE audit_log SET actor = 'operator:mallory' WHERE id = 3`); err != nil {
		t.Fatal(err)
	}
	_, err = runAccess(t, profile, "", "audit", "verify")
	if exitCode(err) != exitAuditBroken || !strings.Contains(err.Error(), "broken at row 3") {
		t.Fatalf("verify after tampering: %v", err)
	}

	mustRun("", "user", "disable", "bob")
	mustRun("new-password\n", "user", "passwd", "bob", "--password-stdin")
	if out := mustRun("", "logout"); !strings.Contains(out, "Logged out") {
		t.Fatalf("logout: %s", out)
	}
	if p := readProfile(t, profile); p.Token != "" || p.RefreshToken != "" {
		t.Fatalf("tokens left in the profile after logout: %+v", p)
	}
	_, err = runAccess(t, profile, "", "user", "list")
	if exitCode(err) != exitCallFailed {
		t.Fatalf("user list after logout: %v", err)
	}
}

// TestRenewalFailureIsClear: a revoked session makes the next command fail
// with a message that says to log in again.
func TestRenewalFailureIsClear(t *testing.T) {
	t.Parallel()
	srv := startAccessServer(t)
	profile := filepath.Join(t.TempDir(), "client.yaml")
	if err := os.WriteFile(profile, []byte("address: "+srv.addr+"\ninsecure: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runAccess(t, profile, "root-password\n", "login", "-u", "root", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	p := readProfile(t, profile)
	if err := srv.auth.Logout(context.Background(), p.RefreshToken); err != nil {
		t.Fatal(err)
	}
	_, err := runAccess(t, profile, "", "role", "list")
	if exitCode(err) != exitCallFailed || !strings.Contains(err.Error(), "run croupier login") {
		t.Fatalf("command after the session was revoked: %v", err)
	}
}
