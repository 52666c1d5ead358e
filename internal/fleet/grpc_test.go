package fleet_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/api/tencentcloud/gse/grpcsdk"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/fleet"
	"github.com/croupier/croupier/internal/gse"
	"github.com/croupier/croupier/internal/store/storetest"
)

// TestOverTheWire wires the fleet plane as the server and agent will: the
// operator API and the agent API on a real gRPC server, the agent calling
// the server through gRPC (gse.ClientUpstream), and the REST gateway in
// front of FleetService.
func TestOverTheWire(t *testing.T) {
	t.Parallel()
	st := storetest.SQLite(t)
	disp := fleet.NewLocalDispatcher()
	svc, err := fleet.New(fleet.Config{Store: st, Agents: disp, SweepInterval: 10 * time.Millisecond})
	mustNil(t, err, "new")
	svc.Start()
	t.Cleanup(svc.Close)
	c := ctx(t)
	mustNil(t, st.Scopes().Declare(c, "g", "prod"), "declare")

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	mustNil(t, err, "listen")
	srv := grpc.NewServer()
	croupierv1.RegisterFleetServiceServer(srv, svc.GRPC())
	croupierv1.RegisterFleetAgentServiceServer(srv, svc.AgentAPI())
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	mustNil(t, err, "dial")
	t.Cleanup(func() { _ = conn.Close() })
	ops := croupierv1.NewFleetServiceClient(conn)

	_, err = ops.CreateFleet(c, &croupierv1.CreateFleetRequest{Fleet: &croupierv1.Fleet{FleetId: "f1", GameId: "g", Env: "prod"}})
	mustNil(t, err, "create fleet")
	agent, err := gse.New(gse.Config{AgentID: "a1", GameID: "g", Env: "prod", Addr: "127.0.0.1:0",
		DataDir: filepath.Join(t.TempDir(), "a"), IPAddress: "10.0.0.9",
		Upstream:    gse.ClientUpstream(croupierv1.NewFleetAgentServiceClient(conn)),
		ProcessInfo: func(pid int) (uint64, bool) { return 1, pid >= benchPIDBase },
		CallerCheck: fakeCaller,
		Kill:        func(int, syscall.Signal) error { return nil }, TickInterval: 10 * time.Millisecond})
	mustNil(t, err, "agent")
	mustNil(t, agent.Start(), "start agent")
	t.Cleanup(agent.Close)
	disp.Set("a1", agent)

	// One raw-GSE game process.
	aconn, err := grpc.NewClient(agent.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	mustNil(t, err, "dial agent")
	t.Cleanup(func() { _ = aconn.Close() })
	game := &benchGame{pid: benchPIDBase + 1, gse: grpcsdk.NewGseGrpcSdkServiceClient(aconn)}
	glis, err := net.Listen("tcp", "127.0.0.1:0")
	mustNil(t, err, "listen game")
	gsrv := grpc.NewServer()
	grpcsdk.RegisterGameServerGrpcSdkServiceServer(gsrv, game)
	go func() { _ = gsrv.Serve(glis) }()
	t.Cleanup(gsrv.Stop)
	eventually(t, 10*time.Second, func() bool {
		gc, cancel := game.ctx()
		defer cancel()
		resp, err := game.gse.ProcessReady(gc, &grpcsdk.ProcessReadyRequest{ClientPort: 4000, GrpcPort: int32(glis.Addr().(*net.TCPAddr).Port)})
		return err == nil && resp.GetStatus() == grpcsdk.GseResponse_OK // the agent needs its fleets first
	}, func() string { return "ProcessReady refused" })
	eventually(t, 10*time.Second, func() bool {
		res, err := ops.ListProcesses(c, &croupierv1.ListProcessesRequest{FleetId: "f1", Status: "ACTIVE"})
		return err == nil && len(res.GetProcesses()) == 1
	}, func() string { return "process not reported" })

	created, err := ops.CreateGameServerSession(c, &croupierv1.CreateGameServerSessionRequest{FleetId: "f1", MaxPlayers: 2})
	mustNil(t, err, "create session")
	id := created.GetGameServerSession().GetGameServerSessionId()
	eventually(t, 10*time.Second, func() bool {
		got, err := ops.GetGameServerSession(c, &croupierv1.GetGameServerSessionRequest{GameServerSessionId: id})
		return err == nil && got.GetGameServerSession().GetStatus() == "ACTIVE"
	}, func() string { return "not activated" })
	joined, err := ops.JoinGameServerSession(c, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: id, PlayerId: "p"})
	mustNil(t, err, "join")
	if ps := joined.GetPlayerSession(); ps.GetIpAddress() != "10.0.0.9" || ps.GetPort() != 4000 {
		t.Fatalf("player session address %s:%d", ps.GetIpAddress(), ps.GetPort())
	}

	// Errors carry their code and details over gRPC.
	_, err = ops.SearchGameServerSessions(c, &croupierv1.SearchGameServerSessionsRequest{FleetId: "f1", FilterExpression: "playerSessionCount >> 1"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad filter: %v", err)
	}
	if info := apierr.Info(err); info.GetCode() != fleet.CodeInvalidFilter || info.GetDetails()["offset"] != "19" {
		t.Fatalf("error info %v", info)
	}
	_, err = ops.JoinGameServerSessionBatch(c, &croupierv1.JoinGameServerSessionBatchRequest{GameServerSessionId: id,
		Players: []*croupierv1.PlayerJoin{{PlayerId: "x"}, {PlayerId: "y"}}})
	if status.Code(err) != codes.FailedPrecondition || apierr.Info(err).GetCode() != fleet.CodeSessionFull {
		t.Fatalf("join a full session: %v", err)
	}

	// REST, through the gateway.
	mux := runtime.NewServeMux()
	mustNil(t, croupierv1.RegisterFleetServiceHandlerServer(context.Background(), mux, svc.GRPC()), "gateway")
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	resp, err := http.Post(hs.URL+"/api/v1/game-server-sessions:search", "application/json",
		strings.NewReader(`{"fleet_id":"f1","filter_expression":"hasAvailablePlayerSessions = true"}`))
	mustNil(t, err, "REST search")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), id) {
		t.Fatalf("REST search: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Post(hs.URL+"/api/v1/game-server-sessions:search", "application/json",
		strings.NewReader(`{"fleet_id":"f1","filter_expression":"maximumSessions != 2"}`))
	mustNil(t, err, "REST bad search")
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	var rerr struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &rerr)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(rerr.Message, "write <> for not equal") {
		t.Fatalf("REST bad filter: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get(hs.URL + "/api/v1/player-sessions?game_server_session_id=" + id)
	mustNil(t, err, "REST describe players")
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), joined.GetPlayerSession().GetPlayerSessionId()) {
		t.Fatalf("REST players: %d %s", resp.StatusCode, body)
	}
}
