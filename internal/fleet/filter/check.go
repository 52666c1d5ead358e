package filter

import "fmt"

// check type-checks a parsed tree, reporting the first problem in source
// order. The rules, and why:
//
//   - gameServerSessionName, gameServerSessionId: quoted strings, = and <>
//     only (as in GSE/GameLift; there is no useful order on ids).
//   - maximumSessions, creationTimeMillis, playerSessionCount: unquoted
//     numbers, every operator.
//   - hasAvailablePlayerSessions: true or false, = and <> only.
//   - gameServerSessionProperties.KEY: property values are strings, and the
//     literal decides how they are compared. An unquoted number compares
//     numerically with every operator (a value that is not a number never
//     matches). A quoted string compares as an exact, case-sensitive
//     string with = and <> only. So level > 10 is numeric while
//     version = '1.10' does not match '1.1' and code = '007' does not
//     match '7'. Writing the quotes is how the caller says "string".
func check(n node, src string) error {
	switch n := n.(type) {
	case *andNode:
		return checkTerms(n.terms, src)
	case *orNode:
		return checkTerms(n.terms, src)
	case *cmpNode:
		return checkComparison(n, src)
	}
	return nil
}

func checkTerms(terms []node, src string) error {
	for _, t := range terms {
		if err := check(t, src); err != nil {
			return err
		}
	}
	return nil
}

func checkComparison(n *cmpNode, src string) error {
	atValue := func(msg string) error {
		return &SyntaxError{Pos: n.valT.pos, Token: n.valT.text, Msg: msg, Expr: src}
	}
	atOp := func(msg string) error {
		return &SyntaxError{Pos: n.opT.pos, Token: n.opT.text, Msg: msg, Expr: src}
	}
	name := n.attr.String()
	switch n.attr.kind() {
	case kindNumber:
		if n.val.kind != kindNumber {
			return atValue(fmt.Sprintf("%s is a number; compare it with an unquoted number", name))
		}
	case kindBool:
		if n.val.kind != kindBool {
			return atValue(fmt.Sprintf("%s is a boolean; compare it with true or false", name))
		}
		if n.op.ordering() {
			return atOp(fmt.Sprintf("%s supports only = and <>", name))
		}
	default:
		if n.attr == attrProperty {
			return checkProperty(n, atValue, atOp)
		}
		if n.val.kind != kindString {
			return atValue(fmt.Sprintf("%s is a string; compare it with a quoted string", name))
		}
		if n.op.ordering() {
			return atOp(fmt.Sprintf("%s supports only = and <>", name))
		}
	}
	return nil
}

func checkProperty(n *cmpNode, atValue, atOp func(string) error) error {
	switch n.val.kind {
	case kindBool:
		return atValue("property values are strings; quote it ('true') or compare with a number")
	case kindString:
		if !n.op.ordering() {
			return nil
		}
		if _, ok := parseNumber(n.val.str); ok {
			return atValue("quoted values compare as strings, with = and <> only; drop the quotes to compare numbers")
		}
		return atOp("properties compare as strings with = and <> only; <, <=, > and >= need an unquoted number")
	}
	return nil
}
