// Package filter implements the filter and sort expressions of
// SearchGameServerSessions, in the grammar of Tencent GSE (and AWS GameLift,
// which GSE mirrors):
//
//	hasAvailablePlayerSessions = true AND (gameServerSessionProperties.mode = 'brawl' OR maximumSessions >= 10)
//	creationTimeMillis DESC
//
// Attributes: gameServerSessionName, gameServerSessionId, maximumSessions,
// creationTimeMillis, playerSessionCount, hasAvailablePlayerSessions and
// gameServerSessionProperties.KEY. Operators: = <> < <= > >=. AND binds
// tighter than OR; parentheses group. Keywords (AND, OR, true, false, ASC,
// DESC) and attribute names are case-insensitive; property keys and string
// values are not. Strings take single or double quotes with the escapes
// \\ \' \" \n \r \t \uXXXX. See check.go for which literal goes with which
// attribute and how property values compare.
//
// Parse builds a normalised syntax tree, type-checks it and returns an Expr
// whose Match evaluates it against a Session. Every error is a
// *SyntaxError carrying the byte offset of the bad token. Input is bounded by
// MaxLength, MaxDepth and MaxTerms, so hostile filters cost little.
package filter
