package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// uriScheme is the scheme of identity URI SANs.
const uriScheme = "croupier"

// ErrNoIdentity reports that a peer presented no verified certificate, or a
// certificate without a Croupier identity. Transport edges map it to
// codes.Unauthenticated / HTTP 401.
var ErrNoIdentity = errors.New("no croupier identity")

// Identity is who a certificate speaks for. Game and Env are set for agents
// only: an agent is confined to the scope its certificate names.
type Identity struct {
	Kind Kind
	Name string
	Game string
	Env  string
}

// String renders the identity as its URI, e.g.
// croupier://agent/a1?game=poker&env=prod.
func (id Identity) String() string { return id.URI().String() }

// URI is the SAN value that carries this identity.
func (id Identity) URI() *url.URL {
	u := &url.URL{Scheme: uriScheme, Host: string(id.Kind), Path: "/" + id.Name}
	if id.Kind == KindAgent {
		// Built by hand to keep the documented order (game, then env);
		// url.Values.Encode would sort the keys.
		u.RawQuery = "game=" + url.QueryEscape(id.Game) + "&env=" + url.QueryEscape(id.Env)
	}
	return u
}

// Validate checks that the identity is complete for its kind.
func (id Identity) Validate() error {
	if _, err := ParseKind(string(id.Kind)); err != nil {
		return err
	}
	if err := validName(string(id.Kind)+" name", id.Name); err != nil {
		return err
	}
	if id.Kind != KindAgent {
		if id.Game != "" || id.Env != "" {
			return fmt.Errorf("%s certificates carry no game/env scope; only agent certificates do", id.Kind)
		}
		return nil
	}
	if err := validName("game", id.Game); err != nil {
		return err
	}
	return validName("env", id.Env)
}

// ParseIdentityURI parses an identity URI SAN.
func ParseIdentityURI(u *url.URL) (Identity, error) {
	if u.Scheme != uriScheme {
		return Identity{}, fmt.Errorf("identity URI %q: scheme is not %s", u, uriScheme)
	}
	if u.User != nil || u.Port() != "" || u.Fragment != "" || u.Opaque != "" {
		return Identity{}, fmt.Errorf("identity URI %q: unexpected user, port, fragment or opaque part", u)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Identity{}, fmt.Errorf("identity URI %q: %w", u, err)
	}
	for k, vs := range q {
		if (k != "game" && k != "env") || len(vs) != 1 {
			return Identity{}, fmt.Errorf("identity URI %q: unexpected query parameter %q", u, k)
		}
	}
	id := Identity{
		Kind: Kind(u.Host),
		Name: strings.TrimPrefix(u.Path, "/"),
		Game: q.Get("game"),
		Env:  q.Get("env"),
	}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("identity URI %q: %w", u, err)
	}
	return id, nil
}

// IdentityFromCert reads the identity a certificate carries. It does not
// verify the certificate; callers pass a certificate from a verified chain
// (see IdentityFromTLS). Exactly one croupier:// URI SAN is accepted: two
// would make the identity ambiguous.
func IdentityFromCert(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, fmt.Errorf("%w: no certificate", ErrNoIdentity)
	}
	var found []*url.URL
	for _, u := range cert.URIs {
		if u.Scheme == uriScheme {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return Identity{}, fmt.Errorf("%w: certificate %q has no %s:// URI SAN; issue it with \"croupier certs issue\"", ErrNoIdentity, cert.Subject.CommonName, uriScheme)
	case 1:
	default:
		return Identity{}, fmt.Errorf("%w: certificate %q has %d %s:// URI SANs, want exactly one", ErrNoIdentity, cert.Subject.CommonName, len(found), uriScheme)
	}
	id, err := ParseIdentityURI(found[0])
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrNoIdentity, err)
	}
	if want := extKeyUsage(id.Kind); !hasExtKeyUsage(cert, want) {
		return Identity{}, fmt.Errorf("%w: certificate %q claims kind %s but lacks the matching extended key usage", ErrNoIdentity, cert.Subject.CommonName, id.Kind)
	}
	return id, nil
}

func hasExtKeyUsage(cert *x509.Certificate, want x509.ExtKeyUsage) bool {
	for _, u := range cert.ExtKeyUsage {
		if u == want || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}
