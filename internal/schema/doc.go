// Package schema compiles the JSON Schemas in function descriptors and
// validates invocation payloads against them before anything is sent to a
// game server.
//
// Schemas default to draft 2020-12 (a "$schema" keyword may select another
// draft whose meta-schema is built in). Schemas are self-contained: "$ref"
// may only point inside the same document, because the server must never
// fetch URLs or read files named by a game server. "format" is asserted
// (an operator who declares "format": "email" expects it to be checked), and
// "pattern" uses Go's RE2 engine, so a hostile pattern cannot cause
// catastrophic backtracking.
package schema
