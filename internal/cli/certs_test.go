package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/tlsconf"
)

// runCLI executes the root command with args and returns its output.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRoot(strings.NewReader(""), &out, &errb)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = root.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

// tlsHandshake checks that a server and a client built from the files can
// complete a mutual TLS handshake.
func tlsHandshake(t *testing.T, server, client *tls.Config) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srvErr := make(chan error, 1)
	go func() {
		srvErr <- tls.Server(a, server).HandshakeContext(ctx)
		a.Close()
	}()
	cerr := tls.Client(b, client).HandshakeContext(ctx)
	b.Close()
	if serr := <-srvErr; serr != nil {
		return serr
	}
	return cerr
}

func TestCertsInitCommand(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "certs")
	out, _, err := runCLI(t, "certs", "init", "--dir", dir, "--host", "croupier.internal", "--game", "poker", "--env", "prod")
	if err != nil {
		t.Fatalf("certs init: %v", err)
	}
	b := certs.NewBundle(dir)
	for _, f := range b.Files() {
		if !strings.Contains(out, "wrote "+f+"\n") {
			t.Errorf("output does not report %s:\n%s", f, out)
		}
	}

	scfg, err := tlsconf.ServerConfig(b.CACert, b.ServerCert, b.ServerKey, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, serverName := range []string{"localhost", "croupier.internal"} {
		ccfg, err := tlsconf.ClientConfig(b.CACert, b.AgentCert, b.AgentKey, serverName)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlsHandshake(t, scfg, ccfg); err != nil {
			t.Errorf("handshake as %s with the generated files: %v", serverName, err)
		}
	}

	_, _, err = runCLI(t, "certs", "init", "--dir", dir)
	if err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("second init: %v, want a refusal mentioning --force", err)
	}
	if _, _, err := runCLI(t, "certs", "init", "--dir", dir, "--force"); err != nil {
		t.Errorf("init --force: %v", err)
	}
}

func TestCertsIssueAndShowCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, _, err := runCLI(t, "certs", "init", "--dir", dir); err != nil {
		t.Fatal(err)
	}

	out, _, err := runCLI(t, "certs", "issue", "agent", "--ca-dir", dir, "--name", "host-17", "--game", "poker", "--env", "prod")
	if err != nil {
		t.Fatalf("issue agent: %v", err)
	}
	agentCert := filepath.Join(dir, "agent-host-17.crt")
	if !strings.Contains(out, "wrote "+agentCert) || !strings.Contains(out, "croupier://agent/host-17?game=poker&env=prod") {
		t.Errorf("issue agent output:\n%s", out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "agent-host-17.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("agent key: %v %v", fi, err)
	}
	if _, _, err := runCLI(t, "certs", "issue", "agent", "--ca-dir", dir, "--name", "host-17", "--game", "poker", "--env", "prod"); err == nil {
		t.Error("issuing over existing files without --force succeeded")
	}

	out, _, err = runCLI(t, "certs", "show", agentCert)
	if err != nil {
		t.Fatalf("show: %v", err)
	}
	for _, want := range []string{"CN=host-17", "kind:", "agent", "game=poker env=prod", "client auth", "expires in 36"} {
		if !strings.Contains(out, want) {
			t.Errorf("show output lacks %q:\n%s", want, out)
		}
	}

	prefix := filepath.Join(t.TempDir(), "srv")
	_, _, err = runCLI(t, "certs", "issue", "server", "--ca-dir", dir, "--host", "game.example.com", "--host", "10.0.0.5", "--out", prefix)
	if err != nil {
		t.Fatalf("issue server: %v", err)
	}
	out, _, err = runCLI(t, "certs", "show", prefix+".crt")
	if err != nil || !strings.Contains(out, "game.example.com") || !strings.Contains(out, "10.0.0.5") || !strings.Contains(out, "server auth") {
		t.Errorf("show server: %v\n%s", err, out)
	}

	if _, _, err := runCLI(t, "certs", "issue", "client", "--ca-dir", dir, "--name", "alice"); err != nil {
		t.Errorf("issue client: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "client-alice.crt")); err != nil {
		t.Errorf("client cert not written at the default path: %v", err)
	}

	if _, _, err := runCLI(t, "certs", "issue", "business", "--ca-dir", dir, "--name", "chat-1"); err != nil {
		t.Errorf("issue business: %v", err)
	}
	out, _, err = runCLI(t, "certs", "show", filepath.Join(dir, "business-chat-1.crt"))
	if err != nil || !strings.Contains(out, "croupier://business/chat-1") || !strings.Contains(out, "client auth") {
		t.Errorf("show business: %v\n%s", err, out)
	}

	out, _, err = runCLI(t, "certs", "show", filepath.Join(dir, certs.CACertFile))
	if err != nil || !strings.Contains(out, "certificate authority") {
		t.Errorf("show CA: %v\n%s", err, out)
	}
}

func TestCertsIssueRejectsBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, _, err := runCLI(t, "certs", "init", "--dir", dir); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"certs", "issue", "agent", "--ca-dir", dir, "--name", "a", "--game", "g"}, `"env" not set`},
		{[]string{"certs", "issue", "server", "--ca-dir", dir}, `"host" not set`},
		{[]string{"certs", "issue", "agent", "--ca-dir", filepath.Join(dir, "nope"), "--name", "a", "--game", "g", "--env", "e"}, "croupier certs init"},
		{[]string{"certs", "issue", "client", "--ca-dir", dir, "--name", "bad name"}, "invalid"},
		{[]string{"certs", "issue", "business", "--ca-dir", dir}, `"name" not set`},
		{[]string{"certs", "show", filepath.Join(dir, certs.CAKeyFile)}, "no PEM CERTIFICATE"},
	}
	for _, tc := range tests {
		_, _, err := runCLI(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to contain %q", tc.args, err, tc.want)
		}
	}
}
