package filter_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/croupier/croupier/internal/fleet/filter"
)

func sortedIDs(t *testing.T, expr string, sessions []filter.Session) []string {
	t.Helper()
	s, err := filter.ParseSort(expr)
	if err != nil {
		t.Fatalf("ParseSort(%q): %v", expr, err)
	}
	out := slices.Clone(sessions)
	slices.SortFunc(out, func(a, b filter.Session) int {
		switch {
		case s.Less(a, b):
			return -1
		case s.Less(b, a):
			return 1
		}
		return 0
	})
	ids := make([]string, len(out))
	for i, x := range out {
		ids[i] = x.ID
	}
	return ids
}

func TestSort(t *testing.T) {
	sessions := []filter.Session{
		{ID: "d", Name: "delta", MaxPlayers: 4, CreationTimeMillis: 300, PlayerCount: 1, HasAvailable: true,
			Properties: map[string]string{"level": "10", "mode": "b"}},
		{ID: "a", Name: "alpha", MaxPlayers: 8, CreationTimeMillis: 100, PlayerCount: 3,
			Properties: map[string]string{"level": "9", "mode": "a"}},
		{ID: "c", Name: "charlie", MaxPlayers: 8, CreationTimeMillis: 200, PlayerCount: 2, HasAvailable: true,
			Properties: map[string]string{"level": "x"}},
		{ID: "b", Name: "bravo", MaxPlayers: 2, CreationTimeMillis: 400, PlayerCount: 0},
	}
	tests := []struct {
		expr string
		want []string
	}{
		{"", []string{"a", "b", "c", "d"}}, // by id
		{"gameServerSessionName ASC", []string{"a", "b", "c", "d"}},
		{"gameServerSessionName DESC", []string{"d", "c", "b", "a"}},
		{"gameServerSessionId desc", []string{"d", "c", "b", "a"}},
		{"creationTimeMillis", []string{"a", "c", "d", "b"}}, // ASC by default
		{"creationTimeMillis DESC", []string{"b", "d", "c", "a"}},
		{"maximumSessions ASC", []string{"b", "d", "a", "c"}},  // a, c tie on 8: id breaks it
		{"maximumSessions DESC", []string{"a", "c", "d", "b"}}, // tie still ascending by id
		{"playerSessionCount desc", []string{"a", "c", "d", "b"}},
		{"hasAvailablePlayerSessions ASC", []string{"a", "b", "c", "d"}},
		{"hasAvailablePlayerSessions DESC", []string{"c", "d", "a", "b"}},
		// Numbers (numerically) before strings; missing values last either way.
		{"gameServerSessionProperties.level ASC", []string{"a", "d", "c", "b"}},
		{"gameServerSessionProperties.level DESC", []string{"c", "d", "a", "b"}},
		{"gameServerSessionProperties.mode DESC", []string{"d", "a", "b", "c"}},
	}
	for _, tc := range tests {
		if got := sortedIDs(t, tc.expr, sessions); !slices.Equal(got, tc.want) {
			t.Errorf("%q: %v, want %v", tc.expr, got, tc.want)
		}
	}
}

func TestSortString(t *testing.T) {
	for in, want := range map[string]string{
		"":                                      "",
		"  creationtimemillis  ":                "creationTimeMillis ASC",
		"creationTimeMillis desc":               "creationTimeMillis DESC",
		"GAMESERVERSESSIONPROPERTIES.Level Asc": "gameServerSessionProperties.Level ASC",
	} {
		s, err := filter.ParseSort(in)
		if err != nil {
			t.Fatalf("ParseSort(%q): %v", in, err)
		}
		if got := s.String(); got != want {
			t.Errorf("ParseSort(%q).String() = %q, want %q", in, got, want)
		}
	}
	var nilSort *filter.Sort
	if nilSort.String() != "" || !nilSort.Less(filter.Session{ID: "a"}, filter.Session{ID: "b"}) {
		t.Error("nil *Sort should print empty and order by id")
	}
}

func TestSortErrors(t *testing.T) {
	tests := []struct {
		expr  string
		pos   int
		token string
		msg   string
	}{
		{"creationTimeMillis UP", 19, "UP", "expected ASC or DESC"},
		{"creationTimeMillis DESC DESC", 24, "DESC", "expected ASC, DESC or the end"},
		{"creationTimeMillis (", 19, "(", "expected ASC, DESC or the end"},
		{"foo DESC", 0, "foo", "unknown attribute"},
		{"gameSessionId DESC", 0, "gameSessionId", "did you mean gameServerSessionId?"},
		{"> DESC", 0, ">", "expected an attribute name"},
		{"'x'", 0, "'x'", "expected an attribute name"},
		{"'x", 0, "'x", "unterminated string"},
		{"creationTimeMillis\xff", 18, "\xff", "not valid UTF-8"},
		{strings.Repeat(" ", filter.MaxLength+1), filter.MaxLength, "", "the limit is 4096"},
	}
	for _, tc := range tests {
		_, err := filter.ParseSort(tc.expr)
		var se *filter.SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("ParseSort(%q) = %v, want *SyntaxError", tc.expr, err)
			continue
		}
		if se.Pos != tc.pos || se.Token != tc.token || !strings.Contains(se.Msg, tc.msg) {
			t.Errorf("ParseSort(%q):\n got pos %d token %q msg %q\nwant pos %d token %q msg ~%q",
				tc.expr, se.Pos, se.Token, se.Msg, tc.pos, tc.token, tc.msg)
		}
	}
}
