// Package tlsconf builds the tls.Config values Croupier's listeners and
// dialers use: mutual TLS with a private CA by default, and a guard that
// keeps plaintext on loopback.
//
// Certificates and keys are re-read from disk when their files change, so
// rotating a server or agent certificate needs no restart (see
// docs/security.md). The CA pool is read once.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// initHint ends every file error: the usual cause is a setup that never
// created certificates.
const initHint = `run "croupier certs init" to create development certificates, or point the TLS settings at your own files`

// ServerConfig returns the TLS configuration of a listener that presents
// certFile/keyFile and verifies client certificates against caFile. With
// requireClientCert a client without a valid certificate is refused during
// the handshake; without it a certificate is verified when one is offered
// (callers then authorise per request, e.g. with certs.IdentityFromContext).
// caFile may be empty only when client certificates are not required; then
// none are asked for.
func ServerConfig(caFile, certFile, keyFile string, requireClientCert bool) (*tls.Config, error) {
	kp, err := newKeyPairReloader(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		// TLS 1.3 is negotiated whenever the peer offers it; 1.2 stays
		// allowed for older agents and proxies.
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return kp.get(), nil
		},
		ClientAuth: tls.NoClientCert,
	}
	switch {
	case caFile != "":
		if cfg.ClientCAs, err = loadCertPool(caFile); err != nil {
			return nil, err
		}
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if requireClientCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	case requireClientCert:
		return nil, fmt.Errorf("TLS CA file is required to verify client certificates; %s", initHint)
	}
	return cfg, nil
}

// ClientConfig returns the TLS configuration of a dialer that verifies the
// server against caFile (the system roots when empty) and, when
// certFile/keyFile are set, presents that certificate. serverName overrides
// the name checked against the server certificate; when empty, gRPC uses
// the host of the dial target.
func ClientConfig(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pool, err := loadCertPool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	switch {
	case certFile == "" && keyFile == "":
	case certFile == "" || keyFile == "":
		return nil, errors.New("TLS client certificate and key must be given together")
	default:
		kp, err := newKeyPairReloader(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return kp.get(), nil
		}
	}
	return cfg, nil
}

// loadCertPool reads the PEM certificates of caFile into a new pool. Several
// CAs in one file are all trusted, which is how a CA rotation overlaps.
func loadCertPool(caFile string) (*x509.CertPool, error) {
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fileError("CA certificate", caFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fileError("CA certificate", caFile, errors.New("no PEM certificate found"))
	}
	return pool, nil
}

func fileError(what, file string, err error) error {
	return fmt.Errorf("TLS %s %q: %w; %s", what, file, err, initHint)
}
