package agent

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// restCall is one request the fake REST server received.
type restCall struct {
	method, path, contentType string
	body                      []byte
}

// restServer is an httptest server answering every request with the given
// status and body, recording what it received.
type restServer struct {
	*httptest.Server
	mu    sync.Mutex
	calls []restCall
	code  int
	body  string
}

func newRESTServer(t *testing.T) *restServer {
	t.Helper()
	s := &restServer{code: http.StatusOK, body: "{}"}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.calls = append(s.calls, restCall{r.Method, r.URL.EscapedPath(), r.Header.Get("Content-Type"), b})
		code, body := s.code, s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *restServer) answer(code int, body string) {
	s.mu.Lock()
	s.code, s.body = code, body
	s.mu.Unlock()
}

func (s *restServer) last(t *testing.T) restCall {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.calls) == 0 {
		t.Fatal("no request reached the server")
	}
	return s.calls[len(s.calls)-1]
}

func (s *restServer) client() restControl {
	return restControl{base: s.URL, hc: s.Client()}
}

func ctx5s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestRESTControlRequests checks each method's HTTP method, path (with ids
// escaped), body and response decoding — unknown response fields ignored.
func TestRESTControlRequests(t *testing.T) {
	t.Parallel()
	srv := newRESTServer(t)
	c := srv.client()
	ctx := ctx5s(t)

	srv.answer(http.StatusOK, `{"success":true,"agentId":"edge 1","heartbeatInterval":"7","addedLater":{"x":1}}`)
	reg := &croupierv1.RegisterAgentRequest{AgentId: "edge 1", GameId: "demo", Env: "dev", Functions: []string{"player.get"}}
	rr, err := c.RegisterAgent(ctx, reg)
	if err != nil || !rr.GetSuccess() || rr.GetAgentId() != "edge 1" || rr.GetHeartbeatInterval() != 7 {
		t.Fatalf("RegisterAgent = %v, %v", rr, err)
	}
	call := srv.last(t)
	got := &croupierv1.RegisterAgentRequest{}
	if call.method != http.MethodPost || call.path != "/api/v1/agents:register" || call.contentType != "application/json" ||
		protojson.Unmarshal(call.body, got) != nil || !proto.Equal(got, reg) {
		t.Fatalf("RegisterAgent sent %s %s %q %s", call.method, call.path, call.contentType, call.body)
	}

	srv.answer(http.StatusOK, `{"success":true,"assignmentsVersion":"3"}`)
	hb, err := c.Heartbeat(ctx, &croupierv1.HeartbeatRequest{AgentId: "edge 1/x"})
	if err != nil || hb.GetAssignmentsVersion() != 3 {
		t.Fatalf("Heartbeat = %v, %v", hb, err)
	}
	if call = srv.last(t); call.method != http.MethodPost || call.path != "/api/v1/agents/edge%201%2Fx:heartbeat" {
		t.Fatalf("Heartbeat sent %s %s", call.method, call.path)
	}

	srv.answer(http.StatusOK, `{"assignments":[{"functionId":"player.get","enabled":true,"config":{"k":"v"}}],"version":"3"}`)
	as, err := c.GetAssignments(ctx, &croupierv1.GetAssignmentsRequest{AgentId: "edge-1"})
	if err != nil || as.GetVersion() != 3 || len(as.GetAssignments()) != 1 || as.GetAssignments()[0].GetConfig()["k"] != "v" {
		t.Fatalf("GetAssignments = %v, %v", as, err)
	}
	if call = srv.last(t); call.method != http.MethodGet || call.path != "/api/v1/agents/edge-1/assignments" || len(call.body) != 0 {
		t.Fatalf("GetAssignments sent %s %s body %q", call.method, call.path, call.body)
	}

	srv.answer(http.StatusOK, `{"ackedSeq":"12","status":"running"}`)
	rep := &croupierv1.ReportJobEventsRequest{AgentId: "edge-1", JobId: "job_abc", Instance: "edge-1/gs-1",
		Events: []*croupierv1.JobEvent{{Seq: 12, Type: croupierv1.EventType_PROGRESS, Progress: 0.5}}}
	ack, err := c.ReportJobEvents(ctx, rep)
	if err != nil || ack.GetAckedSeq() != 12 || ack.GetStatus() != "running" {
		t.Fatalf("ReportJobEvents = %v, %v", ack, err)
	}
	call = srv.last(t)
	gotRep := &croupierv1.ReportJobEventsRequest{}
	if call.method != http.MethodPost || call.path != "/api/v1/agents/edge-1/jobs/job_abc/events" ||
		protojson.Unmarshal(call.body, gotRep) != nil || !proto.Equal(gotRep, rep) {
		t.Fatalf("ReportJobEvents sent %s %s %s", call.method, call.path, call.body)
	}
}

// TestRESTControlErrors: the server's error body (a google.rpc.Status, as
// grpc-gateway writes it) becomes the same gRPC status with its ErrorInfo;
// anything else keeps the HTTP status in the message.
func TestRESTControlErrors(t *testing.T) {
	t.Parallel()
	statusBody := func(c codes.Code, info, msg string) string {
		b, err := protojson.Marshal(status.Convert(apierr.New(c, info, msg, "agent_id", "edge-1")).Proto())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name     string
		httpCode int
		body     string
		code     codes.Code
		info     string
		msg      string
	}{
		{"not found", http.StatusNotFound, statusBody(codes.NotFound, apierr.CodeAgentNotFound, "agent edge-1 is not registered"),
			codes.NotFound, apierr.CodeAgentNotFound, "agent edge-1 is not registered"},
		{"permission denied", http.StatusForbidden, statusBody(codes.PermissionDenied, apierr.CodeScopeMismatch, "wrong scope"),
			codes.PermissionDenied, apierr.CodeScopeMismatch, "wrong scope"},
		{"event gap", http.StatusBadRequest, statusBody(codes.FailedPrecondition, "EVENT_GAP", "expected event seq 4"),
			codes.FailedPrecondition, "EVENT_GAP", "expected event seq 4"},
		{"proxy error page", http.StatusBadGateway, "<html>bad gateway</html>", codes.Unknown, "", "HTTP 502: <html>bad gateway</html>"},
		{"status without code", http.StatusInternalServerError, `{"message":"x"}`, codes.Unknown, "", "HTTP 500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newRESTServer(t)
			srv.answer(tt.httpCode, tt.body)
			_, err := srv.client().Heartbeat(ctx5s(t), &croupierv1.HeartbeatRequest{AgentId: "edge-1"})
			if got := status.Code(err); got != tt.code {
				t.Fatalf("code %s (%v), want %s", got, err, tt.code)
			}
			if !strings.Contains(status.Convert(err).Message(), tt.msg) {
				t.Fatalf("message %q does not contain %q", status.Convert(err).Message(), tt.msg)
			}
			if tt.info != "" {
				ei := apierr.Info(err)
				if ei.GetCode() != tt.info || ei.GetDetails()["agent_id"] != "edge-1" {
					t.Fatalf("ErrorInfo %v, want code %s", ei, tt.info)
				}
			}
		})
	}
}

func TestRESTControlTransportErrors(t *testing.T) {
	t.Parallel()
	// A port nothing listens on: bind one, then close it.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	c := restControl{base: "http://" + addr, hc: &http.Client{}}
	if _, err := c.Heartbeat(ctx5s(t), &croupierv1.HeartbeatRequest{AgentId: "a"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("server down: %v, want UNAVAILABLE", err)
	}

	// A 200 whose body is not the response is a decode error naming the path.
	srv := newRESTServer(t)
	srv.answer(http.StatusOK, "not json")
	if _, err := srv.client().GetAssignments(ctx5s(t), &croupierv1.GetAssignmentsRequest{AgentId: "a"}); err == nil ||
		!strings.Contains(err.Error(), "/api/v1/agents/a/assignments") {
		t.Fatalf("undecodable 200: %v", err)
	}
}
