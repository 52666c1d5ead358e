package approval

import (
	"context"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr/storeerr"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/principal"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Server implements croupierv1.ApprovalServiceServer.
type Server struct {
	croupierv1.UnimplementedApprovalServiceServer
	svc *Service
}

// NewServer returns the gRPC (and REST) face of s.
func NewServer(s *Service) *Server { return &Server{svc: s} }

// ListApprovals implements ApprovalService.ListApprovals.
func (x *Server) ListApprovals(ctx context.Context, req *croupierv1.ListApprovalsRequest) (*croupierv1.ListApprovalsResponse, error) {
	rows, next, err := x.svc.List(ctx, principal.FromContext(ctx), Filter{Status: req.GetStatus(), Game: req.GetGameId(),
		Env: req.GetEnv(), PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, storeerr.ToStatus(ctx, x.svc.log, err)
	}
	resp := &croupierv1.ListApprovalsResponse{NextPageToken: next, Approvals: make([]*croupierv1.Approval, 0, len(rows))}
	for _, r := range rows {
		resp.Approvals = append(resp.Approvals, Proto(r))
	}
	return resp, nil
}

// GetApproval implements ApprovalService.GetApproval.
func (x *Server) GetApproval(ctx context.Context, req *croupierv1.GetApprovalRequest) (*croupierv1.GetApprovalResponse, error) {
	r, err := x.svc.Get(ctx, principal.FromContext(ctx), req.GetId())
	if err != nil {
		return nil, storeerr.ToStatus(ctx, x.svc.log, err)
	}
	return &croupierv1.GetApprovalResponse{Approval: Proto(r)}, nil
}

// Approve implements ApprovalService.Approve.
func (x *Server) Approve(ctx context.Context, req *croupierv1.ApproveRequest) (*croupierv1.ApproveResponse, error) {
	r, err := x.svc.Approve(ctx, principal.FromContext(ctx), req.GetId(), req.GetComment())
	if err != nil {
		return nil, storeerr.ToStatus(ctx, x.svc.log, err)
	}
	return &croupierv1.ApproveResponse{Approval: Proto(r)}, nil
}

// Reject implements ApprovalService.Reject.
func (x *Server) Reject(ctx context.Context, req *croupierv1.RejectRequest) (*croupierv1.RejectResponse, error) {
	r, err := x.svc.Reject(ctx, principal.FromContext(ctx), req.GetId(), req.GetReason())
	if err != nil {
		return nil, storeerr.ToStatus(ctx, x.svc.log, err)
	}
	return &croupierv1.RejectResponse{Approval: Proto(r)}, nil
}

// Proto converts a request for the API, masking its sensitive fields.
func Proto(r Request) *croupierv1.Approval {
	payload := &structpb.Struct{}
	if err := protojson.Unmarshal(audit.Mask(r.Payload, r.SensitiveFields), payload); err != nil {
		payload = nil // not an object (or masked whole): shown empty
	}
	out := &croupierv1.Approval{Id: r.ID, Requester: r.Requester, GameId: r.Game, Env: r.Env, FunctionId: r.Function,
		Payload: payload, Status: r.Status, CreatedAtMs: ms(r.CreatedAt.UnixMilli()), ExpiresAtMs: ms(r.ExpiresAt.UnixMilli()),
		DecidedBy: r.DecidedBy, Reason: r.Reason, JobId: r.JobID, Error: r.Error}
	if !r.DecidedAt.IsZero() {
		out.DecidedAtMs = r.DecidedAt.UnixMilli()
	}
	if r.Options != nil {
		out.Options = proto.Clone(r.Options).(*croupierv1.InvokeOptions)
	}
	return out
}

func ms(v int64) int64 {
	if v < 0 {
		return 0
	}
	return v
}
