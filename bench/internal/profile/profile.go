// Package profile saves a server's pprof endpoints for the benchmark
// harnesses (binaries built with -tags pprof).
package profile

import (
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
)

// Fetch saves http://addr/debug/pprof/<path> into file, creating its
// directory.
func Fetch(addr, path, file string) error {
	resp, err := http.Get("http://" + addr + "/debug/pprof/" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
