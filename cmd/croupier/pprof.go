//go:build pprof

package main

import (
	"net"
	"net/http"
	_ "net/http/pprof" // the profiling endpoints, in this build only
	"os"
	"runtime"
)

// A binary built with -tags pprof serves net/http/pprof on
// CROUPIER_PPROF_ADDR (bench/scale -profile sets it); release builds have no
// such listener. The listener lives as long as the process.
func init() {
	addr := os.Getenv("CROUPIER_PPROF_ADDR")
	if addr == "" {
		return
	}
	runtime.SetMutexProfileFraction(5)
	runtime.SetBlockProfileRate(100_000) // one sample per 100 µs blocked
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		panic(err)
	}
	go func() { _ = http.Serve(ln, nil) }()
}
