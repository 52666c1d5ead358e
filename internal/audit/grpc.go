package audit

import (
	"context"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr/storeerr"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// Server implements croupierv1.AuditServiceServer over a Log; the caller
// is the principal the authentication interceptor put in the context.
type Server struct {
	croupierv1.UnimplementedAuditServiceServer
	log *Log
}

// NewServer returns the gRPC (and, through grpc-gateway, REST) face of l.
func NewServer(l *Log) *Server { return &Server{log: l} }

// ListAudit implements AuditService.ListAudit.
func (s *Server) ListAudit(ctx context.Context, req *croupierv1.ListAuditRequest) (*croupierv1.ListAuditResponse, error) {
	f := Filter{Game: req.GetGameId(), Env: req.GetEnv(), Actor: req.GetActor(), Function: req.GetFunctionId(),
		Action: req.GetAction(), PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()}
	if req.GetFromMs() > 0 {
		f.From = time.UnixMilli(req.GetFromMs())
	}
	if req.GetToMs() > 0 {
		f.To = time.UnixMilli(req.GetToMs())
	}
	rows, next, err := s.log.List(ctx, principal.FromContext(ctx), f)
	if err != nil {
		return nil, storeerr.ToStatus(ctx, s.log.log, err)
	}
	resp := &croupierv1.ListAuditResponse{NextPageToken: next, Entries: make([]*croupierv1.AuditEntry, 0, len(rows))}
	for i := range rows {
		resp.Entries = append(resp.Entries, EntryProto(&rows[i]))
	}
	return resp, nil
}

// VerifyAudit implements AuditService.VerifyAudit.
func (s *Server) VerifyAudit(ctx context.Context, _ *croupierv1.VerifyAuditRequest) (*croupierv1.VerifyAuditResponse, error) {
	res, err := s.log.Verify(ctx, principal.FromContext(ctx))
	if err != nil {
		return nil, storeerr.ToStatus(ctx, s.log.log, err)
	}
	return &croupierv1.VerifyAuditResponse{Ok: res.OK, RowsChecked: res.RowsChecked, FirstBadId: res.FirstBadID, Reason: res.Reason}, nil
}

// EntryProto converts a stored row for the API.
func EntryProto(r *store.AuditRecord) *croupierv1.AuditEntry {
	payload := &structpb.Value{}
	if err := protojson.Unmarshal([]byte(r.Payload), payload); err != nil {
		// A row edited into invalid JSON still lists; Verify names it.
		payload = structpb.NewStringValue(r.Payload)
	}
	return &croupierv1.AuditEntry{
		Id: r.ID, TsMs: r.Time.UnixMilli(), Actor: r.Actor, Action: r.Action, GameId: r.Game, Env: r.Env,
		FunctionId: r.Function, Payload: payload, Result: r.Result, DurationMs: r.DurationMs,
		RequestId: r.RequestID, PrevHash: r.PrevHash, Hash: r.Hash,
	}
}
