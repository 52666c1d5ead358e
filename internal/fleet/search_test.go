package fleet_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/fleet"
	"github.com/croupier/croupier/internal/store"
)

func TestSearch(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, h *harness) {
		c := ctx(t)
		h.fleet(t, "f1")
		h.processes(t, "f1", "a1", 6)
		mk := func(name string, max int32, level string) string {
			g, err := h.svc.CreateGameServerSession(c, &croupierv1.CreateGameServerSessionRequest{FleetId: "f1", Name: name, MaxPlayers: max,
				GameProperties: []*croupierv1.GameProperty{{Key: "level", Value: level}, {Key: "mode", Value: "brawl"}}})
			mustNil(t, err, "create")
			h.waitStatus(t, g.GetGameServerSessionId(), store.GSSActive)
			h.clock.Advance(time.Millisecond)
			return g.GetGameServerSessionId()
		}
		ids := map[string]string{}
		for i, lvl := range []string{"3", "10", "25", "7", "x"} {
			name := fmt.Sprint("room-", i)
			ids[name] = mk(name, int32(2+i), lvl)
		}
		_, err := h.svc.JoinGameServerSessionBatch(c, &croupierv1.JoinGameServerSessionBatchRequest{GameServerSessionId: ids["room-0"], Players: players("a", "b")})
		mustNil(t, err, "fill room-0")
		// An ended session is not searched.
		_, err = h.svc.TerminateGameServerSession(c, ids["room-4"], true)
		mustNil(t, err, "terminate room-4")

		search := func(filterExpr, sortExpr string, limit int32, tok string) ([]string, string) {
			t.Helper()
			list, next, err := h.svc.SearchGameServerSessions(c, &croupierv1.SearchGameServerSessionsRequest{FleetId: "f1",
				FilterExpression: filterExpr, SortExpression: sortExpr, Limit: limit, NextToken: tok})
			mustNil(t, err, "search "+filterExpr)
			var names []string
			for _, g := range list {
				names = append(names, g.GetName())
			}
			return names, next
		}
		for _, tc := range []struct{ filter, sort, want string }{
			{"", "gameServerSessionName ASC", "[room-0 room-1 room-2 room-3]"},
			{"hasAvailablePlayerSessions = true", "gameServerSessionName", "[room-1 room-2 room-3]"},
			{"gameServerSessionProperties.level >= 10", "gameServerSessionProperties.level DESC", "[room-2 room-1]"},
			{"maximumSessions > 2 AND (gameServerSessionName = 'room-3' OR playerSessionCount >= 1)", "", "[room-3]"},
			{"playerSessionCount = 2", "", "[room-0]"},
			{"gameServerSessionProperties.mode <> 'brawl'", "", "[]"},
			{"", "creationTimeMillis DESC", "[room-3 room-2 room-1 room-0]"},
		} {
			got, _ := search(tc.filter, tc.sort, 0, "")
			if fmt.Sprint(got) != tc.want {
				t.Errorf("filter %q sort %q = %v, want %s", tc.filter, tc.sort, got, tc.want)
			}
		}
		// Paging.
		var all []string
		tok := ""
		for range 5 {
			page, next := search("", "gameServerSessionName", 3, tok)
			all = append(all, page...)
			if tok = next; tok == "" {
				break
			}
		}
		if fmt.Sprint(all) != "[room-0 room-1 room-2 room-3]" {
			t.Fatalf("paged %v", all)
		}
		_, next := search("", "gameServerSessionName", 3, "")
		_, _, err = h.svc.SearchGameServerSessions(c, &croupierv1.SearchGameServerSessionsRequest{FleetId: "f1", SortExpression: "creationTimeMillis", Limit: 3, NextToken: next})
		wantErr(t, err, codes.InvalidArgument, fleet.CodeInvalidArgument)

		// Grammar errors point at the token.
		for _, tc := range []struct {
			field, expr, offset, token, msg string
		}{
			{"filter_expression", "playerSessionCount >> 2", "19", ">>", "expected a comparison operator"},
			{"filter_expression", "gameSessionName = 'x'", "0", "gameSessionName", "did you mean gameServerSessionName"},
			{"filter_expression", "maximumSessions = 1 AND", "23", "", "unexpected end of expression"},
			{"filter_expression", "gameServerSessionProperties.level > '10'", "36", "'10'", "drop the quotes"},
			{"sort_expression", "playerSessionCount SIDEWAYS", "19", "SIDEWAYS", ""},
		} {
			req := &croupierv1.SearchGameServerSessionsRequest{FleetId: "f1"}
			if tc.field == "filter_expression" {
				req.FilterExpression = tc.expr
			} else {
				req.SortExpression = tc.expr
			}
			_, _, err := h.svc.SearchGameServerSessions(c, req)
			e := wantErr(t, err, codes.InvalidArgument, fleet.CodeInvalidFilter)
			if e.Details["field"] != tc.field || e.Details["offset"] != tc.offset || e.Details["token"] != tc.token ||
				!strings.Contains(e.Msg, tc.msg) || !strings.Contains(e.Msg, "^") {
				t.Errorf("%q: details %v, message %q", tc.expr, e.Details, e.Msg)
			}
		}
		_, _, err = h.svc.SearchGameServerSessions(c, &croupierv1.SearchGameServerSessionsRequest{FleetId: "nope"})
		wantErr(t, err, codes.NotFound, fleet.CodeFleetNotFound)
	})
}
