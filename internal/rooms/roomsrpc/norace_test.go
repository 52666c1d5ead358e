//go:build !race

package roomsrpc_test

const raceEnabled = false
