package roomsrpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/croupier/croupier/internal/tlsconf"
)

// ServerConfig is the rooms HTTP listener.
type ServerConfig struct {
	// Addr is host:port; port 0 picks a free one.
	Addr string
	// TLSCert and TLSKey serve HTTPS (HTTP/2 by ALPN) when both are set;
	// without them the listener speaks HTTP/1.1 and HTTP/2 in cleartext
	// (h2c, which gRPC needs), and only on loopback.
	TLSCert, TLSKey string
}

// Server is the rooms HTTP listener serving a handler.
type Server struct {
	srv *http.Server
	ln  net.Listener
	tls bool
}

// Listen opens the listener now (so Addr is known before Serve).
func Listen(cfg ServerConfig, h http.Handler) (*Server, error) {
	useTLS := cfg.TLSCert != "" || cfg.TLSKey != ""
	if useTLS && (cfg.TLSCert == "" || cfg.TLSKey == "") {
		return nil, errors.New("rooms listener: set both the TLS certificate and key, or neither")
	}
	if !useTLS {
		if err := tlsconf.CheckInsecureAllowed(cfg.Addr, true); err != nil {
			return nil, fmt.Errorf("rooms listener %s: players' tokens and passwords cross it, so off loopback it needs TLS (certificate and key)", cfg.Addr)
		}
	}
	p := new(http.Protocols)
	p.SetHTTP1(true)
	if useTLS {
		p.SetHTTP2(true)
	} else {
		p.SetUnencryptedHTTP2(true)
	}
	srv := &http.Server{Handler: h, Protocols: p, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	if useTLS {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("rooms listener TLS: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("rooms listener: %w", err)
	}
	if useTLS {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	return &Server{srv: srv, ln: ln, tls: useTLS}, nil
}

// Addr is the address the listener is bound to.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the listener's base URL.
func (s *Server) URL() string {
	if s.tls {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

// Serve serves until Shutdown; it returns nil after a shutdown.
func (s *Server) Serve() error {
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting and waits for requests to end until ctx is
// done, then closes what is left (open streams included).
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	return err
}
