package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/croupier/croupier/internal/secfile"
)

// The bus token authenticates everything that reaches an embedded NATS
// server over the network: clients on Listen (token authorization) and
// routes (user routeUser, the token as password). Whoever holds it can
// publish to croupier.call.<node>, which runs invokes and fleet commands
// without RBAC, so it lives in a 0600 file and is never logged.
const (
	routeUser      = "croupier"
	minTokenBytes  = 16
	maxTokenBytes  = 512
	tokenFileName  = "nats.token"
	generatedBytes = 32
)

// ReadToken reads the bus token from path: it must exist, be private to
// its owner (0600) and hold 16 to 512 printable characters without spaces.
func ReadToken(path string) (string, error) {
	if mode, bad := secfile.Exposed(path); bad {
		return "", fmt.Errorf("cluster: NATS token file %s has mode %04o: other users could join the bus; run chmod 600 %s", path, mode, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cluster: NATS token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < minTokenBytes || len(tok) > maxTokenBytes {
		return "", fmt.Errorf("cluster: NATS token file %s holds %d bytes; use %d to %d (e.g. `openssl rand -hex 32 > %s`)", path, len(tok), minTokenBytes, maxTokenBytes, path)
	}
	for _, r := range tok {
		if r <= ' ' || r > '~' {
			return "", fmt.Errorf("cluster: NATS token file %s may hold only printable ASCII without spaces", path)
		}
	}
	return tok, nil
}

// EnsureToken reads the token at path, first writing a random one there
// (0600) when the file does not exist.
func EnsureToken(path string) (string, error) {
	b := make([]byte, generatedBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("cluster: NATS token file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, secfile.Mode)
	switch {
	case errors.Is(err, fs.ErrExist):
	case err != nil:
		return "", fmt.Errorf("cluster: NATS token file: %w", err)
	default:
		_, werr := f.WriteString(hex.EncodeToString(b) + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			_ = os.Remove(path)
			return "", fmt.Errorf("cluster: NATS token file: %w", werr)
		}
	}
	return ReadToken(path)
}

// resolveToken finds the token cfg calls for: cfg.Token, else TokenFile
// (which must exist), else — for an embedded server that listens —
// DataDir/nats.token, generated on first use. "" means no authentication:
// an embedded server reachable only in-process, or an external NATS that
// authenticates by credentials or TLS.
func resolveToken(cfg Config, embedded, listens bool) (string, error) {
	switch {
	case cfg.Token != "":
		return cfg.Token, nil
	case cfg.TokenFile != "":
		return ReadToken(cfg.TokenFile)
	case !embedded || !listens:
		return "", nil
	case cfg.DataDir == "":
		return "", errors.New("cluster: the embedded NATS listens (client address or routes) but has no token: set --nats-token-file (the same 0600 file on every node)")
	}
	return EnsureToken(filepath.Join(cfg.DataDir, tokenFileName))
}
