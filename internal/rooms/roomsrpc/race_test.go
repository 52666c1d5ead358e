//go:build race

package roomsrpc_test

// raceEnabled: the race detector slows message delivery about tenfold.
const raceEnabled = true
