package filter

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SyntaxError reports a filter or sort expression that does not parse or
// does not type-check. Pos is the byte offset of the offending token in
// Expr; Token is its source text ("" at the end of the expression).
type SyntaxError struct {
	Pos   int
	Token string
	Msg   string
	Expr  string // the whole expression, for the caret line
}

// Error renders the message followed by the expression and a caret line
// under the bad token, e.g.
//
//	filter: unexpected token ">>" at offset 16: expected a comparison operator (=, <>, <, <=, >, >=)
//	  maximumSessions >> 5
//	                  ^^
func (e *SyntaxError) Error() string {
	var b strings.Builder
	switch {
	case e.Token != "":
		fmt.Fprintf(&b, "filter: unexpected token %q at offset %d: %s", displayToken(e.Token), e.Pos, e.Msg)
	case e.Pos >= len(e.Expr):
		fmt.Fprintf(&b, "filter: unexpected end of expression at offset %d: %s", e.Pos, e.Msg)
	default:
		fmt.Fprintf(&b, "filter: at offset %d: %s", e.Pos, e.Msg)
	}
	if e.Expr != "" {
		line, caret := caretLines(e.Expr, e.Pos, len(e.Token))
		b.WriteString("\n  ")
		b.WriteString(line)
		b.WriteString("\n  ")
		b.WriteString(caret)
	}
	return b.String()
}

const (
	maxTokenDisplay = 40 // bytes of Token quoted in the message
	contextBefore   = 30 // bytes of Expr shown before Pos
	contextAfter    = 40 // bytes of Expr shown from Pos on
)

func displayToken(tok string) string {
	if len(tok) <= maxTokenDisplay {
		return tok
	}
	cut := maxTokenDisplay
	for cut > 0 && !utf8.RuneStart(tok[cut]) {
		cut--
	}
	return tok[:cut] + "…"
}

// caretLines returns the part of expr around pos and a line of carets under
// the tokLen bytes at pos. Control characters are shown as spaces and wide
// (CJK) characters count two columns so the carets line up in a terminal.
func caretLines(expr string, pos, tokLen int) (line, caret string) {
	pos = min(max(pos, 0), len(expr))
	start, end := max(pos-contextBefore, 0), min(pos+contextAfter, len(expr))
	for start > 0 && !utf8.RuneStart(expr[start]) {
		start--
	}
	for end < len(expr) && !utf8.RuneStart(expr[end]) {
		end++
	}
	var lb, cb strings.Builder
	if start > 0 {
		lb.WriteString("...")
		cb.WriteString("   ")
	}
	tokEnd := min(pos+max(tokLen, 1), end)
	carets := 0
	for i := start; i < end; {
		r, size := utf8.DecodeRuneInString(expr[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			r = '?'
		case r < 0x20 || r == 0x7f:
			r = ' '
		}
		lb.WriteRune(r)
		w := runeWidth(r)
		if i < pos {
			cb.WriteString(strings.Repeat(" ", w))
		} else if i < tokEnd {
			cb.WriteString(strings.Repeat("^", w))
			carets++
		}
		i += size
	}
	if end < len(expr) {
		lb.WriteString("...")
	}
	if carets == 0 { // pos is at the end of the expression
		cb.WriteString("^")
	}
	return lb.String(), cb.String()
}

func runeWidth(r rune) int {
	if unicode.In(r, unicode.Han, unicode.Hangul, unicode.Hiragana, unicode.Katakana) ||
		(r >= 0xFF01 && r <= 0xFF60) || (r >= 0x3000 && r <= 0x303F) {
		return 2
	}
	return 1
}
