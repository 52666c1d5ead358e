package certs_test

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/certs"
)

func TestEnsureDevCreatesOnceThenKeeps(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data", "certs")
	b, err := certs.EnsureDev(dir)
	if err != nil {
		t.Fatalf("first EnsureDev: %v", err)
	}
	if len(b.Written) != 8 {
		t.Fatalf("first EnsureDev wrote %v, want all 8 files", b.Written)
	}
	before := snapshot(t, b.Files())

	b2, err := certs.EnsureDev(dir)
	if err != nil {
		t.Fatalf("second EnsureDev: %v", err)
	}
	if len(b2.Written) != 0 {
		t.Errorf("second EnsureDev wrote %v, want nothing", b2.Written)
	}
	for f, data := range snapshot(t, b.Files()) {
		if !bytes.Equal(data, before[f]) {
			t.Errorf("%s changed on second EnsureDev", f)
		}
	}
	id, err := certs.IdentityFromCert(readCert(t, b.AgentCert))
	if err != nil || id.Game != certs.DevGame || id.Env != certs.DevEnv || id.Name != certs.DevAgentName {
		t.Errorf("dev agent identity %+v, %v", id, err)
	}
}

func TestEnsureDevRefusesIncompleteDir(t *testing.T) {
	t.Parallel()
	b := mustInit(t, certs.InitOptions{})
	if err := os.Remove(b.CAKey); err != nil {
		t.Fatal(err)
	}
	_, err := certs.EnsureDev(b.Dir)
	if err == nil || !strings.Contains(err.Error(), certs.CAKeyFile) || !strings.Contains(err.Error(), "certs init --force") {
		t.Fatalf("error = %v, want one naming ca.key and suggesting certs init --force", err)
	}
	if _, err := os.Stat(b.CAKey); !os.IsNotExist(err) {
		t.Error("EnsureDev recreated the CA key of an incomplete directory")
	}
}

func TestEnsureDevRenewsExpiringLeaves(t *testing.T) {
	t.Parallel()
	b := mustInit(t, certs.InitOptions{Hosts: []string{"croupier.internal"}, Game: "poker", Env: "prod", Validity: time.Hour})
	before := snapshot(t, b.Files())
	oldAgent := readCert(t, b.AgentCert)

	b2, err := certs.EnsureDev(b.Dir)
	if err != nil {
		t.Fatalf("EnsureDev: %v", err)
	}
	want := []string{b.ServerCert, b.ServerKey, b.AgentCert, b.AgentKey, b.ClientCert, b.ClientKey}
	if strings.Join(b2.Written, ",") != strings.Join(want, ",") {
		t.Fatalf("renewed %v, want %v", b2.Written, want)
	}
	after := snapshot(t, b.Files())
	if !bytes.Equal(after[b.CACert], before[b.CACert]) || !bytes.Equal(after[b.CAKey], before[b.CAKey]) {
		t.Error("EnsureDev replaced the CA while renewing leaves")
	}

	roots := caPool(t, b)
	agent := readCert(t, b.AgentCert)
	if agent.SerialNumber.Cmp(oldAgent.SerialNumber) == 0 || time.Until(agent.NotAfter) < 300*24*time.Hour {
		t.Errorf("agent cert not renewed: serial %v, NotAfter %v", agent.SerialNumber, agent.NotAfter)
	}
	if id, err := certs.IdentityFromCert(agent); err != nil || id.Game != "poker" || id.Env != "prod" {
		t.Errorf("renewed agent identity %+v, %v", id, err)
	}
	server := readCert(t, b.ServerCert)
	if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: "croupier.internal"}); err != nil {
		t.Errorf("renewed server cert lost its host: %v", err)
	}

	// Renewed leaves are good for a year: nothing more to do.
	b3, err := certs.EnsureDev(b.Dir)
	if err != nil || len(b3.Written) != 0 {
		t.Errorf("third EnsureDev wrote %v, %v; want nothing", b3.Written, err)
	}
}
