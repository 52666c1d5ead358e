package filter

import (
	"fmt"
	"strings"
)

// op is a comparison operator.
type op int

const (
	opEq op = iota + 1 // =
	opNe               // <>
	opLt               // <
	opLe               // <=
	opGt               // >
	opGe               // >=
)

func (o op) String() string {
	switch o {
	case opEq:
		return "="
	case opNe:
		return "<>"
	case opLt:
		return "<"
	case opLe:
		return "<="
	case opGt:
		return ">"
	case opGe:
		return ">="
	}
	return "?"
}

func (o op) ordering() bool { return o == opLt || o == opLe || o == opGt || o == opGe }

// holds reports whether the operator accepts a comparison result c
// (negative, zero or positive).
func (o op) holds(c int) bool {
	switch o {
	case opEq:
		return c == 0
	case opNe:
		return c != 0
	case opLt:
		return c < 0
	case opLe:
		return c <= 0
	case opGt:
		return c > 0
	case opGe:
		return c >= 0
	}
	return false
}

// value is a literal on the right of a comparison.
type value struct {
	kind valueKind
	str  string // kindString: decoded text
	text string // kindNumber: source text, kept so String() round-trips
	num  number // kindNumber
	b    bool   // kindBool
}

// node is an expression tree node. The parser keeps trees normalised: an
// and/or node has at least two terms and never a direct child of its own
// kind, so equal expressions (modulo redundant parentheses) have equal trees.
type node interface {
	match(s *Session) bool
	// write appends the canonical source text; inAnd asks an OR to
	// parenthesise itself because AND binds tighter.
	write(b *strings.Builder, inAnd bool)
}

type andNode struct{ terms []node }

type orNode struct{ terms []node }

type cmpNode struct {
	attr  attribute
	key   string // attrProperty only
	op    op
	val   value
	attrT token // source tokens, for type errors
	opT   token
	valT  token
}

func (n *andNode) write(b *strings.Builder, _ bool) {
	for i, t := range n.terms {
		if i > 0 {
			b.WriteString(" AND ")
		}
		t.write(b, true)
	}
}

func (n *orNode) write(b *strings.Builder, inAnd bool) {
	if inAnd {
		b.WriteByte('(')
	}
	for i, t := range n.terms {
		if i > 0 {
			b.WriteString(" OR ")
		}
		t.write(b, false)
	}
	if inAnd {
		b.WriteByte(')')
	}
}

func (n *cmpNode) write(b *strings.Builder, _ bool) {
	if n.attr == attrProperty {
		b.WriteString(propertyPrefix)
		b.WriteString(n.key)
	} else {
		b.WriteString(n.attr.String())
	}
	b.WriteByte(' ')
	b.WriteString(n.op.String())
	b.WriteByte(' ')
	switch n.val.kind {
	case kindString:
		writeQuoted(b, n.val.str)
	case kindNumber:
		b.WriteString(n.val.text)
	case kindBool:
		fmt.Fprint(b, n.val.b)
	}
}

// writeQuoted quotes s with whichever quote needs fewer escapes, so the
// canonical form is never longer than any way of writing s in the source.
func writeQuoted(b *strings.Builder, s string) {
	quote := byte('\'')
	if strings.Count(s, "'") > strings.Count(s, `"`) {
		quote = '"'
	}
	b.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == '\\' || r == rune(quote):
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(quote)
}

// equalNodes compares trees structurally, ignoring source positions.
func equalNodes(a, b node) bool {
	switch a := a.(type) {
	case nil:
		return b == nil
	case *andNode:
		b, ok := b.(*andNode)
		return ok && equalTerms(a.terms, b.terms)
	case *orNode:
		b, ok := b.(*orNode)
		return ok && equalTerms(a.terms, b.terms)
	case *cmpNode:
		b, ok := b.(*cmpNode)
		return ok && a.attr == b.attr && a.key == b.key && a.op == b.op &&
			a.val.kind == b.val.kind && a.val.str == b.val.str && a.val.text == b.val.text && a.val.b == b.val.b
	}
	return false
}

func equalTerms(a, b []node) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !equalNodes(a[i], b[i]) {
			return false
		}
	}
	return true
}
