package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// controlClient is the part of ControlService an agent calls.
type controlClient interface {
	RegisterAgent(ctx context.Context, r *croupierv1.RegisterAgentRequest) (*croupierv1.RegisterAgentResponse, error)
	Heartbeat(ctx context.Context, r *croupierv1.HeartbeatRequest) (*croupierv1.HeartbeatResponse, error)
	UpdateInstances(ctx context.Context, r *croupierv1.UpdateInstancesRequest) (*croupierv1.UpdateInstancesResponse, error)
	GetAssignments(ctx context.Context, r *croupierv1.GetAssignmentsRequest) (*croupierv1.GetAssignmentsResponse, error)
	ReportJobEvents(ctx context.Context, r *croupierv1.ReportJobEventsRequest) (*croupierv1.ReportJobEventsResponse, error)
}

// grpcControl calls ControlService over the agent's gRPC connection.
type grpcControl struct {
	c croupierv1.ControlServiceClient
}

func (g grpcControl) RegisterAgent(ctx context.Context, r *croupierv1.RegisterAgentRequest) (*croupierv1.RegisterAgentResponse, error) {
	return g.c.RegisterAgent(ctx, r)
}

func (g grpcControl) Heartbeat(ctx context.Context, r *croupierv1.HeartbeatRequest) (*croupierv1.HeartbeatResponse, error) {
	return g.c.Heartbeat(ctx, r)
}

func (g grpcControl) UpdateInstances(ctx context.Context, r *croupierv1.UpdateInstancesRequest) (*croupierv1.UpdateInstancesResponse, error) {
	return g.c.UpdateInstances(ctx, r)
}

func (g grpcControl) GetAssignments(ctx context.Context, r *croupierv1.GetAssignmentsRequest) (*croupierv1.GetAssignmentsResponse, error) {
	return g.c.GetAssignments(ctx, r)
}

func (g grpcControl) ReportJobEvents(ctx context.Context, r *croupierv1.ReportJobEventsRequest) (*croupierv1.ReportJobEventsResponse, error) {
	return g.c.ReportJobEvents(ctx, r)
}

// restControl calls ControlService as REST over HTTP/1.1, for agents on the
// long-poll transport whose network cannot carry HTTP/2 at all.
type restControl struct {
	base string // e.g. https://server:8444
	hc   *http.Client
}

func (r restControl) RegisterAgent(ctx context.Context, req *croupierv1.RegisterAgentRequest) (*croupierv1.RegisterAgentResponse, error) {
	out := &croupierv1.RegisterAgentResponse{}
	return out, r.do(ctx, http.MethodPost, "/api/v1/agents:register", req, out)
}

func (r restControl) Heartbeat(ctx context.Context, req *croupierv1.HeartbeatRequest) (*croupierv1.HeartbeatResponse, error) {
	out := &croupierv1.HeartbeatResponse{}
	return out, r.do(ctx, http.MethodPost, "/api/v1/agents/"+url.PathEscape(req.GetAgentId())+":heartbeat", req, out)
}

func (r restControl) UpdateInstances(ctx context.Context, req *croupierv1.UpdateInstancesRequest) (*croupierv1.UpdateInstancesResponse, error) {
	out := &croupierv1.UpdateInstancesResponse{}
	return out, r.do(ctx, http.MethodPost, "/api/v1/agents/"+url.PathEscape(req.GetAgentId())+"/instances:update", req, out)
}

func (r restControl) GetAssignments(ctx context.Context, req *croupierv1.GetAssignmentsRequest) (*croupierv1.GetAssignmentsResponse, error) {
	out := &croupierv1.GetAssignmentsResponse{}
	return out, r.do(ctx, http.MethodGet, "/api/v1/agents/"+url.PathEscape(req.GetAgentId())+"/assignments", nil, out)
}

func (r restControl) ReportJobEvents(ctx context.Context, req *croupierv1.ReportJobEventsRequest) (*croupierv1.ReportJobEventsResponse, error) {
	out := &croupierv1.ReportJobEventsResponse{}
	return out, r.do(ctx, http.MethodPost, "/api/v1/agents/"+url.PathEscape(req.GetAgentId())+"/jobs/"+url.PathEscape(req.GetJobId())+"/events", req, out)
}

func (r restControl) do(ctx context.Context, method, path string, in, out proto.Message) error {
	var body io.Reader
	if in != nil {
		b, err := protojson.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.hc.Do(req)
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	if resp.StatusCode != http.StatusOK {
		st := &spb.Status{}
		if protojson.Unmarshal(b, st) == nil && st.GetCode() != 0 {
			return status.ErrorProto(st)
		}
		return status.Errorf(codes.Unknown, "%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode %s response: %w", path, err)
	}
	return nil
}
