package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/tlsconf"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	_ "modernc.org/sqlite"
)

// tokenConn dials the server with TLS but no client certificate: callers
// authenticate with bearer tokens.
func tokenConn(t *testing.T, c *cluster) *grpc.ClientConn {
	t.Helper()
	cfg, err := tlsconf.ClientConfig(filepath.Join(c.certs, "ca.crt"), "", "", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(c.grpc, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func bearer(tok string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
}

func code(err error) string {
	if info := apierr.Info(err); info != nil {
		return status.Code(err).String() + "/" + info.GetCode()
	}
	return status.Code(err).String()
}

func TestAccessEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	// No reuse grace: a replayed refresh token revokes its session at once
	// (the grace itself is tested in internal/store and internal/auth).
	c := newCluster(t, "--refresh-reuse-grace", "0")
	admin := context.Background() // the operator certificate is user "operator", an administrator
	users := croupierv1.NewUserServiceClient(c.conn)
	for _, u := range []struct{ name, role, scope string }{
		{"viewer1", "viewer", "*"},
		{"alice", "admin", "game:demo/*"},
		{"bob", "approver", "game:demo/*"},
		{"otto", "operator", "game:other/*"},
	} {
		if _, err := users.CreateUser(admin, &croupierv1.CreateUserRequest{Username: u.name, Password: u.name + "-password"}); err != nil {
			t.Fatalf("create %s: %v", u.name, err)
		}
		if _, err := users.GrantRole(admin, &croupierv1.GrantRoleRequest{Username: u.name, Role: u.role, Scope: u.scope}); err != nil {
			t.Fatalf("grant %s: %v", u.name, err)
		}
	}
	tc := tokenConn(t, c)
	authc := croupierv1.NewAuthServiceClient(tc)
	login := func(name string) *croupierv1.LoginResponse {
		t.Helper()
		r, err := authc.Login(context.Background(), &croupierv1.LoginRequest{Username: name, Password: name + "-password"})
		if err != nil {
			t.Fatalf("login %s: %v", name, err)
		}
		return r
	}
	fn := croupierv1.NewFunctionServiceClient(tc)
	get := &croupierv1.InvokeFunctionRequest{GameId: "demo", Env: "dev", FunctionId: "player.get", Payload: mustStruct(t, map[string]any{"player_id": "p1"})}

	t.Run("unauthenticated calls are refused", func(t *testing.T) {
		_, err := fn.InvokeFunction(context.Background(), get)
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("gRPC without credentials: %v", err)
		}
		_, err = fn.InvokeFunction(bearer("not-a-token"), get)
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("gRPC with a bad token: %v", err)
		}
		code, _ := do(t, restClient(t, c.certs, false), "POST", "https://"+c.http+"/api/v1/functions/player.get:invoke", `{"game_id":"demo","env":"dev","payload":{"player_id":"p1"}}`)
		if code != 401 {
			t.Fatalf("REST without credentials: %d", code)
		}
		if _, err := authc.Login(context.Background(), &croupierv1.LoginRequest{Username: "alice", Password: "guess"}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("login with a wrong password: %v", err)
		}
	})

	t.Run("a viewer cannot invoke; the error names the permission", func(t *testing.T) {
		tok := login("viewer1").GetAccessToken()
		_, err := fn.InvokeFunction(bearer(tok), get)
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "function:invoke") {
			t.Fatalf("viewer invoke over gRPC: %v", err)
		}
		hc := restClient(t, c.certs, false)
		req := `{"game_id":"demo","env":"dev","payload":{"player_id":"p1"}}`
		code, m := doAuth(t, hc, tok, "POST", "https://"+c.http+"/api/v1/functions/player.get:invoke", req)
		if code != 403 || !strings.Contains(toJSON(m), "function:invoke") {
			t.Fatalf("viewer invoke over REST: %d %v", code, m)
		}
		if code, m := doAuth(t, hc, tok, "GET", "https://"+c.http+"/api/v1/registrations?game_id=demo&env=dev", ""); code != 200 {
			t.Fatalf("viewer reads the registry: %d %v", code, m)
		}
	})

	t.Run("an operator of game other cannot invoke on game demo", func(t *testing.T) {
		_, err := fn.InvokeFunction(bearer(login("otto").GetAccessToken()), get)
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "game:demo/env:dev/function:player.get") {
			t.Fatalf("otto on demo: %v", err)
		}
	})

	t.Run("logout revokes; refresh rotates and reuse revokes the session", func(t *testing.T) {
		a := login("alice")
		if _, err := fn.InvokeFunction(bearer(a.GetAccessToken()), get); err != nil {
			t.Fatalf("alice invoke: %v", err)
		}
		r, err := authc.Refresh(context.Background(), &croupierv1.RefreshRequest{RefreshToken: a.GetRefreshToken()})
		if err != nil || r.GetRefreshToken() == a.GetRefreshToken() {
			t.Fatalf("refresh: %v", err)
		}
		if _, err := authc.Refresh(context.Background(), &croupierv1.RefreshRequest{RefreshToken: a.GetRefreshToken()}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("reusing a rotated refresh token: %v", err)
		}
		if _, err := fn.InvokeFunction(bearer(r.GetAccessToken()), get); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("access token after refresh-token reuse: %v", err)
		}
		b := login("alice")
		if _, err := authc.Logout(context.Background(), &croupierv1.LogoutRequest{RefreshToken: b.GetRefreshToken()}); err != nil {
			t.Fatal(err)
		}
		if _, err := fn.InvokeFunction(bearer(b.GetAccessToken()), get); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("access token after logout: %v", err)
		}
	})

	alice, bob := login("alice").GetAccessToken(), login("bob").GetAccessToken()
	approvals := croupierv1.NewApprovalServiceClient(tc)
	ban := &croupierv1.InvokeFunctionRequest{GameId: "demo", Env: "dev", FunctionId: "player.ban",
		Payload: mustStruct(t, map[string]any{"player_id": "p9", "reason": "secret evidence", "duration_seconds": 60.0}),
		Options: &croupierv1.InvokeOptions{RoutingMode: "targeted", TargetAgent: "agent-b/gs-b1"}}

	t.Run("two-person approval", func(t *testing.T) {
		resp, err := fn.InvokeFunction(bearer(alice), ban)
		if err != nil || resp.GetErrorCode() != "APPROVAL_REQUIRED" || resp.GetApprovalId() == "" {
			t.Fatalf("high-risk invoke: %v %v", resp, err)
		}
		id := resp.GetApprovalId()
		if _, err := approvals.Approve(bearer(alice), &croupierv1.ApproveRequest{Id: id}); status.Code(err) != codes.PermissionDenied || !strings.Contains(code(err), "SELF_APPROVAL") {
			t.Fatalf("self-approval: %v", err)
		}
		if _, err := approvals.Approve(bearer(login("viewer1").GetAccessToken()), &croupierv1.ApproveRequest{Id: id}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("approval by a viewer: %v", err)
		}
		ap, err := approvals.Approve(bearer(bob), &croupierv1.ApproveRequest{Id: id, Comment: "ok"})
		if err != nil || ap.GetApproval().GetJobId() == "" {
			t.Fatalf("bob approves: %v %v", ap, err)
		}
		evs := c.watch(t, ap.GetApproval().GetJobId(), 0).wait(t)
		last := evs[len(evs)-1]
		if last.GetType() != croupierv1.EventType_DONE || !last.GetData().GetFields()["player"].GetStructValue().GetFields()["banned"].GetBoolValue() {
			t.Fatalf("approved job ended %v", last)
		}
		if j := c.job(t, ap.GetApproval().GetJobId()); j.GetActor() != "operator:alice" {
			t.Fatalf("the approved job runs as %q, want the requester", j.GetActor())
		}
		if _, err := approvals.Approve(bearer(bob), &croupierv1.ApproveRequest{Id: id}); status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("approving twice: %v", err)
		}
		// Rejection.
		resp, _ = fn.InvokeFunction(bearer(alice), ban)
		rj, err := approvals.Reject(bearer(bob), &croupierv1.RejectRequest{Id: resp.GetApprovalId(), Reason: "not enough evidence"})
		if err != nil || rj.GetApproval().GetStatus() != "rejected" {
			t.Fatalf("reject: %v %v", rj, err)
		}
	})

	t.Run("a retry with the same idempotency key gets the same approval request", func(t *testing.T) {
		keyed := proto.Clone(ban).(*croupierv1.InvokeFunctionRequest)
		keyed.Options.IdempotencyKey = "ban-p9-once"
		first, err := fn.InvokeFunction(bearer(alice), keyed)
		if err != nil || first.GetApprovalId() == "" {
			t.Fatalf("invoke: %v %v", first, err)
		}
		again, err := fn.InvokeFunction(bearer(alice), keyed)
		if err != nil || again.GetApprovalId() != first.GetApprovalId() || again.GetErrorCode() != "APPROVAL_REQUIRED" {
			t.Fatalf("retry: %v %v, want approval %s again", again, err, first.GetApprovalId())
		}
		other := proto.Clone(keyed).(*croupierv1.InvokeFunctionRequest)
		other.Payload = mustStruct(t, map[string]any{"player_id": "p10", "reason": "other", "duration_seconds": 60.0})
		if _, err := fn.InvokeFunction(bearer(alice), other); status.Code(err) != codes.AlreadyExists || !strings.Contains(code(err), "IDEMPOTENCY_KEY_REUSED") {
			t.Fatalf("another payload under the key: %v", err)
		}
		list, err := approvals.ListApprovals(bearer(alice), &croupierv1.ListApprovalsRequest{Status: "pending"})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, a := range list.GetApprovals() {
			if a.GetPayload().GetFields()["player_id"].GetStringValue() == "p9" && a.GetId() != first.GetApprovalId() && a.GetRequester() == "operator:alice" {
				n++
			}
		}
		if _, err := approvals.Reject(bearer(bob), &croupierv1.RejectRequest{Id: first.GetApprovalId(), Reason: "test done"}); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("%d more pending requests for the keyed call", n)
		}
	})

	t.Run("an approved call does not run for a requester who lost the right", func(t *testing.T) {
		if _, err := users.CreateUser(admin, &croupierv1.CreateUserRequest{Username: "carol", Password: "carol-password"}); err != nil {
			t.Fatal(err)
		}
		grant := &croupierv1.GrantRoleRequest{Username: "carol", Role: "admin", Scope: "game:demo/*"}
		for _, lose := range []struct {
			how   string
			do    func() error
			cause string
		}{
			{"role revoked", func() error {
				_, err := users.RevokeRole(admin, &croupierv1.RevokeRoleRequest{Username: "carol", Role: "admin", Scope: "game:demo/*"})
				return err
			}, "PERMISSION_DENIED"},
			{"account disabled", func() error {
				_, err := users.DisableUser(admin, &croupierv1.DisableUserRequest{Username: "carol"})
				return err
			}, "USER_DISABLED"},
		} {
			if _, err := users.GrantRole(admin, grant); err != nil {
				t.Fatal(err)
			}
			resp, err := fn.InvokeFunction(bearer(login("carol").GetAccessToken()), ban)
			if err != nil || resp.GetApprovalId() == "" {
				t.Fatalf("%s: invoke: %v %v", lose.how, resp, err)
			}
			if err := lose.do(); err != nil {
				t.Fatalf("%s: %v", lose.how, err)
			}
			_, err = approvals.Approve(bearer(bob), &croupierv1.ApproveRequest{Id: resp.GetApprovalId()})
			info := apierr.Info(err)
			if status.Code(err) != codes.FailedPrecondition || info.GetDetails()["cause"] != lose.cause {
				t.Fatalf("%s: approving: %v (%v), want FAILED_PRECONDITION caused by %s", lose.how, err, info, lose.cause)
			}
			got, err := approvals.GetApproval(bearer(alice), &croupierv1.GetApprovalRequest{Id: resp.GetApprovalId()})
			if err != nil || got.GetApproval().GetStatus() != "failed" || got.GetApproval().GetJobId() != "" ||
				!strings.Contains(got.GetApproval().GetError(), "carol") {
				t.Fatalf("%s: the approval is %v (%v), want failed without a job, naming carol", lose.how, got.GetApproval(), err)
			}
		}
	})

	t.Run("approval requests expire", func(t *testing.T) {
		resp, err := fn.InvokeFunction(bearer(alice), ban)
		if err != nil || resp.GetApprovalId() == "" {
			t.Fatalf("invoke: %v %v", resp, err)
		}
		time.Sleep(4500 * time.Millisecond) // the cluster's --approval-ttl is 4s
		if _, err := approvals.Approve(bearer(bob), &croupierv1.ApproveRequest{Id: resp.GetApprovalId()}); status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("approving an expired request: %v", err)
		}
	})

	t.Run("audit records, masks, verifies, and finds the altered row", func(t *testing.T) {
		auditc := croupierv1.NewAuditServiceClient(c.conn)
		list, err := auditc.ListAudit(admin, &croupierv1.ListAuditRequest{FunctionId: "player.ban", Actor: "operator:alice", PageSize: 50})
		if err != nil || len(list.GetEntries()) == 0 {
			t.Fatalf("list: %v %v", list, err)
		}
		row := list.GetEntries()[0]
		if p := toJSON(row.GetPayload().AsInterface()); strings.Contains(p, "secret evidence") || !strings.Contains(p, "***") {
			t.Fatalf("sensitive field not masked: %s", p)
		}
		hostile, err := auditc.ListAudit(admin, &croupierv1.ListAuditRequest{Actor: "x' OR '1'='1", FunctionId: "';DROP/**/TABLE/**/audit_log;--"}) // ids hold no spaces (docs/api.md, Limits)
		if err != nil || len(hostile.GetEntries()) != 0 {
			t.Fatalf("SQL metacharacters in filters: %v %v", hostile, err)
		}
		ok, err := auditc.VerifyAudit(admin, &croupierv1.VerifyAuditRequest{})
		if err != nil || !ok.GetOk() || ok.GetRowsChecked() < 10 {
			t.Fatalf("verify before tampering: %v %v", ok, err)
		}
		db, err := sql.Open("sqlite", filepath.Join(c.dir, "croupier.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`UPDATE audit_log SET actor = 'operator:mallory' WHERE id = $1`, row.GetId()); err != nil {
			t.Fatal(err)
		}
		bad, err := auditc.VerifyAudit(admin, &croupierv1.VerifyAuditRequest{})
		if err != nil || bad.GetOk() || bad.GetFirstBadId() != row.GetId() {
			t.Fatalf("verify after editing row %d: %v %v", row.GetId(), bad, err)
		}
		out, exit := run(t, []string{"CROUPIER_PROFILE=" + c.profile}, "audit", "verify")
		if exit == 0 || !strings.Contains(out, fmt.Sprint(row.GetId())) {
			t.Fatalf("croupier audit verify: exit %d\n%s", exit, out)
		}
	})

	t.Run("revoking an agent certificate cuts its tunnel", func(t *testing.T) {
		if got, _ := c.instances("game.stats"); !slices.Contains(got, "agent-b/gs-b1") {
			t.Fatalf("agent-b not registered before the test: %v", got)
		}
		out, exit := run(t, []string{"CROUPIER_PROFILE=" + c.profile}, "certs", "revoke", filepath.Join(c.certs, "agent-b.crt"), "--reason", "host compromised")
		if exit != 0 || !strings.Contains(out, "agent-b") {
			t.Fatalf("certs revoke: exit %d\n%s", exit, out)
		}
		waitFor(t, 5*time.Second, "agent-b to leave the registry", func() bool {
			got, ok := c.instances("game.stats")
			return ok && !slices.Contains(got, "agent-b/gs-b1")
		})
		// It keeps trying to reconnect (long-poll) and is refused each time.
		c.agents["agent-b"].waitLogAfter("tunnel connection ended; reconnecting", "revoked", 10*time.Second)
		if got, _ := c.instances("game.stats"); slices.Contains(got, "agent-b/gs-b1") {
			t.Fatalf("revoked agent-b came back: %v", got)
		}
		out, exit = run(t, []string{"CROUPIER_PROFILE=" + c.profile}, "certs", "revoked")
		if exit != 0 || !strings.Contains(out, "host compromised") {
			t.Fatalf("certs revoked: exit %d\n%s", exit, out)
		}
	})
}
