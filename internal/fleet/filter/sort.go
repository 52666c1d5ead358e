package filter

import (
	"cmp"
	"strings"
)

// Sort is a parsed sort expression: ATTRIBUTE [ASC|DESC].
//
// Less is a strict weak ordering suitable for slices.SortFunc/sort.Slice.
// Ties, and the empty sort expression, fall back to gameServerSessionId
// ascending so that paginated results have a stable order. Sessions missing
// the sort property come last in both directions (as in GameLift).
// Property values sort numbers first (numerically), then other strings
// (byte-wise).
type Sort struct {
	attr attribute // 0: no sort expression
	key  string
	desc bool
}

// ParseSort parses a sort expression such as "creationTimeMillis DESC".
// ASC is the default; the keywords are case-insensitive. The empty
// expression orders by gameServerSessionId. Errors are *SyntaxError.
func ParseSort(expr string) (*Sort, error) {
	if err := checkSource(expr, MaxLength); err != nil {
		return nil, err
	}
	lex := lexer{src: expr}
	tok, err := lex.next()
	if err != nil {
		return nil, err
	}
	if tok.kind == tokEOF {
		return &Sort{}, nil
	}
	errAt := func(t token, msg string) error {
		return &SyntaxError{Pos: t.pos, Token: t.text, Msg: msg, Expr: expr}
	}
	if tok.kind != tokIdent {
		return nil, errAt(tok, "expected an attribute name")
	}
	attr, key, msg := lookupAttribute(tok.text)
	if msg != "" {
		return nil, errAt(tok, msg)
	}
	s := &Sort{attr: attr, key: key}
	if tok, err = lex.next(); err != nil {
		return nil, err
	}
	if tok.kind == tokIdent {
		switch {
		case strings.EqualFold(tok.text, "ASC"):
		case strings.EqualFold(tok.text, "DESC"):
			s.desc = true
		default:
			return nil, errAt(tok, "expected ASC or DESC")
		}
		if tok, err = lex.next(); err != nil {
			return nil, err
		}
	}
	if tok.kind != tokEOF {
		return nil, errAt(tok, "expected ASC, DESC or the end of the expression")
	}
	return s, nil
}

// String returns the canonical form, e.g. "creationTimeMillis DESC", or ""
// for the empty sort.
func (s *Sort) String() string {
	if s == nil || s.attr == 0 {
		return ""
	}
	name := s.attr.String()
	if s.attr == attrProperty {
		name = propertyPrefix + s.key
	}
	if s.desc {
		return name + " DESC"
	}
	return name + " ASC"
}

// Less reports whether a sorts before b.
func (s *Sort) Less(a, b Session) bool {
	if s != nil && s.attr != 0 {
		c, decided := s.compare(&a, &b)
		if decided {
			return c < 0
		}
		if c != 0 {
			if s.desc {
				c = -c
			}
			return c < 0
		}
	}
	return a.ID < b.ID
}

// compare orders a and b by the sort attribute in ascending order. decided
// is true when the result must not be reversed for DESC (missing values).
func (s *Sort) compare(a, b *Session) (c int, decided bool) {
	switch s.attr {
	case attrName:
		return strings.Compare(a.Name, b.Name), false
	case attrID:
		return strings.Compare(a.ID, b.ID), false
	case attrMaxSessions:
		return cmp.Compare(a.MaxPlayers, b.MaxPlayers), false
	case attrCreationTime:
		return cmp.Compare(a.CreationTimeMillis, b.CreationTimeMillis), false
	case attrPlayerCount:
		return cmp.Compare(a.PlayerCount, b.PlayerCount), false
	case attrHasAvailable:
		return cmp.Compare(boolInt(a.HasAvailable), boolInt(b.HasAvailable)), false
	case attrProperty:
		va, okA := a.Properties[s.key]
		vb, okB := b.Properties[s.key]
		switch {
		case !okA && !okB:
			return 0, false
		case !okA:
			return 1, true
		case !okB:
			return -1, true
		}
		return comparePropertyValues(va, vb), false
	}
	return 0, false
}

func comparePropertyValues(a, b string) int {
	na, numA := parseNumber(a)
	nb, numB := parseNumber(b)
	switch {
	case numA && numB:
		return na.compare(nb)
	case numA:
		return -1
	case numB:
		return 1
	}
	return strings.Compare(a, b)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
