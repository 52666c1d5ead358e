package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"slices"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// IdentityFromTLS reads the identity of the peer of a TLS connection. Only a
// verified chain counts: with tls.VerifyClientCertIfGiven an unverified
// certificate never reaches here, and PeerCertificates alone would trust
// whatever the peer sent.
func IdentityFromTLS(cs *tls.ConnectionState) (Identity, error) {
	if cs == nil {
		return Identity{}, fmt.Errorf("%w: connection is not TLS", ErrNoIdentity)
	}
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Identity{}, fmt.Errorf("%w: peer presented no verified certificate", ErrNoIdentity)
	}
	return IdentityFromCert(cs.VerifiedChains[0][0])
}

// IdentityFromContext reads the identity of the gRPC peer of a server-side
// call context.
func IdentityFromContext(ctx context.Context) (Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{}, fmt.Errorf("%w: no gRPC peer in context", ErrNoIdentity)
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return Identity{}, fmt.Errorf("%w: gRPC peer did not connect over TLS", ErrNoIdentity)
	}
	return IdentityFromTLS(&info.State)
}

// IdentityFromRequest reads the identity of the client of an HTTPS request.
func IdentityFromRequest(r *http.Request) (Identity, error) {
	return IdentityFromTLS(r.TLS)
}

// NodePeers returns the tls.Config.VerifyConnection of the listeners that
// gateway nodes call each other on (the cluster services, live relays),
// whose callers act with every room's full authority: it admits only
// client certificates named in names — the nodes' — and refuses every
// other certificate the CA signs: an operator's (scoped to what their
// roles grant), an agent's (one game), a business process's. revoked
// (nil: none) reports whether the certificate with a serial (Serial) is on
// the revocation list; such a certificate is refused too.
func NodePeers(names []string, revoked func(serial string) bool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		id, err := IdentityFromTLS(&cs)
		if err != nil {
			return err
		}
		if id.Kind != KindClient || !slices.Contains(names, id.Name) {
			return fmt.Errorf("%s certificate %q may not call a node's cluster or relay services: nodes present a client certificate named in node_peer_names (%v)", id.Kind, id.Name, names)
		}
		if serial := Serial(cs.VerifiedChains[0][0]); revoked != nil && revoked(serial) {
			return fmt.Errorf("the certificate of %s %q (serial %s) is revoked", id.Kind, id.Name, serial)
		}
		return nil
	}
}

// Serial is how the revocation list names a certificate: its serial
// number in lower-case hex, as `croupier certs revoke --serial` takes it.
func Serial(c *x509.Certificate) string { return c.SerialNumber.Text(16) }
