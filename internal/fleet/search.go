package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"slices"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/fleet/filter"
	"github.com/croupier/croupier/internal/store"
)

// maxSearchSessions bounds the live sessions one search reads. A fleet
// hosts at most one live session per process, so this is far above any
// real fleet.
const maxSearchSessions = 10000

// SearchGameServerSessions filters and sorts a fleet's ACTIVATING and
// ACTIVE sessions with the GSE grammar (package filter). A malformed
// expression is INVALID_ARGUMENT naming the offset of the bad token.
func (s *Service) SearchGameServerSessions(ctx context.Context, req *croupierv1.SearchGameServerSessionsRequest) ([]*croupierv1.GameServerSession, string, error) {
	size, err := pageSize(req.GetLimit())
	if err != nil {
		return nil, "", err
	}
	expr, err := filter.Parse(req.GetFilterExpression())
	if err != nil {
		return nil, "", filterError("filter_expression", err)
	}
	order, err := filter.ParseSort(req.GetSortExpression())
	if err != nil {
		return nil, "", filterError("sort_expression", err)
	}
	offset := 0
	if tok := req.GetNextToken(); tok != "" {
		if offset, err = decodeSearchToken(tok, req); err != nil {
			return nil, "", err
		}
	}
	if _, err := s.GetFleet(ctx, req.GetFleetId()); err != nil {
		return nil, "", err
	}
	live, err := s.st.GameServerSessions().ListLive(ctx, req.GetFleetId(), maxSearchSessions)
	if err != nil {
		return nil, "", storeErr(err, CodeFleetNotFound)
	}
	type match struct {
		g    *store.GameServerSession
		view filter.Session
	}
	var hits []match
	for i := range live {
		v := filterView(&live[i])
		if expr.Match(v) {
			hits = append(hits, match{&live[i], v})
		}
	}
	slices.SortStableFunc(hits, func(a, b match) int {
		switch {
		case order.Less(a.view, b.view):
			return -1
		case order.Less(b.view, a.view):
			return 1
		}
		return 0
	})
	if offset > len(hits) {
		offset = len(hits)
	}
	end := min(offset+size, len(hits))
	out := make([]*croupierv1.GameServerSession, 0, end-offset)
	for _, h := range hits[offset:end] {
		out = append(out, sessionToProto(h.g))
	}
	next := ""
	if end < len(hits) {
		next = encodeSearchToken(end, req)
	}
	return out, next, nil
}

// filterView is the filter package's view of a session.
func filterView(g *store.GameServerSession) filter.Session {
	props := make(map[string]string, len(g.Properties))
	for _, p := range g.Properties {
		props[p.Key] = p.Value
	}
	return filter.Session{
		Name: g.Name, ID: g.ID, MaxPlayers: g.MaxPlayers, CreationTimeMillis: g.CreatedAt.UnixMilli(),
		PlayerCount:  g.PlayerCount,
		HasAvailable: g.Status == store.GSSActive && g.CreationPolicy == store.PolicyAcceptAll && g.PlayerCount < g.MaxPlayers,
		Properties:   props,
	}
}

// Search pages are offsets into the sorted result. The token binds the
// offset to the query (fleet, filter, sort), so a token is not reused with
// another query by mistake.
func searchQueryHash(req *croupierv1.SearchGameServerSessionsRequest) []byte {
	h := sha256.New()
	for _, s := range []string{req.GetFleetId(), req.GetFilterExpression(), req.GetSortExpression()} {
		_, _ = h.Write([]byte(s))
		_, _ = h.Write([]byte{0})
	}
	return h.Sum(nil)[:8]
}

func encodeSearchToken(offset int, req *croupierv1.SearchGameServerSessionsRequest) string {
	b := binary.BigEndian.AppendUint32(searchQueryHash(req), uint32(offset))
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeSearchToken(tok string, req *croupierv1.SearchGameServerSessionsRequest) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) != 12 || string(b[:8]) != string(searchQueryHash(req)) {
		return 0, invalidArg("next_token does not belong to this search (same fleet, filter and sort expressions)")
	}
	return int(binary.BigEndian.Uint32(b[8:])), nil
}
