package filter

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error is a
// *SyntaxError pointing inside the input and renders, and that any
// expression that parses re-parses from its String() to an equal tree that
// matches the same sessions.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		"maximumSessions >= 10",
		"hasAvailablePlayerSessions = true AND (gameServerSessionProperties.mode = 'brawl' OR maximumSessions >= 10)",
		"a OR b",
		"(playerSessionCount = 1 OR playerSessionCount = 2) AND creationTimeMillis > 1.5e3",
		`gameServerSessionName = "it's" OR gameServerSessionId <> 'a\'b"c\\\n\u00e9'`,
		"gameServerSessionProperties.地图 = '长城' and gameServerSessionProperties.level < -2.5E-3",
		"((((playerSessionCount = 1))))",
		"maximumSessions >> 5",
		"gameServerSessionName = 'abc",
		"gameServerSessionProperties.level > '10'",
		"playerSessionCount = 1 AND playerSessionCount = 2 OR playerSessionCount = 3 AND (playerSessionCount = 4 OR playerSessionCount = 5)",
	} {
		f.Add(seed)
	}
	sessions := fuzzSessions()
	f.Fuzz(func(t *testing.T, expr string) {
		e, err := Parse(expr)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q): error %T is not *SyntaxError", expr, err)
			}
			if se.Pos < 0 || se.Pos > len(expr) || se.Expr != expr {
				t.Fatalf("Parse(%q): bad error position %d", expr, se.Pos)
			}
			if se.Token != "" && !strings.HasPrefix(expr[se.Pos:], se.Token) {
				t.Fatalf("Parse(%q): token %q is not at offset %d", expr, se.Token, se.Pos)
			}
			_ = se.Error()
			return
		}
		s := e.String()
		// String() spells things out ("a=1" → "a = 1"), so the canonical form
		// of an input near MaxLength may exceed it; lift only that limit.
		lim := defaultLimits()
		lim.maxLength = max(lim.maxLength, len(s))
		e2, err := parse(s, lim)
		if err != nil {
			t.Fatalf("Parse(%q).String() = %q does not parse: %v", expr, s, err)
		}
		if !equalNodes(e.root, e2.root) {
			t.Fatalf("Parse(%q): String() %q parses to a different tree", expr, s)
		}
		if s2 := e2.String(); s2 != s {
			t.Fatalf("String() is not a fixed point: %q then %q", s, s2)
		}
		for _, sess := range sessions {
			if e.Match(sess) != e2.Match(sess) {
				t.Fatalf("%q and %q disagree on %+v", expr, s, sess)
			}
		}
	})
}

func fuzzSessions() []Session {
	return []Session{
		{},
		{Name: "a", ID: "b", MaxPlayers: 10, CreationTimeMillis: 1500, PlayerCount: 1, HasAvailable: true,
			Properties: map[string]string{"mode": "brawl", "level": "10", "地图": "长城", "a": "1"}},
		{Name: "it's", ID: "a'b\"c\\\né", MaxPlayers: 2, PlayerCount: 2,
			Properties: map[string]string{"level": "-0.0025", "mode": ""}},
	}
}
