package certs

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// LeafValidity is the default validity of server, agent and client
// certificates: long enough not to bother a dev setup, short enough that a
// leaked key does not stay useful for the CA's lifetime.
const LeafValidity = 365 * 24 * time.Hour

// IssueRequest describes a certificate to sign.
type IssueRequest struct {
	Kind Kind
	// Name is the agent id (agents), the operator name (clients) or a label
	// for the server (servers; DevServerName when empty). It becomes the
	// CommonName and the path of the identity URI.
	Name string
	// Game and Env scope an agent certificate; both are required for
	// agents and refused for other kinds.
	Game string
	Env  string
	// Hosts are the DNS names and IP addresses a server certificate is valid
	// for; at least one is required for servers, none allowed otherwise.
	Hosts []string
	// Validity defaults to LeafValidity and never extends past the CA.
	Validity time.Duration
}

// Issue signs a certificate with the CA in caDir (ca.crt, ca.key) and
// returns it with its new private key, both PEM encoded. Nothing is written.
func Issue(caDir string, req IssueRequest) (certPEM, keyPEM []byte, err error) {
	ca, err := loadAuthority(caDir)
	if err != nil {
		return nil, nil, err
	}
	certPEM, keyPEM, _, err = ca.issue(req, time.Now())
	return certPEM, keyPEM, err
}

func (a *authority) issue(req IssueRequest, now time.Time) (certPEM, keyPEM []byte, cert *x509.Certificate, err error) {
	if req.Kind == KindServer && req.Name == "" {
		req.Name = DevServerName
	}
	id := Identity{Kind: req.Kind, Name: req.Name, Game: req.Game, Env: req.Env}
	if err := id.Validate(); err != nil {
		return nil, nil, nil, err
	}
	if req.Validity < 0 {
		return nil, nil, nil, fmt.Errorf("validity %s is negative", req.Validity)
	}
	if req.Validity == 0 {
		req.Validity = LeafValidity
	}
	notAfter := now.Add(req.Validity)
	if notAfter.After(a.cert.NotAfter) {
		notAfter = a.cert.NotAfter
	}
	if !notAfter.After(now) {
		return nil, nil, nil, fmt.Errorf("CA %q expired on %s; create a new one with \"croupier certs init --force\"", a.cert.Subject.CommonName, a.cert.NotAfter.Format(time.RFC3339))
	}

	serial, err := randomSerial()
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.Name, Organization: []string{"Croupier"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{extKeyUsage(req.Kind)},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id.URI()},
	}
	switch req.Kind {
	case KindServer:
		if len(req.Hosts) == 0 {
			return nil, nil, nil, errors.New("a server certificate needs at least one host (DNS name or IP address)")
		}
		if tmpl.DNSNames, tmpl.IPAddresses, err = splitHosts(req.Hosts); err != nil {
			return nil, nil, nil, err
		}
	default:
		if len(req.Hosts) > 0 {
			return nil, nil, nil, fmt.Errorf("%s certificates carry no hosts; hosts are for server certificates", req.Kind)
		}
	}

	key, err := newKey()
	if err != nil {
		return nil, nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, key.Public(), a.key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("sign %s certificate: %w", req.Kind, err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		return nil, nil, nil, err
	}
	if keyPEM, err = encodeKey(key); err != nil {
		return nil, nil, nil, err
	}
	return encodeCert(der), keyPEM, cert, nil
}

func extKeyUsage(k Kind) x509.ExtKeyUsage {
	if k == KindServer {
		return x509.ExtKeyUsageServerAuth
	}
	return x509.ExtKeyUsageClientAuth
}

// splitHosts sorts hosts into DNS names and IP addresses, dropping
// duplicates. A host with a scheme, port or path is a mistake worth
// reporting rather than a name to certify.
func splitHosts(hosts []string) (dns []string, ips []net.IP, err error) {
	seen := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(h); ip != nil {
			if key := ip.String(); !seen[key] {
				seen[key] = true
				ips = append(ips, ip)
			}
			continue
		}
		name := strings.ToLower(strings.TrimSuffix(h, "."))
		if err := validDNSName(name); err != nil {
			return nil, nil, fmt.Errorf("host %q: %w", h, err)
		}
		if !seen[name] {
			seen[name] = true
			dns = append(dns, name)
		}
	}
	return dns, ips, nil
}

// validDNSName accepts LDH labels and a leading "*." wildcard.
func validDNSName(name string) error {
	if name == "" {
		return errors.New("empty host")
	}
	if len(name) > 253 {
		return errors.New("longer than 253 characters")
	}
	labels := strings.Split(name, ".")
	for i, l := range labels {
		if i == 0 && l == "*" && len(labels) > 1 {
			continue
		}
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return errors.New("not a DNS name or IP address (give a bare name such as game.example.com, without scheme or port)")
		}
		for j := 0; j < len(l); j++ {
			if c := l[j]; !isAlnum(c) && c != '-' {
				return errors.New("not a DNS name or IP address (give a bare name such as game.example.com, without scheme or port)")
			}
		}
	}
	return nil
}
