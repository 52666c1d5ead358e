package certs_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/certs"
)

func mustInit(t *testing.T, opts certs.InitOptions) *certs.Bundle {
	t.Helper()
	b, err := certs.Init(filepath.Join(t.TempDir(), "certs"), opts)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return b
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	list, err := certs.ParseCertificatesPEM(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return list[0]
}

func caPool(t *testing.T, b *certs.Bundle) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(readCert(t, b.CACert))
	return pool
}

func TestInitChainsVerify(t *testing.T) {
	t.Parallel()
	b := mustInit(t, certs.InitOptions{Hosts: []string{"croupier.internal", "10.1.2.3"}})
	roots := caPool(t, b)

	ca := readCert(t, b.CACert)
	if !ca.IsCA || ca.PublicKeyAlgorithm != x509.ECDSA {
		t.Fatalf("CA: IsCA=%v alg=%v, want an ECDSA CA", ca.IsCA, ca.PublicKeyAlgorithm)
	}
	if got := ca.NotAfter.Sub(ca.NotBefore); got < 9*365*24*time.Hour {
		t.Errorf("CA validity %v, want about 10 years", got)
	}

	server := readCert(t, b.ServerCert)
	for _, host := range []string{"localhost", "127.0.0.1", "::1", "croupier.internal", "10.1.2.3"} {
		_, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err != nil {
			t.Errorf("server cert for %s: %v", host, err)
		}
	}
	if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: "elsewhere.example"}); err == nil {
		t.Error("server cert verified for a host it does not name")
	}

	for _, path := range []string{b.AgentCert, b.ClientCert} {
		c := readCert(t, path)
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s as client: %v", path, err)
		}
		// A client certificate must not work as a server certificate.
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
			t.Errorf("%s verified for server auth", path)
		}
	}
	if _, err := server.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("server cert verified for client auth")
	}

	// A certificate from another CA does not chain to this one.
	other := mustInit(t, certs.InitOptions{})
	if _, err := readCert(t, other.AgentCert).Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("agent cert of another CA verified")
	}
}

func TestInitIdentities(t *testing.T) {
	t.Parallel()
	b := mustInit(t, certs.InitOptions{AgentName: "a-1", Game: "poker", Env: "staging", ClientName: "alice"})
	tests := []struct {
		path string
		want certs.Identity
	}{
		{b.ServerCert, certs.Identity{Kind: certs.KindServer, Name: certs.DevServerName}},
		{b.AgentCert, certs.Identity{Kind: certs.KindAgent, Name: "a-1", Game: "poker", Env: "staging"}},
		{b.ClientCert, certs.Identity{Kind: certs.KindClient, Name: "alice"}},
	}
	for _, tc := range tests {
		got, err := certs.IdentityFromCert(readCert(t, tc.path))
		if err != nil || got != tc.want {
			t.Errorf("%s: identity %+v, %v; want %+v", tc.path, got, err, tc.want)
		}
	}
	if _, err := certs.IdentityFromCert(readCert(t, b.CACert)); !errors.Is(err, certs.ErrNoIdentity) {
		t.Errorf("CA identity error = %v, want ErrNoIdentity", err)
	}
}

// Keys are 0600 and the directory 0700 whatever the umask (issue 9,
// defect 4). Not parallel: the umask is process-wide.
func TestInitFileModes(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	b := mustInit(t, certs.InitOptions{})
	if len(b.Written) != 8 {
		t.Fatalf("Written = %v, want 8 files", b.Written)
	}
	for _, f := range b.Files() {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o644)
		if strings.HasSuffix(f, ".key") {
			want = 0o600
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode %v, want %v", f, got, want)
		}
	}
	if fi, err := os.Stat(b.Dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	// No temporary files are left behind.
	entries, err := os.ReadDir(b.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 8 {
		t.Errorf("directory holds %d entries, want 8", len(entries))
	}
}

func snapshot(t *testing.T, files []string) map[string][]byte {
	t.Helper()
	m := make(map[string][]byte, len(files))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		m[f] = data
	}
	return m
}

func TestInitRefusesOverwrite(t *testing.T) {
	t.Parallel()
	b := mustInit(t, certs.InitOptions{})
	before := snapshot(t, b.Files())

	_, err := certs.Init(b.Dir, certs.InitOptions{})
	if !errors.Is(err, certs.ErrExists) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second Init error = %v, want ErrExists mentioning --force", err)
	}
	for f, data := range snapshot(t, b.Files()) {
		if !bytes.Equal(data, before[f]) {
			t.Errorf("%s changed although Init refused", f)
		}
	}

	if _, err := certs.Init(b.Dir, certs.InitOptions{Force: true}); err != nil {
		t.Fatalf("Init with Force: %v", err)
	}
	for f, data := range snapshot(t, b.Files()) {
		if bytes.Equal(data, before[f]) {
			t.Errorf("%s unchanged after Init with Force", f)
		}
	}
}

func TestInitRefusesAnyExistingFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keep := filepath.Join(dir, certs.AgentKeyFile)
	if err := os.WriteFile(keep, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.Init(dir, certs.InitOptions{}); !errors.Is(err, certs.ErrExists) || !strings.Contains(err.Error(), keep) {
		t.Fatalf("Init error = %v, want ErrExists naming %s", err, keep)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("Init wrote files although it refused: %d entries", len(entries))
	}
}

func TestInitBadInputWritesNothing(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string]certs.InitOptions{
		"host with port": {Hosts: []string{"example.com:8443"}},
		"host with URL":  {Hosts: []string{"https://example.com"}},
		"bad game":       {Game: "po ker"},
		"bad agent name": {AgentName: "-x"},
	} {
		dir := filepath.Join(t.TempDir(), "certs")
		if _, err := certs.Init(dir, opts); err == nil {
			t.Errorf("%s: Init succeeded", name)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: directory created although Init failed (%v)", name, err)
		}
	}
}

func TestIssueAgent(t *testing.T) {
	t.Parallel()
	b := mustInit(t, certs.InitOptions{})
	certPEM, keyPEM, err := certs.Issue(b.Dir, certs.IssueRequest{Kind: certs.KindAgent, Name: "host-17", Game: "poker", Env: "prod"})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if !bytes.Contains(keyPEM, []byte("PRIVATE KEY")) {
		t.Fatalf("key is not PEM: %q", keyPEM)
	}
	list, err := certs.ParseCertificatesPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	c := list[0]
	if c.Subject.CommonName != "host-17" {
		t.Errorf("CN = %q, want the agent id", c.Subject.CommonName)
	}
	if len(c.URIs) != 1 || c.URIs[0].String() != "croupier://agent/host-17?game=poker&env=prod" {
		t.Errorf("URIs = %v", c.URIs)
	}
	if len(c.DNSNames)+len(c.IPAddresses) != 0 {
		t.Errorf("agent cert names hosts: %v %v", c.DNSNames, c.IPAddresses)
	}
	if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("ExtKeyUsage = %v, want ClientAuth only", c.ExtKeyUsage)
	}
	if c.IsCA {
		t.Error("leaf is a CA")
	}
	if d := time.Until(c.NotAfter); d < 360*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("validity ends in %v, want about a year", d)
	}
	if !c.NotBefore.Before(time.Now()) {
		t.Errorf("NotBefore %v is not in the past", c.NotBefore)
	}
	id, err := certs.IdentityFromCert(c)
	want := certs.Identity{Kind: certs.KindAgent, Name: "host-17", Game: "poker", Env: "prod"}
	if err != nil || id != want {
		t.Errorf("identity = %+v, %v; want %+v", id, err, want)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: caPool(t, b), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("issued cert does not verify: %v", err)
	}
}

func TestIssueSerialsAreRandom128Bit(t *testing.T) {
	t.Parallel()
	b := mustInit(t, certs.InitOptions{})
	seen := map[string]bool{}
	for i := range 8 {
		certPEM, _, err := certs.Issue(b.Dir, certs.IssueRequest{Kind: certs.KindClient, Name: "c"})
		if err != nil {
			t.Fatal(err)
		}
		list, _ := certs.ParseCertificatesPEM(certPEM)
		s := list[0].SerialNumber
		if s.Sign() <= 0 || s.BitLen() > 128 {
			t.Fatalf("serial %v out of range", s)
		}
		// 2^-60 chance that a random 128-bit serial is this short.
		if s.BitLen() < 68 {
			t.Errorf("serial %d has only %d bits", i, s.BitLen())
		}
		if seen[s.String()] {
			t.Fatalf("serial %v repeated", s)
		}
		seen[s.String()] = true
	}
}

func TestIssueServer(t *testing.T) {
	t.Parallel()
	b := mustInit(t, certs.InitOptions{})
	certPEM, _, err := certs.Issue(b.Dir, certs.IssueRequest{Kind: certs.KindServer, Hosts: []string{"Game.Example.com.", "10.0.0.5", "10.0.0.5", "*.svc.local"}})
	if err != nil {
		t.Fatal(err)
	}
	list, _ := certs.ParseCertificatesPEM(certPEM)
	c := list[0]
	if got := strings.Join(c.DNSNames, ","); got != "game.example.com,*.svc.local" {
		t.Errorf("DNSNames = %q", got)
	}
	if len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal(net.ParseIP("10.0.0.5")) {
		t.Errorf("IPAddresses = %v", c.IPAddresses)
	}
	if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("ExtKeyUsage = %v, want ServerAuth only", c.ExtKeyUsage)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: caPool(t, b), DNSName: "a.svc.local"}); err != nil {
		t.Errorf("wildcard: %v", err)
	}
}

func TestIssueValidityCappedAtCA(t *testing.T) {
	t.Parallel()
	b := mustInit(t, certs.InitOptions{})
	certPEM, _, err := certs.Issue(b.Dir, certs.IssueRequest{Kind: certs.KindClient, Name: "c", Validity: 50 * 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	list, _ := certs.ParseCertificatesPEM(certPEM)
	if ca := readCert(t, b.CACert); !list[0].NotAfter.Equal(ca.NotAfter) {
		t.Errorf("NotAfter %v, want capped at CA's %v", list[0].NotAfter, ca.NotAfter)
	}
}

func TestIssueRejects(t *testing.T) {
	t.Parallel()
	b := mustInit(t, certs.InitOptions{})
	tests := []struct {
		name string
		req  certs.IssueRequest
		want string
	}{
		{"unknown kind", certs.IssueRequest{Kind: "robot", Name: "x"}, "unknown certificate kind"},
		{"agent without name", certs.IssueRequest{Kind: certs.KindAgent, Game: "g", Env: "e"}, "agent name is required"},
		{"agent without game", certs.IssueRequest{Kind: certs.KindAgent, Name: "a", Env: "e"}, "game is required"},
		{"agent without env", certs.IssueRequest{Kind: certs.KindAgent, Name: "a", Game: "g"}, "env is required"},
		{"agent name with slash", certs.IssueRequest{Kind: certs.KindAgent, Name: "a/b", Game: "g", Env: "e"}, "invalid"},
		{"game with query", certs.IssueRequest{Kind: certs.KindAgent, Name: "a", Game: "g&env=x", Env: "e"}, "invalid"},
		{"agent with host", certs.IssueRequest{Kind: certs.KindAgent, Name: "a", Game: "g", Env: "e", Hosts: []string{"x"}}, "no hosts"},
		{"client with scope", certs.IssueRequest{Kind: certs.KindClient, Name: "c", Game: "g"}, "no game/env"},
		{"server without hosts", certs.IssueRequest{Kind: certs.KindServer}, "at least one host"},
		{"server host with port", certs.IssueRequest{Kind: certs.KindServer, Hosts: []string{"h:443"}}, "without scheme or port"},
		{"negative validity", certs.IssueRequest{Kind: certs.KindClient, Name: "c", Validity: -time.Hour}, "negative"},
	}
	for _, tc := range tests {
		_, _, err := certs.Issue(b.Dir, tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

func TestIssueWithoutCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, _, err := certs.Issue(dir, certs.IssueRequest{Kind: certs.KindClient, Name: "c"})
	if err == nil || !strings.Contains(err.Error(), "croupier certs init") || !strings.Contains(err.Error(), certs.CACertFile) {
		t.Fatalf("error = %v, want one naming ca.crt and suggesting certs init", err)
	}
}

func TestIssueRejectsMismatchedCAKey(t *testing.T) {
	t.Parallel()
	a := mustInit(t, certs.InitOptions{})
	other := mustInit(t, certs.InitOptions{})
	key, err := os.ReadFile(other.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.CAKey, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := certs.Issue(a.Dir, certs.IssueRequest{Kind: certs.KindClient, Name: "c"}); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("error = %v, want key/cert mismatch", err)
	}
}

func TestWriteKeyPairRefusesOverwrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, k := filepath.Join(dir, "x.crt"), filepath.Join(dir, "x.key")
	if err := certs.WriteKeyPair(c, k, []byte("c1"), []byte("k1"), false); err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteKeyPair(c, k, []byte("c2"), []byte("k2"), false); !errors.Is(err, certs.ErrExists) {
		t.Fatalf("error = %v, want ErrExists", err)
	}
	if got, _ := os.ReadFile(c); string(got) != "c1" {
		t.Errorf("cert overwritten: %q", got)
	}
	if err := certs.WriteKeyPair(c, k, []byte("c2"), []byte("k2"), true); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(k); string(got) != "k2" {
		t.Errorf("key not replaced with force: %q", got)
	}
}
