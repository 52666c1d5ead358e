// Package routing holds the consistent-hash ring that "hash" mode routes
// by. It is pure logic with no I/O. The rest of routing — the per-function
// snapshots, in-flight counters and the lb choice — lives with the data it
// reads: registry.Route and invoke's pick (see docs/routing.md).
package routing
