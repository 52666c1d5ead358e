package filter

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

type tokenKind int

const (
	tokEOF tokenKind = iota
	tokIdent
	tokString
	tokNumber
	tokOp // a run of < > = ! characters; the parser decides if it is valid
	tokLParen
	tokRParen
)

type token struct {
	kind tokenKind
	pos  int    // byte offset in the source
	text string // source text
	str  string // decoded value of a tokString
}

// lexer splits an expression into tokens on demand. The source must be
// valid UTF-8 (Parse checks that first).
type lexer struct {
	src string
	pos int
}

func (l *lexer) errAt(pos int, tok, msg string) *SyntaxError {
	return &SyntaxError{Pos: pos, Token: tok, Msg: msg, Expr: l.src}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isOpChar(c byte) bool { return c == '<' || c == '>' || c == '=' || c == '!' }

func isIdentStart(r rune) bool { return r == '_' || unicode.IsLetter(r) }

// isIdentPart admits '.' (gameServerSessionProperties.KEY) and '-' (keys
// such as game-mode); the grammar has no arithmetic they could clash with.
func isIdentPart(r rune) bool {
	return r == '_' || r == '.' || r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r)
}

func (l *lexer) next() (token, error) {
	for l.pos < len(l.src) && isSpace(l.src[l.pos]) {
		l.pos++
	}
	start := l.pos
	if start == len(l.src) {
		return token{kind: tokEOF, pos: start}, nil
	}
	c := l.src[start]
	switch {
	case c == '(':
		l.pos++
		return token{kind: tokLParen, pos: start, text: "("}, nil
	case c == ')':
		l.pos++
		return token{kind: tokRParen, pos: start, text: ")"}, nil
	case c == '\'' || c == '"':
		return l.lexString()
	case isOpChar(c):
		for l.pos < len(l.src) && isOpChar(l.src[l.pos]) {
			l.pos++
		}
		return token{kind: tokOp, pos: start, text: l.src[start:l.pos]}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return l.lexNumber()
	}
	r, size := utf8.DecodeRuneInString(l.src[start:])
	if !isIdentStart(r) {
		return token{}, l.errAt(start, l.src[start:start+size], "unexpected character")
	}
	l.pos += size
	for l.pos < len(l.src) {
		r, size := utf8.DecodeRuneInString(l.src[l.pos:])
		if !isIdentPart(r) {
			break
		}
		l.pos += size
	}
	return token{kind: tokIdent, pos: start, text: l.src[start:l.pos]}, nil
}

func (l *lexer) lexNumber() (token, error) {
	start := l.pos
	end := scanNumber(l.src, start)
	// A number must end at a delimiter: "10abc", "1.2.3" and "1e" are typos,
	// not a number followed by something else.
	bad := end == start
	for end < len(l.src) {
		r, size := utf8.DecodeRuneInString(l.src[end:])
		if !isIdentPart(r) {
			break
		}
		bad = true
		end += size
	}
	text := l.src[start:end]
	l.pos = end
	if bad {
		return token{}, l.errAt(start, text, "invalid number")
	}
	if _, ok := parseNumber(text); !ok {
		return token{}, l.errAt(start, text, "number out of range")
	}
	return token{kind: tokNumber, pos: start, text: text}, nil
}

// lexString reads a quoted string. Escapes: \\ \' \" \n \r \t \uXXXX. Raw
// control characters are refused so that an expression, and its String(),
// always fits on one line.
func (l *lexer) lexString() (token, error) {
	start := l.pos
	quote := l.src[start]
	var b strings.Builder
	i := start + 1
	for {
		if i >= len(l.src) {
			return token{}, l.errAt(start, l.src[start:], "unterminated string; close it with "+string(quote))
		}
		c := l.src[i]
		switch {
		case c == quote:
			l.pos = i + 1
			return token{kind: tokString, pos: start, text: l.src[start:l.pos], str: b.String()}, nil
		case c < 0x20 || c == 0x7f:
			return token{}, l.errAt(i, l.src[i:i+1], `control character in string; write it as an escape such as \n or \u0001`)
		case c == '\\':
			r, n, err := l.unescape(i)
			if err != nil {
				return token{}, err
			}
			b.WriteRune(r)
			i += n
		default:
			b.WriteByte(c)
			i++
		}
	}
}

// unescape decodes the escape sequence at src[i] (a backslash) and returns
// the rune and the length of the sequence.
func (l *lexer) unescape(i int) (rune, int, error) {
	const help = `unknown escape; use \\, \', \", \n, \r, \t or \uXXXX`
	if i+1 >= len(l.src) {
		return 0, 0, l.errAt(i, `\`, help)
	}
	switch l.src[i+1] {
	case '\\', '\'', '"':
		return rune(l.src[i+1]), 2, nil
	case 'n':
		return '\n', 2, nil
	case 'r':
		return '\r', 2, nil
	case 't':
		return '\t', 2, nil
	case 'u':
		end := min(i+6, len(l.src))
		v, err := strconv.ParseUint(l.src[i+2:end], 16, 32)
		if err != nil || end-i != 6 {
			return 0, 0, l.errAt(i, l.src[i:end], `\u needs exactly four hex digits, e.g. \u00e9`)
		}
		r := rune(v)
		if !utf8.ValidRune(r) {
			return 0, 0, l.errAt(i, l.src[i:end], `\u escape is a UTF-16 surrogate, not a character`)
		}
		return r, 6, nil
	}
	_, size := utf8.DecodeRuneInString(l.src[i+1:])
	return 0, 0, l.errAt(i, l.src[i:i+1+size], help)
}
