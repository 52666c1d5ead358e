// Package routing chooses which game-server instance serves a call: the
// least-loaded one ("lb" mode) or a stable one for a key ("hash" mode), and
// tracks calls in flight per instance. It is pure logic with no I/O.
package routing
