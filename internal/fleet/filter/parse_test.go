package filter_test

import (
	"testing"

	"github.com/croupier/croupier/internal/fleet/filter"
)

func mustParse(t *testing.T, expr string) *filter.Expr {
	t.Helper()
	e, err := filter.Parse(expr)
	if err != nil {
		t.Fatalf("Parse(%q): %v", expr, err)
	}
	return e
}

func TestPrecedence(t *testing.T) {
	// a = maximumSessions = 1, b = maximumSessions = 2, c = playerSessionCount = 3
	const a, b, c = "maximumSessions = 1", "maximumSessions = 2", "playerSessionCount = 3"
	onlyA := filter.Session{MaxPlayers: 1}
	onlyC := filter.Session{PlayerCount: 3}
	bc := filter.Session{MaxPlayers: 2, PlayerCount: 3}
	tests := []struct {
		expr string
		want map[string]bool // session name -> match
	}{
		// AND binds tighter: a OR (b AND c).
		{a + " OR " + b + " AND " + c, map[string]bool{"onlyA": true, "onlyC": false, "bc": true}},
		{b + " AND " + c + " OR " + a, map[string]bool{"onlyA": true, "onlyC": false, "bc": true}},
		// Parentheses override it: (a OR b) AND c.
		{"(" + a + " OR " + b + ") AND " + c, map[string]bool{"onlyA": false, "onlyC": false, "bc": true}},
		{a + " or " + c, map[string]bool{"onlyA": true, "onlyC": true, "bc": true}},
		{a + " and " + c, map[string]bool{"onlyA": false, "onlyC": false, "bc": false}},
	}
	sessions := map[string]filter.Session{"onlyA": onlyA, "onlyC": onlyC, "bc": bc}
	for _, tc := range tests {
		e := mustParse(t, tc.expr)
		for name, want := range tc.want {
			if got := e.Match(sessions[name]); got != want {
				t.Errorf("%q on %s = %v, want %v", tc.expr, name, got, want)
			}
		}
	}
}

func TestCanonicalString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"   \t\n", ""},
		{"maximumsessions>=10", "maximumSessions >= 10"},
		{
			"  MAXIMUMSESSIONS>=10 and (GAMESERVERSESSIONNAME='x' or playerSessionCount<2)",
			"maximumSessions >= 10 AND (gameServerSessionName = 'x' OR playerSessionCount < 2)",
		},
		{"((playerSessionCount = 1))", "playerSessionCount = 1"},
		{"(playerSessionCount = 1 OR playerSessionCount = 2) OR playerSessionCount = 3",
			"playerSessionCount = 1 OR playerSessionCount = 2 OR playerSessionCount = 3"},
		{"playerSessionCount = 1 AND (playerSessionCount = 2 AND playerSessionCount = 3)",
			"playerSessionCount = 1 AND playerSessionCount = 2 AND playerSessionCount = 3"},
		{"(playerSessionCount = 1 AND playerSessionCount = 2) OR playerSessionCount = 3",
			"playerSessionCount = 1 AND playerSessionCount = 2 OR playerSessionCount = 3"},
		{"playerSessionCount = 1 AND (playerSessionCount = 2 OR (playerSessionCount = 3 AND playerSessionCount = 4))",
			"playerSessionCount = 1 AND (playerSessionCount = 2 OR playerSessionCount = 3 AND playerSessionCount = 4)"},
		{"hasAvailablePlayerSessions = TRUE", "hasAvailablePlayerSessions = true"},
		{"hasAvailablePlayerSessions <> False", "hasAvailablePlayerSessions <> false"},
		{"creationTimeMillis > 1.5e3", "creationTimeMillis > 1.5e3"},
		{"playerSessionCount > -1", "playerSessionCount > -1"},
		{"GameServerSessionProperties.Mode = 'x'", "gameServerSessionProperties.Mode = 'x'"},
		{"gameServerSessionProperties.game-mode.v2 = 'x'", "gameServerSessionProperties.game-mode.v2 = 'x'"},
		// Quoting: the quote that needs fewer escapes wins; escapes are canonical.
		{`gameServerSessionName = "it's"`, `gameServerSessionName = "it's"`},
		{`gameServerSessionName = 'it\'s'`, `gameServerSessionName = "it's"`},
		{`gameServerSessionName = "say \"hi\""`, `gameServerSessionName = 'say "hi"'`},
		{`gameServerSessionName = 'a\'b"c'`, `gameServerSessionName = 'a\'b"c'`},
		{`gameServerSessionName = 'back\\slash'`, `gameServerSessionName = 'back\\slash'`},
		{`gameServerSessionName = 'tab\there\nnl\rcr'`, `gameServerSessionName = 'tab\there\nnl\rcr'`},
		{`gameServerSessionName = '\u00e9\u0001\u000A'`, `gameServerSessionName = 'é\u0001\n'`},
		{`gameServerSessionName = '大厅 1'`, `gameServerSessionName = '大厅 1'`},
	}
	for _, tc := range tests {
		e := mustParse(t, tc.in)
		if got := e.String(); got != tc.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
		// The canonical form is a fixed point.
		if again := mustParse(t, tc.want).String(); again != tc.want {
			t.Errorf("canonical %q re-renders as %q", tc.want, again)
		}
	}
}

func TestEmptyMatchesEverything(t *testing.T) {
	for _, expr := range []string{"", " ", "\n\t"} {
		e := mustParse(t, expr)
		if !e.Match(filter.Session{}) || !e.Match(filter.Session{Name: "x", MaxPlayers: 3}) {
			t.Errorf("%q should match every session", expr)
		}
	}
	var zero *filter.Expr
	if !zero.Match(filter.Session{}) || zero.String() != "" {
		t.Error("nil *Expr should match everything and print as empty")
	}
}
