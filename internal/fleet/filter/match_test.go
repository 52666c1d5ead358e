package filter_test

import (
	"testing"

	"github.com/croupier/croupier/internal/fleet/filter"
)

func fixture() filter.Session {
	return filter.Session{
		Name:               "room-1",
		ID:                 "gss-1",
		MaxPlayers:         10,
		CreationTimeMillis: 1_700_000_000_000,
		PlayerCount:        4,
		HasAvailable:       true,
		Properties: map[string]string{
			"mode":    "brawl",
			"level":   "10",
			"version": "1.10",
			"code":    "007",
			"score":   "2.5",
			"Mode":    "CASE",
			"empty":   "",
			"地图":      "长城",
		},
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		expr string
		want bool
	}{
		// gameServerSessionName / gameServerSessionId: = and <>.
		{"gameServerSessionName = 'room-1'", true},
		{"gameServerSessionName = 'ROOM-1'", false}, // values are case-sensitive
		{"gameServerSessionName <> 'room-1'", false},
		{"gameServerSessionName <> 'room-2'", true},
		{`gameServerSessionId = "gss-1"`, true},
		{"gameServerSessionId <> 'gss-1'", false},

		// Numeric attributes: every operator at the boundary.
		{"maximumSessions = 10", true},
		{"maximumSessions <> 10", false},
		{"maximumSessions < 10", false},
		{"maximumSessions <= 10", true},
		{"maximumSessions > 10", false},
		{"maximumSessions >= 10", true},
		{"maximumSessions = 10.0", true},
		{"maximumSessions > 9.5", true},
		{"maximumSessions < 10.5", true},
		{"maximumSessions < 1e2", true},
		{"playerSessionCount = 4", true},
		{"playerSessionCount <> 4", false},
		{"playerSessionCount < 5", true},
		{"playerSessionCount <= 3", false},
		{"playerSessionCount > 3", true},
		{"playerSessionCount >= 5", false},
		{"playerSessionCount > -1", true},
		{"creationTimeMillis = 1700000000000", true},
		{"creationTimeMillis = 1700000000001", false},
		{"creationTimeMillis < 1700000000001", true},
		{"creationTimeMillis >= 1700000000001", false},

		// hasAvailablePlayerSessions.
		{"hasAvailablePlayerSessions = true", true},
		{"hasAvailablePlayerSessions = false", false},
		{"hasAvailablePlayerSessions <> true", false},
		{"hasAvailablePlayerSessions <> FALSE", true},

		// Properties compared as strings (quoted literal): exact, = and <>.
		{"gameServerSessionProperties.mode = 'brawl'", true},
		{"gameServerSessionProperties.mode <> 'brawl'", false},
		{"gameServerSessionProperties.mode = 'Brawl'", false},
		{"gameServerSessionProperties.Mode = 'CASE'", true}, // keys are case-sensitive
		{"gameServerSessionProperties.version = '1.10'", true},
		{"gameServerSessionProperties.version = '1.1'", false}, // quoted: no numeric equality
		{"gameServerSessionProperties.code = '7'", false},
		{"gameServerSessionProperties.empty = ''", true},
		{"gameServerSessionProperties.地图 = '长城'", true},

		// Properties compared as numbers (unquoted literal).
		{"gameServerSessionProperties.level = 10", true},
		{"gameServerSessionProperties.level > 9", true},
		{"gameServerSessionProperties.level >= 10.5", false},
		{"gameServerSessionProperties.level < 10.5", true},
		{"gameServerSessionProperties.level <= 10", true},
		{"gameServerSessionProperties.level <> 10", false},
		{"gameServerSessionProperties.version = 1.1", true},
		{"gameServerSessionProperties.code = 7", true},
		{"gameServerSessionProperties.score > 2", true},
		{"gameServerSessionProperties.score < 2.5", false},
		// A value that is not a number never matches a numeric comparison.
		{"gameServerSessionProperties.mode > 0", false},
		{"gameServerSessionProperties.mode <> 0", false},
		{"gameServerSessionProperties.empty = 0", false},

		// Missing properties match nothing, <> included.
		{"gameServerSessionProperties.missing = 'x'", false},
		{"gameServerSessionProperties.missing <> 'x'", false},
		{"gameServerSessionProperties.missing < 1", false},

		// Combinations.
		{"gameServerSessionProperties.mode = 'brawl' AND maximumSessions >= 10", true},
		{"gameServerSessionProperties.mode = 'solo' AND maximumSessions >= 10", false},
		{"gameServerSessionProperties.mode = 'solo' OR maximumSessions >= 10", true},
		{"(gameServerSessionProperties.mode = 'solo' OR playerSessionCount < 10) AND hasAvailablePlayerSessions = true", true},
	}
	s := fixture()
	for _, tc := range tests {
		if got := mustParse(t, tc.expr).Match(s); got != tc.want {
			t.Errorf("%q = %v, want %v", tc.expr, got, tc.want)
		}
	}
}

func TestMatchIntegersAreExact(t *testing.T) {
	// 2^53+1 is not representable as float64; integer literals must still
	// compare exactly against millisecond timestamps and counts.
	s := filter.Session{CreationTimeMillis: 9007199254740993, Properties: map[string]string{"big": "9007199254740993"}}
	for expr, want := range map[string]bool{
		"creationTimeMillis = 9007199254740993":                true,
		"creationTimeMillis = 9007199254740992":                false,
		"creationTimeMillis > 9007199254740992":                true,
		"gameServerSessionProperties.big = 9007199254740993":   true,
		"gameServerSessionProperties.big <> 9007199254740992":  true,
		"gameServerSessionProperties.big > 9007199254740992.0": true, // int vs float, still exact
		"creationTimeMillis < 9007199254740993.5":              true,
		"creationTimeMillis > 9007199254740992.5":              true,
		"creationTimeMillis < 1e300":                           true,
		"creationTimeMillis > -1e300":                          true,
	} {
		if got := mustParse(t, expr).Match(s); got != want {
			t.Errorf("%q = %v, want %v", expr, got, want)
		}
	}
}

func TestMatchNilProperties(t *testing.T) {
	e := mustParse(t, "gameServerSessionProperties.mode <> 'x' OR maximumSessions = 0")
	if !e.Match(filter.Session{}) {
		t.Error("a session without properties should still match the other branch")
	}
}
