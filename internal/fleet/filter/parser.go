package filter

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits on what Parse and ParseSort accept. Filters arrive from API callers,
// so their cost must be bounded before any work is done.
const (
	MaxLength = 4096 // bytes of expression
	MaxDepth  = 32   // nested parentheses
	MaxTerms  = 256  // comparisons in one expression
)

type limits struct {
	maxLength, maxDepth, maxTerms int
}

func defaultLimits() limits {
	return limits{maxLength: MaxLength, maxDepth: MaxDepth, maxTerms: MaxTerms}
}

// Expr is a parsed, type-checked filter expression. The zero Expr, and the
// one Parse returns for an empty expression, matches every session.
type Expr struct {
	root node
}

// Parse parses and type-checks a SearchGameServerSessions filter
// expression. Errors are *SyntaxError.
func Parse(expr string) (*Expr, error) {
	return parse(expr, defaultLimits())
}

func parse(expr string, lim limits) (*Expr, error) {
	if err := checkSource(expr, lim.maxLength); err != nil {
		return nil, err
	}
	p := &parser{lex: lexer{src: expr}, lim: lim}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tokEOF {
		return &Expr{}, nil
	}
	root, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tokEOF {
		if p.tok.kind == tokRParen {
			return nil, p.errAt(p.tok, "unbalanced ')': no '(' to close")
		}
		return nil, p.errAt(p.tok, "expected AND, OR or the end of the expression")
	}
	if err := check(root, expr); err != nil {
		return nil, err
	}
	return &Expr{root: root}, nil
}

// checkSource enforces the length limit and UTF-8 validity shared by filter
// and sort expressions.
func checkSource(expr string, maxLength int) error {
	if len(expr) > maxLength {
		return &SyntaxError{Pos: maxLength, Expr: expr,
			Msg: fmt.Sprintf("expression is %d bytes; the limit is %d", len(expr), maxLength)}
	}
	if !utf8.ValidString(expr) {
		for i := 0; i < len(expr); {
			r, size := utf8.DecodeRuneInString(expr[i:])
			if r == utf8.RuneError && size == 1 {
				return &SyntaxError{Pos: i, Token: expr[i : i+1], Expr: expr, Msg: "expression is not valid UTF-8"}
			}
			i += size
		}
	}
	return nil
}

// Match reports whether the session satisfies the expression.
func (e *Expr) Match(s Session) bool {
	if e == nil || e.root == nil {
		return true
	}
	return e.root.match(&s)
}

// String returns the canonical form: attribute names in their documented
// spelling, upper-case AND/OR, single spaces, only the parentheses the
// precedence needs. Parsing it yields an equal expression.
func (e *Expr) String() string {
	if e == nil || e.root == nil {
		return ""
	}
	var b strings.Builder
	e.root.write(&b, false)
	return b.String()
}

// parser is a recursive-descent parser over the grammar
//
//	expr       = or
//	or         = and { "OR" and }
//	and        = primary { "AND" primary }
//	primary    = "(" or ")" | comparison
//	comparison = ATTRIBUTE OP value
//	value      = STRING | NUMBER | "true" | "false"
//
// Recursion happens only at parentheses, so MaxDepth bounds the stack.
type parser struct {
	lex   lexer
	tok   token
	lim   limits
	depth int
	terms int
}

func (p *parser) advance() error {
	t, err := p.lex.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) errAt(t token, msg string) *SyntaxError {
	return &SyntaxError{Pos: t.pos, Token: t.text, Msg: msg, Expr: p.lex.src}
}

func (p *parser) isKeyword(word string) bool {
	return p.tok.kind == tokIdent && strings.EqualFold(p.tok.text, word)
}

func (p *parser) parseOr() (node, error) {
	return p.parseList("OR", p.parseAnd, func(terms []node) node { return &orNode{terms: terms} })
}

func (p *parser) parseAnd() (node, error) {
	return p.parseList("AND", p.parsePrimary, func(terms []node) node { return &andNode{terms: terms} })
}

// parseList parses operand {keyword operand}, flattening operands that are
// already lists of the same keyword (from parentheses) into this one.
func (p *parser) parseList(keyword string, operand func() (node, error), build func([]node) node) (node, error) {
	var terms []node
	for {
		n, err := operand()
		if err != nil {
			return nil, err
		}
		terms = appendFlat(terms, n, keyword)
		if !p.isKeyword(keyword) {
			break
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	return build(terms), nil
}

// appendFlat appends n to terms, or n's own terms when n is a list joined by
// the same keyword: (a OR b) OR c is a OR b OR c.
func appendFlat(terms []node, n node, keyword string) []node {
	if o, ok := n.(*orNode); ok && keyword == "OR" {
		return append(terms, o.terms...)
	}
	if a, ok := n.(*andNode); ok && keyword == "AND" {
		return append(terms, a.terms...)
	}
	return append(terms, n)
}

func (p *parser) parsePrimary() (node, error) {
	switch p.tok.kind {
	case tokLParen:
		open := p.tok
		if p.depth++; p.depth > p.lim.maxDepth {
			return nil, p.errAt(open, fmt.Sprintf("parentheses nested deeper than %d levels", p.lim.maxDepth))
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		n, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tokRParen {
			return nil, p.errAt(p.tok, fmt.Sprintf("expected ')' to close the '(' at offset %d", open.pos))
		}
		p.depth--
		return n, p.advance()
	case tokIdent:
		if !p.isKeyword("AND") && !p.isKeyword("OR") {
			return p.parseComparison()
		}
	}
	return nil, p.errAt(p.tok, "expected an attribute name or '('")
}

func (p *parser) parseComparison() (node, error) {
	n := &cmpNode{attrT: p.tok}
	if p.terms++; p.terms > p.lim.maxTerms {
		return nil, p.errAt(p.tok, fmt.Sprintf("more than %d comparisons", p.lim.maxTerms))
	}
	attr, key, msg := lookupAttribute(p.tok.text)
	if msg != "" {
		return nil, p.errAt(p.tok, msg)
	}
	n.attr, n.key = attr, key
	if err := p.advance(); err != nil {
		return nil, err
	}

	n.opT = p.tok
	o, msg := parseOp(p.tok)
	if msg != "" {
		return nil, p.errAt(p.tok, msg)
	}
	n.op = o
	if err := p.advance(); err != nil {
		return nil, err
	}

	n.valT = p.tok
	switch {
	case p.tok.kind == tokString:
		n.val = value{kind: kindString, str: p.tok.str}
	case p.tok.kind == tokNumber:
		num, _ := parseNumber(p.tok.text) // the lexer validated it
		n.val = value{kind: kindNumber, text: p.tok.text, num: num}
	case p.isKeyword("true"):
		n.val = value{kind: kindBool, b: true}
	case p.isKeyword("false"):
		n.val = value{kind: kindBool, b: false}
	default:
		return nil, p.errAt(p.tok, "expected a value: a quoted string, a number, true or false")
	}
	return n, p.advance()
}

func parseOp(t token) (op, string) {
	const expected = "expected a comparison operator (=, <>, <, <=, >, >=)"
	if t.kind != tokOp {
		return 0, expected
	}
	switch t.text {
	case "=":
		return opEq, ""
	case "<>":
		return opNe, ""
	case "<":
		return opLt, ""
	case "<=":
		return opLe, ""
	case ">":
		return opGt, ""
	case ">=":
		return opGe, ""
	case "!=":
		return 0, "write <> for not equal"
	case "==":
		return 0, "write = for equal"
	}
	return 0, expected
}
