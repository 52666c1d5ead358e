package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/config"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/registry"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// testServer starts a real server (SQLite file, loopback listeners on port
// 0, insecure: the anonymous caller is the local admin, a bearer token makes
// the caller that user).
func testServer(t testing.TB, mod func(*config.Server)) (*Server, *grpc.ClientConn, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := config.DefaultServer()
	cfg.DataDir = dir
	cfg.Insecure = true
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.TunnelHTTPAddr = "127.0.0.1:0", "127.0.0.1:0", ""
	cfg.StoreDriver, cfg.StoreDSN = "sqlite", filepath.Join(dir, "croupier.db")
	cfg.Scopes = []string{"demo/dev"}
	cfg.HeartbeatInterval = time.Second
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = s.Shutdown(sctx)
		cancel()
	})
	conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(16<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return s, conn, cfg.StoreDSN
}

// userToken creates user name (no roles unless grant names one on scope)
// and returns its bearer token.
func userToken(t *testing.T, s *Server, name, grant, scope string) string {
	t.Helper()
	ctx := context.Background()
	admin := anonymousAdmin()
	if err := s.Auth().CreateUser(ctx, admin, name, "correct-horse-battery"); err != nil {
		t.Fatal(err)
	}
	if grant != "" {
		if _, err := s.Auth().GrantRole(ctx, admin, name, grant, scope); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := s.Auth().Login(ctx, name, "correct-horse-battery")
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

func as(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

// TestMethodTableCoversEveryMethod fails when a served method has no entry
// in the method table (it would be refused), when an entry names a method
// nobody serves, or when an operator method is neither a read nor audited.
func TestMethodTableCoversEveryMethod(t *testing.T) {
	s, _, _ := testServer(t, nil)
	served := map[string]bool{}
	for _, gs := range []*grpc.Server{s.grpcServer, s.inproc.srv} {
		for name, info := range gs.GetServiceInfo() {
			for _, m := range info.Methods {
				full := "/" + name + "/" + m.Name
				served[full] = true
				r, ok := s.methods[full]
				if !ok {
					t.Errorf("%s is served but has no entry in the method table (methods.go)", full)
					continue
				}
				if r.access == accessOperator && !r.read && r.audit == "" {
					t.Errorf("%s: an operator method must be a read or name its audit action", full)
				}
				if r.access == accessOperator && r.perm == "" {
					t.Errorf("%s: an operator method needs a permission", full)
				}
				if m.IsServerStream && !m.IsClientStream && r.access != accessAgent && r.request == nil {
					t.Errorf("%s: a server stream needs its request type in the table", full)
				}
			}
		}
	}
	for m := range s.methods {
		if !served[m] {
			t.Errorf("method table names %s, which no service serves", m)
		}
	}
}

// TestOversizedIDRefusedBeforeWork: a 4 MB game_id from a user without
// permissions is INVALID_ARGUMENT with a short message, over gRPC and REST,
// and the database does not grow with it.
func TestOversizedIDRefusedBeforeWork(t *testing.T) {
	s, conn, dsn := testServer(t, func(c *config.Server) { c.MaxRequestBytes = 8 << 20 })
	tok := userToken(t, s, "mallory", "", "")
	huge := strings.Repeat("g", 4<<20)
	fc := croupierv1.NewFunctionServiceClient(conn)
	sizeOf := func() int64 {
		var n int64
		for _, suffix := range []string{"", "-wal"} {
			if fi, err := os.Stat(dsn + suffix); err == nil {
				n += fi.Size()
			}
		}
		return n
	}
	// The first refusal may create tables' first pages; measure after it.
	_, _ = fc.InvokeFunction(as(tok), &croupierv1.InvokeFunctionRequest{GameId: huge, Env: "dev", FunctionId: "f"})
	before := sizeOf()
	for range 3 {
		_, err := fc.InvokeFunction(as(tok), &croupierv1.InvokeFunctionRequest{GameId: huge, Env: "dev", FunctionId: "f"})
		if status.Code(err) != codes.InvalidArgument || apierr.Info(err).GetCode() != apierr.CodeFieldLimit {
			t.Fatalf("4 MB game_id: got %v, want INVALID_ARGUMENT %s", status.Code(err), apierr.CodeFieldLimit)
		}
		if n := len(status.Convert(err).Proto().String()); n > 1024 {
			t.Fatalf("error status is %d bytes; it must quote only a short prefix of the input", n)
		}
	}
	if grown := sizeOf() - before; grown > 256<<10 {
		t.Fatalf("database grew by %d bytes over 3 refused calls", grown)
	}

	body, _ := json.Marshal(map[string]any{"game_id": huge, "env": "dev", "payload": map[string]any{}})
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.HTTPAddr()+"/api/v1/functions/f:invoke", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || len(out) > 1024 || !bytes.Contains(out, []byte(apierr.CodeFieldLimit)) {
		t.Fatalf("REST: %d with a %d-byte body %.200s; want 400 %s, short", resp.StatusCode, len(out), out, apierr.CodeFieldLimit)
	}
}

// TestTunnelListenerRESTPassesTheEdge: the agent routes the long-poll
// tunnel listener serves over REST are checked by the same edge (an
// oversized id is refused with FIELD_LIMIT), and the operator API is not
// served there.
func TestTunnelListenerRESTPassesTheEdge(t *testing.T) {
	s, _, _ := testServer(t, func(c *config.Server) { c.TunnelHTTPAddr = "127.0.0.1:0" })
	base := "http://" + s.TunnelHTTPAddr()
	get := func(path string) (int, []byte) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	if code, out := get("/api/v1/agents/" + strings.Repeat("a", 200) + "/fleets"); code != http.StatusBadRequest || !bytes.Contains(out, []byte(apierr.CodeFieldLimit)) {
		t.Errorf("oversized agent_id on the tunnel listener: %d %.200s; want 400 %s", code, out, apierr.CodeFieldLimit)
	}
	if code, out := get("/api/v1/agents/agent-1/fleets?game_id=demo&env=dev"); code != http.StatusOK {
		t.Errorf("GetAgentFleets on the tunnel listener: %d %.200s; want 200", code, out)
	}
	if code, _ := get("/api/v1/agents"); code != http.StatusNotFound {
		t.Errorf("ListAgents (an operator route) on the tunnel listener: %d, want 404", code)
	}
}

// TestRefusedCallsAreRateLimited: a flood of calls the caller may not make
// ends in RESOURCE_EXHAUSTED.
func TestRefusedCallsAreRateLimited(t *testing.T) {
	s, conn, _ := testServer(t, func(c *config.Server) { c.RateUser, c.RateUserBurst = 0.001, 5 })
	tok := userToken(t, s, "mallory", "", "")
	fc := croupierv1.NewFunctionServiceClient(conn)
	var last error
	for i := range 10 {
		_, last = fc.ListJobs(as(tok), &croupierv1.ListJobsRequest{GameId: "demo", Env: "dev"})
		if i < 5 && status.Code(last) != codes.PermissionDenied {
			t.Fatalf("call %d: got %v, want PERMISSION_DENIED", i, last)
		}
	}
	if status.Code(last) != codes.ResourceExhausted {
		t.Fatalf("10th refused call: got %v, want RESOURCE_EXHAUSTED", last)
	}
	// REST shares the limit and says when to retry.
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.HTTPAddr()+"/api/v1/jobs?game_id=demo&env=dev", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("REST after the flood: %d Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestEveryWriteWritesOneAuditRow calls each state-changing method over
// gRPC (succeeding or not) and checks it adds exactly one audit row with
// its action; a method the table audits with no case here fails it.
func TestEveryWriteWritesOneAuditRow(t *testing.T) {
	s, conn, _ := testServer(t, nil)
	ctx := context.Background()
	fc := croupierv1.NewFunctionServiceClient(conn)
	auc := croupierv1.NewAuthServiceClient(conn)
	apc := croupierv1.NewApprovalServiceClient(conn)
	cc := croupierv1.NewControlServiceClient(conn)
	fl := croupierv1.NewFleetServiceClient(conn)
	uc := croupierv1.NewUserServiceClient(conn)
	rc := croupierv1.NewRoleServiceClient(conn)
	certs := croupierv1.NewCertificateServiceClient(conn)
	ac := croupierv1.NewAuditServiceClient(conn)
	count := func(action string) int {
		resp, err := ac.ListAudit(ctx, &croupierv1.ListAuditRequest{Action: action, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.GetEntries())
	}
	desc := &croupierv1.FunctionDescriptor{Id: "shop.restock", Version: "1.0.0"}
	fleet := &croupierv1.Fleet{FleetId: "fl-audit", GameId: "demo", Env: "dev", Name: "audit"}
	// One case per audited method of the method table, keyed by method;
	// each expects one row of the action the table gives it.
	calls := []struct {
		method string
		call   func() error
	}{
		{croupierv1.FunctionService_RegisterFunction_FullMethodName, func() error {
			_, err := fc.RegisterFunction(ctx, &croupierv1.RegisterFunctionRequest{GameId: "demo", Env: "dev", Descriptor_: desc})
			return err
		}},
		{croupierv1.ControlService_UpdateAssignment_FullMethodName, func() error {
			_, err := cc.UpdateAssignment(ctx, &croupierv1.UpdateAssignmentRequest{GameId: "demo", Env: "dev", FunctionId: "shop.restock", Enabled: false})
			return err
		}},
		{croupierv1.FunctionService_CancelJob_FullMethodName, func() error {
			_, err := fc.CancelJob(ctx, &croupierv1.CancelJobRequest{JobId: "no-such-job"})
			return err
		}},
		{croupierv1.FleetService_CreateFleet_FullMethodName, func() error {
			_, err := fl.CreateFleet(ctx, &croupierv1.CreateFleetRequest{Fleet: fleet})
			return err
		}},
		{croupierv1.FleetService_UpdateFleet_FullMethodName, func() error {
			_, err := fl.UpdateFleet(ctx, &croupierv1.UpdateFleetRequest{Fleet: fleet})
			return err
		}},
		{croupierv1.FleetService_CreateGameServerSession_FullMethodName, func() error {
			_, err := fl.CreateGameServerSession(ctx, &croupierv1.CreateGameServerSessionRequest{FleetId: "fl-audit", MaxPlayers: 2})
			return err
		}},
		{croupierv1.FleetService_UpdateGameServerSession_FullMethodName, func() error {
			_, err := fl.UpdateGameServerSession(ctx, &croupierv1.UpdateGameServerSessionRequest{GameServerSessionId: "gs-none"})
			return err
		}},
		{croupierv1.FleetService_TerminateGameServerSession_FullMethodName, func() error {
			_, err := fl.TerminateGameServerSession(ctx, &croupierv1.TerminateGameServerSessionRequest{GameServerSessionId: "gs-none"})
			return err
		}},
		{croupierv1.FleetService_StartGameServerSessionPlacement_FullMethodName, func() error {
			_, err := fl.StartGameServerSessionPlacement(ctx, &croupierv1.StartGameServerSessionPlacementRequest{FleetId: "fl-audit", PlacementId: "pl-1", MaxPlayers: 2})
			return err
		}},
		{croupierv1.FleetService_StopGameServerSessionPlacement_FullMethodName, func() error {
			_, err := fl.StopGameServerSessionPlacement(ctx, &croupierv1.StopGameServerSessionPlacementRequest{PlacementId: "pl-1"})
			return err
		}},
		{croupierv1.FleetService_JoinGameServerSession_FullMethodName, func() error {
			_, err := fl.JoinGameServerSession(ctx, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: "gs-none", PlayerId: "p1"})
			return err
		}},
		{croupierv1.FleetService_JoinGameServerSessionBatch_FullMethodName, func() error {
			_, err := fl.JoinGameServerSessionBatch(ctx, &croupierv1.JoinGameServerSessionBatchRequest{GameServerSessionId: "gs-none", Players: []*croupierv1.PlayerJoin{{PlayerId: "p1"}}})
			return err
		}},
		{croupierv1.FleetService_DeleteFleet_FullMethodName, func() error {
			_, err := fl.DeleteFleet(ctx, &croupierv1.DeleteFleetRequest{FleetId: "fl-audit"})
			return err
		}},
		{croupierv1.CertificateService_RevokeCertificate_FullMethodName, func() error {
			_, err := certs.RevokeCertificate(ctx, &croupierv1.RevokeCertificateRequest{Serial: "abc123", Reason: "test"})
			return err
		}},
		{croupierv1.UserService_CreateUser_FullMethodName, func() error {
			_, err := uc.CreateUser(ctx, &croupierv1.CreateUserRequest{Username: "carol", Password: "correct-horse-battery"})
			return err
		}},
		{croupierv1.RoleService_CreateRole_FullMethodName, func() error {
			_, err := rc.CreateRole(ctx, &croupierv1.CreateRoleRequest{Name: "restocker", Permissions: []string{"function:invoke"}})
			return err
		}},
		{croupierv1.UserService_GrantRole_FullMethodName, func() error {
			_, err := uc.GrantRole(ctx, &croupierv1.GrantRoleRequest{Username: "carol", Role: "restocker", Scope: "demo/dev"})
			return err
		}},
		{croupierv1.UserService_RevokeRole_FullMethodName, func() error {
			_, err := uc.RevokeRole(ctx, &croupierv1.RevokeRoleRequest{Username: "carol", Role: "restocker", Scope: "demo/dev"})
			return err
		}},
		{croupierv1.RoleService_DeleteRole_FullMethodName, func() error {
			_, err := rc.DeleteRole(ctx, &croupierv1.DeleteRoleRequest{Name: "restocker"})
			return err
		}},
		{croupierv1.UserService_DisableUser_FullMethodName, func() error {
			_, err := uc.DisableUser(ctx, &croupierv1.DisableUserRequest{Username: "carol"})
			return err
		}},
		{croupierv1.UserService_EnableUser_FullMethodName, func() error {
			_, err := uc.EnableUser(ctx, &croupierv1.EnableUserRequest{Username: "carol"})
			return err
		}},
		{croupierv1.UserService_SetPassword_FullMethodName, func() error {
			_, err := uc.SetPassword(ctx, &croupierv1.SetPasswordRequest{Username: "carol", Password: "another-correct-horse"})
			return err
		}},
		{croupierv1.AuthService_Login_FullMethodName, func() error {
			_, err := auc.Login(ctx, &croupierv1.LoginRequest{Username: "carol", Password: "wrong-password"})
			return err
		}},
		{croupierv1.AuthService_Logout_FullMethodName, func() error {
			// A logout of a session (a token that names none revokes
			// nothing and writes no row: docs/access.md, "Audit log").
			lr, err := auc.Login(ctx, &croupierv1.LoginRequest{Username: "carol", Password: "another-correct-horse"})
			if err != nil {
				t.Fatal(err)
			}
			_, err = auc.Logout(ctx, &croupierv1.LogoutRequest{RefreshToken: lr.GetRefreshToken()})
			return err
		}},
		{croupierv1.ApprovalService_Approve_FullMethodName, func() error {
			_, err := apc.Approve(ctx, &croupierv1.ApproveRequest{Id: "no-such-approval"})
			return err
		}},
		{croupierv1.ApprovalService_Reject_FullMethodName, func() error {
			_, err := apc.Reject(ctx, &croupierv1.RejectRequest{Id: "no-such-approval", Reason: "test"})
			return err
		}},
		{croupierv1.FunctionService_InvokeFunction_FullMethodName, func() error {
			_, err := fc.InvokeFunction(ctx, &croupierv1.InvokeFunctionRequest{GameId: "demo", Env: "dev", FunctionId: "shop.restock", Payload: &structpb.Struct{}})
			return err
		}},
		{croupierv1.FunctionService_InvokeJob_FullMethodName, func() error {
			_, err := fc.InvokeJob(ctx, &croupierv1.InvokeJobRequest{GameId: "demo", Env: "dev", FunctionId: "shop.restock", Payload: &structpb.Struct{}})
			return err
		}},
	}
	covered := map[string]bool{}
	for _, c := range calls {
		covered[c.method] = true
		action := s.methods[c.method].audit
		if action == "" {
			t.Errorf("%s: the method table gives it no audit action", c.method)
			continue
		}
		before := count(action)
		err := c.call()
		if got := count(action) - before; got != 1 {
			t.Errorf("%s (%s, outcome %v): %d audit rows, want 1", c.method, action, status.Code(err), got)
		}
	}
	for method, r := range s.methods {
		if r.audit != "" && !covered[method] {
			t.Errorf("%s writes audit rows (%s) but has no case here", method, r.audit)
		}
	}
	// Reads write nothing.
	before := count("")
	if _, err := fl.ListFleets(ctx, &croupierv1.ListFleetsRequest{}); err != nil {
		t.Fatal(err)
	}
	if got := count(""); got != before {
		t.Errorf("ListFleets wrote %d audit rows", got-before)
	}
}

// TestEdgeGivesEveryErrorAnErrorInfo: an error a handler returns without
// an ErrorInfo (a tunnel's, an agent's, a decoder's, a context's) leaves
// the edge with one; a bug's message is replaced by an error_id.
func TestEdgeGivesEveryErrorAnErrorInfo(t *testing.T) {
	s, _, _ := testServer(t, nil)
	e := s.newEdge(func(ctx context.Context, _ string, _ bool) (principal.Principal, context.Context, error) {
		return anonymousAdmin(), ctx, nil
	})
	info := &grpc.UnaryServerInfo{FullMethod: croupierv1.RegistryService_ListAgents_FullMethodName}
	long := strings.Repeat("é", 400)
	for _, tc := range []struct {
		name       string
		err        error
		code       codes.Code
		infoCode   string
		msg        string // the message contains this
		notInMsg   string // and not this
		maxMsgSize int
	}{
		{"tunnel", status.Error(codes.Unavailable, `tunnel client "agent-1" disconnected: EOF`), codes.Unavailable, apierr.CodeUnavailable, `"agent-1" disconnected`, "", 0},
		{"not found", status.Error(codes.NotFound, "no such thing"), codes.NotFound, apierr.CodeNotFound, "no such thing", "", 0},
		{"aborted", status.Error(codes.Aborted, "try again"), codes.Aborted, apierr.CodeAborted, "try again", "", 0},
		{"decoder", status.Error(codes.Internal, "proto: cannot parse invalid wire-format data"), codes.Internal, apierr.CodeInternal, "quote id", "wire-format", 0},
		{"plain error", fmt.Errorf("disk on fire"), codes.Internal, apierr.CodeInternal, "quote id", "fire", 0},
		{"context", context.Canceled, codes.Canceled, apierr.CodeCanceled, "cancelled", "", 0},
		{"deadline", fmt.Errorf("call: %w", context.DeadlineExceeded), codes.DeadlineExceeded, apierr.CodeTimeout, "deadline", "", 0},
		{"long message", status.Error(codes.FailedPrecondition, long), codes.FailedPrecondition, apierr.CodeFailedPrecondition, "éé", "", maxErrorMessage + len("…")},
		{"domain error", apierr.New(codes.NotFound, apierr.CodeAgentNotFound, "agent a not found"), codes.NotFound, apierr.CodeAgentNotFound, "agent a not found", "", 0},
	} {
		_, err := e.unary()(context.Background(), &croupierv1.ListAgentsRequest{}, info, func(context.Context, any) (any, error) {
			return nil, tc.err
		})
		st := status.Convert(err)
		ei := apierr.Info(err)
		switch {
		case st.Code() != tc.code:
			t.Errorf("%s: code %v, want %v", tc.name, st.Code(), tc.code)
		case ei == nil:
			t.Errorf("%s: no ErrorInfo in %v", tc.name, err)
		case ei.GetCode() != tc.infoCode:
			t.Errorf("%s: ErrorInfo code %q, want %q", tc.name, ei.GetCode(), tc.infoCode)
		case !strings.Contains(st.Message(), tc.msg) || tc.notInMsg != "" && strings.Contains(st.Message(), tc.notInMsg):
			t.Errorf("%s: message %q, want it to contain %q and not %q", tc.name, st.Message(), tc.msg, tc.notInMsg)
		case tc.maxMsgSize > 0 && len(st.Message()) > tc.maxMsgSize:
			t.Errorf("%s: message of %d bytes, want at most %d", tc.name, len(st.Message()), tc.maxMsgSize)
		case tc.infoCode == apierr.CodeInternal && ei.GetDetails()["error_id"] == "":
			t.Errorf("%s: no error_id in %v", tc.name, ei)
		}
	}

	// A server stream: its request read by the edge, its handler's error,
	// and a stream the server ends at shutdown.
	sinfo := &grpc.StreamServerInfo{FullMethod: croupierv1.RegistryService_WatchRegistrations_FullMethodName, IsServerStream: true}
	shutdown, stop := context.WithCancelCause(context.Background())
	stop(errShuttingDown)
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		recv     error
		herr     error
		code     codes.Code
		infoCode string
	}{
		{"no request", context.Background(), io.EOF, nil, codes.InvalidArgument, apierr.CodeInvalidArgument},
		{"request over the limit", context.Background(), status.Error(codes.ResourceExhausted, "received message larger than max"), nil, codes.ResourceExhausted, apierr.CodeResourceExhausted},
		{"handler", context.Background(), nil, status.Error(codes.Unavailable, "watch lost its agent"), codes.Unavailable, apierr.CodeUnavailable},
		{"shutdown", shutdown, nil, context.Canceled, codes.Unavailable, apierr.CodeUnavailable},
	} {
		ss := &fakeServerStream{ctx: tc.ctx, recv: tc.recv}
		err := e.stream()(nil, ss, sinfo, func(any, grpc.ServerStream) error { return tc.herr })
		if st, ei := status.Convert(err), apierr.Info(err); st.Code() != tc.code || ei.GetCode() != tc.infoCode {
			t.Errorf("stream, %s: %v (ErrorInfo %v), want %v %s", tc.name, err, ei, tc.code, tc.infoCode)
		}
	}
}

// fakeServerStream is a server stream whose one request decodes, or fails
// with recv.
type fakeServerStream struct {
	grpc.ServerStream
	ctx  context.Context
	recv error
}

func (f *fakeServerStream) Context() context.Context     { return f.ctx }
func (f *fakeServerStream) RecvMsg(any) error            { return f.recv }
func (f *fakeServerStream) SendHeader(metadata.MD) error { return nil }

// TestRESTCannotForgeIdentity: an HTTP client cannot pass an identity to the
// in-process gRPC edge in a header; it acts as the caller its token names.
func TestRESTCannotForgeIdentity(t *testing.T) {
	s, _, _ := testServer(t, nil)
	tok := userToken(t, s, "mallory", "", "")
	forged, _ := json.Marshal(anonymousAdmin())
	for _, h := range []string{"Grpc-Metadata-" + mdPrincipal, mdPrincipal, "Grpc-Metadata-X-Croupier-Principal"} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.HTTPAddr()+"/api/v1/jobs?game_id=demo&env=dev", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set(h, string(forged))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("header %s: %d, want 403 (the token's user has no roles)", h, resp.StatusCode)
		}
	}
}

// TestRESTMalformedBodyHasErrorInfo: a body that is not JSON, or names an
// unknown field, is 400 with an ErrorInfo like every other API error.
func TestRESTMalformedBodyHasErrorInfo(t *testing.T) {
	s, _, _ := testServer(t, nil)
	for _, body := range []string{`{"game_id": `, `{"game_id":"demo","env":"dev","no_such_field":1}`} {
		resp, err := http.Post("http://"+s.HTTPAddr()+"/api/v1/functions/f:invoke", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(out, []byte(apierr.CodeMalformedRequest)) {
			t.Fatalf("body %s: %d %s; want 400 with ErrorInfo %s", body, resp.StatusCode, out, apierr.CodeMalformedRequest)
		}
	}
}

// TestApprovalOnlyCallIsNotAuditedAsInvoke: a call that only created an
// approval leaves the approval.request row, not an "invoke OK" row.
func TestApprovalOnlyCallIsNotAuditedAsInvoke(t *testing.T) {
	s, conn, _ := testServer(t, nil)
	ctx := context.Background()
	fc := croupierv1.NewFunctionServiceClient(conn)
	ac := croupierv1.NewAuditServiceClient(conn)
	desc := &croupierv1.FunctionDescriptor{Id: "player.ban", Version: "1.0.0", Auth: &croupierv1.AuthConfig{RequireApproval: true}}
	// A live instance serves it (no call reaches it: the call waits for approval).
	if err := s.Registry().Upsert(registry.Agent{ID: "agent-1", GameID: "demo", Env: "dev", Version: "1",
		Instances: []registry.Instance{{ID: "gs-1", Functions: []string{"player.ban"}}}, Descriptors: []*croupierv1.FunctionDescriptor{desc}}); err != nil {
		t.Fatal(err)
	}
	resp, err := fc.InvokeFunction(ctx, &croupierv1.InvokeFunctionRequest{GameId: "demo", Env: "dev", FunctionId: "player.ban", Payload: &structpb.Struct{}})
	if err != nil || resp.GetApprovalId() == "" {
		t.Fatalf("invoke of an approval-gated function: %v %v; want a pending approval", resp, err)
	}
	rows, err := ac.ListAudit(ctx, &croupierv1.ListAuditRequest{FunctionId: "player.ban", PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range rows.GetEntries() {
		actions = append(actions, e.GetAction()+" "+e.GetResult())
	}
	if len(actions) != 1 || actions[0] != "approval.request OK" {
		t.Fatalf("audit rows of the call: %v; want only [approval.request OK]", actions)
	}
}

// TestPublicRoutesComeFromTheTable: the REST routes that need no credential
// are exactly those of the table's public methods, read from their HTTP
// annotations; a public method with a templated route is refused.
func TestPublicRoutesComeFromTheTable(t *testing.T) {
	s, _, _ := testServer(t, nil)
	public, err := publicRoutes(s.methods)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		verb, path string
		want       bool
	}{
		{http.MethodPost, "/api/v1/auth/login", true},
		{http.MethodPost, "/api/v1/auth:refresh", true},
		{http.MethodPost, "/api/v1/auth:logout", true},
		{http.MethodGet, "/api/v1/auth/login", false},
		{http.MethodPost, "/api/v1/auth/login/", false},
		{http.MethodGet, "/api/v1/auth/whoami", false},
		{http.MethodPost, "/api/v1/functions/player.get:invoke", false},
	} {
		if got := public(httptest.NewRequest(tc.verb, tc.path, nil)); got != tc.want {
			t.Errorf("%s %s public = %v, want %v", tc.verb, tc.path, got, tc.want)
		}
	}
	_, err = publicRoutes(map[string]rule{croupierv1.FunctionService_InvokeFunction_FullMethodName: {access: accessPublic}})
	if err == nil || !strings.Contains(err.Error(), "template") {
		t.Fatalf("a public method with a templated route: err = %v, want a refusal", err)
	}
}

// Regression: RegisterFunction accepted auth.permissions no role can hold
// ("Player:Ban"), leaving the function callable only by holders of "*".
// They are refused as role creation refuses them.
func TestRegisterFunctionRefusesMalformedPermissions(t *testing.T) {
	t.Parallel()
	s, _, _ := testServer(t, nil)
	register := func(perm string) (int, map[string]any) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"game_id": "demo", "env": "dev",
			"descriptor": map[string]any{"id": "player.ban", "auth": map[string]any{"permissions": []string{perm}}}})
		resp, err := http.Post("http://"+s.HTTPAddr()+"/api/v1/functions", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, m
	}
	code, body := register("Player:Ban")
	raw, _ := json.Marshal(body)
	if code != http.StatusBadRequest || !bytes.Contains(raw, []byte(`"code":"INVALID_DESCRIPTOR"`)) ||
		!strings.Contains(fmt.Sprint(body["message"]), `descriptor.auth.permissions[0]: permission "Player:Ban" is malformed`) {
		t.Fatalf("malformed permission: %d %s", code, raw)
	}
	if code, body := register("player:ban"); code != http.StatusOK {
		t.Fatalf("well-formed permission: %d %v", code, body)
	}
}

// TestIDsDoNotRevealWhatExists asks for jobs, fleets and sessions by id as
// a caller without access to their game: a resource that exists and one
// that does not are refused alike, and the refusal names neither the game
// nor anything else about it. Only a caller with the permission on every
// game learns that an id does not exist.
func TestIDsDoNotRevealWhatExists(t *testing.T) {
	s, conn, dsn := testServer(t, nil)
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Driver: "sqlite", DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Jobs().Create(ctx, &store.Job{ID: "job-secret", GameID: "demo", Env: "dev", FunctionID: "player.get",
		Status: store.JobCompleted, Payload: []byte(`{}`), Actor: "operator:alice"}); err != nil {
		t.Fatal(err)
	}
	if err := st.Fleets().Create(ctx, &croupierv1.Fleet{FleetId: "fl-secret", GameId: "demo", Env: "dev", Name: "secret"}); err != nil {
		t.Fatal(err)
	}
	fc := croupierv1.NewFunctionServiceClient(conn)
	fl := croupierv1.NewFleetServiceClient(conn)
	outsider := as(userToken(t, s, "eve", "operator", "game:other/*"))
	insider := as(userToken(t, s, "ivy", "viewer", "game:demo/*"))
	calls := map[string]func(ctx context.Context, id string) error{
		"GetJob": func(ctx context.Context, id string) error {
			_, err := fc.GetJob(ctx, &croupierv1.GetJobRequest{JobId: id})
			return err
		},
		"CancelJob": func(ctx context.Context, id string) error {
			_, err := fc.CancelJob(ctx, &croupierv1.CancelJobRequest{JobId: id})
			return err
		},
		"GetFleet": func(ctx context.Context, id string) error {
			_, err := fl.GetFleet(ctx, &croupierv1.GetFleetRequest{FleetId: id})
			return err
		},
		"UpdateFleet": func(ctx context.Context, id string) error {
			_, err := fl.UpdateFleet(ctx, &croupierv1.UpdateFleetRequest{Fleet: &croupierv1.Fleet{FleetId: id, GameId: "other", Env: "dev"}})
			return err
		},
	}
	ids := map[string][2]string{ // an id that exists, one that does not
		"GetJob": {"job-secret", "job-nosuch"}, "CancelJob": {"job-secret", "job-nosuch"},
		"GetFleet": {"fl-secret", "fl-nosuch"}, "UpdateFleet": {"fl-secret", "fl-nosuch"},
	}
	for name, call := range calls {
		exists, missing := ids[name][0], ids[name][1]
		errExists, errMissing := call(outsider, exists), call(outsider, missing)
		for _, err := range []error{errExists, errMissing} {
			if status.Code(err) != codes.PermissionDenied || strings.Contains(status.Convert(err).Message(), "demo") {
				t.Fatalf("%s by an outsider: %v; want PERMISSION_DENIED naming no game", name, err)
			}
		}
		if a, b := status.Convert(errExists).Message(), strings.ReplaceAll(status.Convert(errMissing).Message(), missing, exists); a != b {
			t.Fatalf("%s: the refusals differ for an id that exists and one that does not:\n%s\n%s", name, a, b)
		}
		if name == "GetJob" || name == "GetFleet" {
			if err := call(insider, exists); err != nil {
				t.Fatalf("%s by a viewer of its game: %v", name, err)
			}
			if err := call(insider, missing); status.Code(err) != codes.PermissionDenied {
				t.Fatalf("%s of a missing id by a viewer of one game: %v; want PERMISSION_DENIED", name, err)
			}
		}
		// The local admin holds every permission on every game: NOT_FOUND.
		if err := call(context.Background(), missing); status.Code(err) != codes.NotFound {
			t.Fatalf("%s of a missing id by the admin: %v; want NOT_FOUND", name, err)
		}
	}
}
