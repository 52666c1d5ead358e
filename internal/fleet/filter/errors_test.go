package filter_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/croupier/croupier/internal/fleet/filter"
)

func TestErrors(t *testing.T) {
	tests := []struct {
		expr  string
		pos   int
		token string
		msg   string // substring of Msg
	}{
		{"maximumSessions >> 5", 16, ">>", "expected a comparison operator"},
		{"maximumSessions", 15, "", "expected a comparison operator"},
		{"maximumSessions 5", 16, "5", "expected a comparison operator"},
		{"maximumSessions != 5", 16, "!=", "write <> for not equal"},
		{"maximumSessions == 5", 16, "==", "write = for equal"},
		{"maximumSessions = ", 18, "", "expected a value"},
		{"maximumSessions = >=", 18, ">=", "expected a value"},
		{"maximumSessions = maximumSessions", 18, "maximumSessions", "expected a value"},
		{"maximumSessions = (", 18, "(", "expected a value"},
		{"maximumSessions = 10abc", 18, "10abc", "invalid number"},
		{"maximumSessions = 1.2.3", 18, "1.2.3", "invalid number"},
		{"maximumSessions = - 5", 18, "-", "invalid number"},
		{"maximumSessions = 1e", 18, "1e", "invalid number"},
		{"maximumSessions = 1e999", 18, "1e999", "number out of range"},
		{"maximumSessions = #", 18, "#", "unexpected character"},
		{"maximumSessions = '5'", 18, "'5'", "maximumSessions is a number"},
		{"creationTimeMillis > true", 21, "true", "creationTimeMillis is a number"},
		{"gameServerSessionName = 5", 24, "5", "gameServerSessionName is a string"},
		{"gameServerSessionId = false", 22, "false", "gameServerSessionId is a string"},
		{"gameServerSessionName > 'a'", 22, ">", "supports only = and <>"},
		{"hasAvailablePlayerSessions = 1", 29, "1", "is a boolean"},
		{"hasAvailablePlayerSessions = 'true'", 29, "'true'", "is a boolean"},
		{"hasAvailablePlayerSessions < true", 27, "<", "supports only = and <>"},
		{"gameServerSessionProperties.mode > 'abc'", 33, ">", "need an unquoted number"},
		{"gameServerSessionProperties.level > '10'", 36, "'10'", "drop the quotes"},
		{"gameServerSessionProperties.ranked = true", 37, "true", "property values are strings"},
		{"gameServerSessionProperties. = 'x'", 0, "gameServerSessionProperties.", "missing property key"},
		{"gameServerSessionProperties = 'x'", 0, "gameServerSessionProperties", "name the property"},
		{"gameSessionName = 'x'", 0, "gameSessionName", "did you mean gameServerSessionName?"},
		{"gameSessionProperties.mode = 'x'", 0, "gameSessionProperties.mode", "did you mean gameServerSessionProperties.mode?"},
		{"foo = 1", 0, "foo", "unknown attribute; use one of gameServerSessionName,"},
		{"maximumSessions = 1 AND", 23, "", "expected an attribute name or '('"},
		{"maximumSessions = 1 AND OR maximumSessions = 2", 24, "OR", "expected an attribute name or '('"},
		{"AND maximumSessions = 1", 0, "AND", "expected an attribute name or '('"},
		{"()", 1, ")", "expected an attribute name or '('"},
		{"= 1", 0, "=", "expected an attribute name or '('"},
		{"(maximumSessions = 1", 20, "", "expected ')' to close the '(' at offset 0"},
		{"((maximumSessions = 1) OR (maximumSessions = 2)", 47, "", "expected ')' to close the '(' at offset 0"},
		{"maximumSessions = 1)", 19, ")", "unbalanced ')'"},
		{"maximumSessions = 1 maximumSessions = 2", 20, "maximumSessions", "expected AND, OR or the end"},
		{"maximumSessions = 1 (", 20, "(", "expected AND, OR or the end"},
		{"gameServerSessionName = 'abc", 24, "'abc", "unterminated string; close it with '"},
		{`gameServerSessionName = "abc`, 24, `"abc`, `unterminated string; close it with "`},
		{`gameServerSessionName = 'abc\'`, 24, `'abc\'`, "unterminated string"},
		{`gameServerSessionName = 'a\qb'`, 26, `\q`, "unknown escape"},
		{`gameServerSessionName = 'a\`, 26, `\`, "unknown escape"},
		{`gameServerSessionName = '\u12'`, 25, `\u12'`, "four hex digits"},
		{`gameServerSessionName = '\u+123'`, 25, `\u+123`, "four hex digits"},
		{`gameServerSessionName = '\ud800'`, 25, `\ud800`, "surrogate"},
		{"gameServerSessionName = 'a\tb'", 26, "\t", "control character in string"},
		{"gameServerSessionName = 'a\nb'", 26, "\n", "control character in string"},
		{"gameServerSessionName = '\xff'", 25, "\xff", "not valid UTF-8"},
	}
	for _, tc := range tests {
		_, err := filter.Parse(tc.expr)
		var se *filter.SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) = %v, want *SyntaxError", tc.expr, err)
			continue
		}
		if se.Pos != tc.pos || se.Token != tc.token || !strings.Contains(se.Msg, tc.msg) {
			t.Errorf("Parse(%q):\n got pos %d token %q msg %q\nwant pos %d token %q msg ~%q",
				tc.expr, se.Pos, se.Token, se.Msg, tc.pos, tc.token, tc.msg)
		}
		if se.Expr != tc.expr {
			t.Errorf("Parse(%q): Expr = %q", tc.expr, se.Expr)
		}
	}
}

func TestErrorRendering(t *testing.T) {
	tests := []struct{ expr, want string }{
		{
			"maximumSessions >> 5",
			"filter: unexpected token \">>\" at offset 16: expected a comparison operator (=, <>, <, <=, >, >=)\n" +
				"  maximumSessions >> 5\n" +
				"                  ^^",
		},
		{
			"maximumSessions = 1 AND",
			"filter: unexpected end of expression at offset 23: expected an attribute name or '('\n" +
				"  maximumSessions = 1 AND\n" +
				"                         ^",
		},
		{
			// Wide characters take two columns; the caret still lines up.
			"gameServerSessionProperties.地图 = '长城' AND x",
			"filter: unexpected token \"x\" at offset 50: unknown attribute; use one of gameServerSessionName, gameServerSessionId, maximumSessions, creationTimeMillis, playerSessionCount, hasAvailablePlayerSessions, gameServerSessionProperties.KEY\n" +
				"  ...perties.地图 = '长城' AND x\n" +
				"  " + strings.Repeat(" ", 3+len("perties.")+4+len(" = '")+4+len("' AND ")) + "^",
		},
		{
			// Long expressions are cut around the error.
			"playerSessionCount = 1 OR playerSessionCount = 2 OR playerSessionCount = 3 OR playerSessionCount = 4 OR playerSessionCount = x OR playerSessionCount = 6",
			"filter: unexpected token \"x\" at offset 125: expected a value: a quoted string, a number, true or false\n" +
				"  ...t = 4 OR playerSessionCount = x OR playerSessionCount = 6\n" +
				"  " + strings.Repeat(" ", len("...t = 4 OR playerSessionCount = ")) + "^",
		},
		{
			// Control characters show as spaces so the caret line stays aligned.
			"gameServerSessionName\t= 'a\tb'",
			"filter: unexpected token \"\\t\" at offset 26: control character in string; write it as an escape such as \\n or \\u0001\n" +
				"  gameServerSessionName = 'a b'\n" +
				"                            ^",
		},
	}
	for _, tc := range tests {
		_, err := filter.Parse(tc.expr)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", tc.expr)
			continue
		}
		if got := err.Error(); got != tc.want {
			t.Errorf("Parse(%q).Error() =\n%s\nwant\n%s", tc.expr, got, tc.want)
		}
	}
}

func TestLimits(t *testing.T) {
	cmp := "playerSessionCount = 1"
	t.Run("length", func(t *testing.T) {
		ok := cmp + strings.Repeat(" ", filter.MaxLength-len(cmp))
		mustParse(t, ok)
		_, err := filter.Parse(ok + " ")
		var se *filter.SyntaxError
		if !errors.As(err, &se) || se.Pos != filter.MaxLength || !strings.Contains(se.Msg, "4097 bytes; the limit is 4096") {
			t.Fatalf("over-long expression: %v", err)
		}
		if !strings.HasPrefix(err.Error(), "filter: at offset 4096: expression is 4097 bytes") {
			t.Fatalf("rendering: %v", err)
		}
	})
	t.Run("depth", func(t *testing.T) {
		nest := func(n int) string { return strings.Repeat("(", n) + cmp + strings.Repeat(")", n) }
		mustParse(t, nest(filter.MaxDepth))
		_, err := filter.Parse(nest(filter.MaxDepth + 1))
		var se *filter.SyntaxError
		if !errors.As(err, &se) || se.Pos != filter.MaxDepth || se.Token != "(" || !strings.Contains(se.Msg, "deeper than 32") {
			t.Fatalf("too deep: %v", err)
		}
		// Far deeper than the limit is still an error, not a stack overflow.
		if _, err := filter.Parse(strings.Repeat("(", filter.MaxLength)); err == nil {
			t.Fatal("4096 open parentheses parsed")
		}
	})
}
