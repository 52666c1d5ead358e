package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// renewBefore is how close to expiry EnsureDev renews a leaf certificate.
const renewBefore = 30 * 24 * time.Hour

// defaultServerHosts are always in the server certificate Init creates, so
// local clients and health checks can verify it.
func defaultServerHosts() []string { return []string{"localhost", "127.0.0.1", "::1"} }

// InitOptions tune Init. The zero value creates the development set.
type InitOptions struct {
	// Hosts are added to the server certificate's SANs after localhost,
	// 127.0.0.1 and ::1.
	Hosts []string
	// Force replaces existing files instead of refusing.
	Force bool
	// AgentName, Game and Env name the agent certificate; default
	// DevAgentName, DevGame and DevEnv.
	AgentName string
	Game      string
	Env       string
	// ClientName names the operator client certificate; default
	// DevClientName.
	ClientName string
	// Validity of the leaf certificates; default LeafValidity. The CA is
	// valid for CAValidity.
	Validity time.Duration
}

// Bundle locates the files of a certificate directory.
type Bundle struct {
	Dir        string
	CACert     string
	CAKey      string
	ServerCert string
	ServerKey  string
	AgentCert  string
	AgentKey   string
	ClientCert string
	ClientKey  string
	// Written lists the files this call created or replaced, in the order
	// they were written; empty when everything was already in place.
	Written []string
}

// NewBundle returns the file locations inside dir without touching disk.
func NewBundle(dir string) *Bundle {
	j := func(name string) string { return filepath.Join(dir, name) }
	return &Bundle{
		Dir:    dir,
		CACert: j(CACertFile), CAKey: j(CAKeyFile),
		ServerCert: j(ServerCertFile), ServerKey: j(ServerKeyFile),
		AgentCert: j(AgentCertFile), AgentKey: j(AgentKeyFile),
		ClientCert: j(ClientCertFile), ClientKey: j(ClientKeyFile),
	}
}

// Files lists every file of the bundle: CA, server, agent, client; each
// certificate before its key.
func (b *Bundle) Files() []string {
	return []string{b.CACert, b.CAKey, b.ServerCert, b.ServerKey, b.AgentCert, b.AgentKey, b.ClientCert, b.ClientKey}
}

// Init creates a dev CA and a server, an agent and a client certificate
// signed by it in dir. Without opts.Force it refuses to touch a directory
// that already holds any of those files, and writes nothing.
func Init(dir string, opts InitOptions) (*Bundle, error) {
	b := NewBundle(dir)
	reqs := initRequests(opts)
	for _, r := range reqs {
		if err := (Identity{Kind: r.Kind, Name: r.Name, Game: r.Game, Env: r.Env}).Validate(); err != nil {
			return nil, err
		}
	}
	if !opts.Force {
		var existing []string
		for _, f := range b.Files() {
			if _, err := os.Lstat(f); err == nil {
				existing = append(existing, f)
			} else if !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
		}
		if len(existing) > 0 {
			return nil, fmt.Errorf("%w: %s; pass --force to replace them (this invalidates every certificate the old CA issued)", ErrExists, strings.Join(existing, ", "))
		}
	}

	// Generate everything in memory first so a bad host or a crypto failure
	// leaves the directory untouched.
	now := time.Now()
	ca, caKeyPEM, err := newAuthority(now, CAValidity)
	if err != nil {
		return nil, err
	}
	type pair struct{ certPath, keyPath string }
	paths := []pair{{b.ServerCert, b.ServerKey}, {b.AgentCert, b.AgentKey}, {b.ClientCert, b.ClientKey}}
	type out struct{ certPEM, keyPEM []byte }
	leaves := make([]out, len(reqs))
	for i, r := range reqs {
		c, k, _, err := ca.issue(r, now)
		if err != nil {
			return nil, err
		}
		leaves[i] = out{c, k}
	}

	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("create certificate directory: %w", err)
	}
	if err := WriteKeyPair(b.CACert, b.CAKey, ca.certPEM, caKeyPEM, true); err != nil {
		return nil, err
	}
	b.Written = append(b.Written, b.CACert, b.CAKey)
	for i, l := range leaves {
		if err := WriteKeyPair(paths[i].certPath, paths[i].keyPath, l.certPEM, l.keyPEM, true); err != nil {
			return nil, err
		}
		b.Written = append(b.Written, paths[i].certPath, paths[i].keyPath)
	}
	return b, nil
}

// initRequests are the server, agent and client requests of Init, in the
// order of Bundle.Files.
func initRequests(opts InitOptions) []IssueRequest {
	hosts := append(defaultServerHosts(), opts.Hosts...)
	return []IssueRequest{
		{Kind: KindServer, Name: DevServerName, Hosts: hosts, Validity: opts.Validity},
		{Kind: KindAgent, Name: orDefault(opts.AgentName, DevAgentName), Game: orDefault(opts.Game, DevGame), Env: orDefault(opts.Env, DevEnv), Validity: opts.Validity},
		{Kind: KindClient, Name: orDefault(opts.ClientName, DevClientName), Validity: opts.Validity},
	}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// EnsureDev makes dir hold a usable development certificate set: it runs
// Init when the directory has none of the files, renews leaf certificates
// that expire within 30 days (keeping their identity and hosts, signed by
// the existing CA), and otherwise leaves everything as it is. A directory
// holding only some of the files is an error rather than something to
// repair silently, since the missing CA key may be in use elsewhere.
func EnsureDev(dir string) (*Bundle, error) {
	b := NewBundle(dir)
	var missing []string
	for _, f := range b.Files() {
		if _, err := os.Stat(f); errors.Is(err, os.ErrNotExist) {
			missing = append(missing, filepath.Base(f))
		} else if err != nil {
			return nil, err
		}
	}
	switch len(missing) {
	case len(b.Files()):
		return Init(dir, InitOptions{})
	case 0:
	default:
		return nil, fmt.Errorf("certificate directory %s is incomplete (missing %s); recreate it with \"croupier certs init --force --dir %s\"", dir, strings.Join(missing, ", "), dir)
	}

	ca, err := loadAuthority(dir)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if !now.Before(ca.cert.NotAfter) {
		return nil, fmt.Errorf("%s expired on %s; recreate the certificates with \"croupier certs init --force --dir %s\"", b.CACert, ca.cert.NotAfter.Format(time.RFC3339), dir)
	}
	for _, p := range [][2]string{{b.ServerCert, b.ServerKey}, {b.AgentCert, b.AgentKey}, {b.ClientCert, b.ClientKey}} {
		renewed, err := ca.renewIfExpiring(p[0], p[1], now)
		if err != nil {
			return nil, err
		}
		if renewed {
			b.Written = append(b.Written, p[0], p[1])
		}
	}
	return b, nil
}

// renewIfExpiring checks that the pair at certPath/keyPath is signed by a and
// matches its key; if it expires within renewBefore it is reissued with the
// same identity and hosts.
func (a *authority) renewIfExpiring(certPath, keyPath string, now time.Time) (bool, error) {
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return false, fmt.Errorf("load %s: %w", certPath, err)
	}
	cert := pair.Leaf
	if cert == nil {
		if cert, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return false, fmt.Errorf("%s: %w", certPath, err)
		}
	}
	if err := cert.CheckSignatureFrom(a.cert); err != nil {
		return false, fmt.Errorf("%s was not issued by %s: %w", certPath, filepath.Join(filepath.Dir(certPath), CACertFile), err)
	}
	if now.Add(renewBefore).Before(cert.NotAfter) {
		return false, nil
	}
	id, err := IdentityFromCert(cert)
	if err != nil {
		return false, fmt.Errorf("%s: cannot renew: %w", certPath, err)
	}
	req := IssueRequest{Kind: id.Kind, Name: id.Name, Game: id.Game, Env: id.Env}
	if id.Kind == KindServer {
		req.Hosts = append(req.Hosts, cert.DNSNames...)
		for _, ip := range cert.IPAddresses {
			req.Hosts = append(req.Hosts, ip.String())
		}
	}
	certPEM, keyPEM, _, err := a.issue(req, now)
	if err != nil {
		return false, fmt.Errorf("renew %s: %w", certPath, err)
	}
	if err := WriteKeyPair(certPath, keyPath, certPEM, keyPEM, true); err != nil {
		return false, err
	}
	return true, nil
}
