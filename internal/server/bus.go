package server

import (
	"context"
	"crypto/tls"
	"fmt"

	"github.com/croupier/croupier/internal/cluster"
	"github.com/croupier/croupier/internal/tlsconf"
)

// openBus joins the cluster bus the config names (docs/cluster.md).
func (s *Server) openBus(ctx context.Context) error {
	cfg := cluster.Config{
		NodeID: s.cfg.NodeID, DataDir: s.cfg.DataDir, Logger: s.log,
		Listen: s.cfg.NATSListen, ClusterName: s.cfg.NATSClusterName,
		ClusterListen: s.cfg.NATSClusterListen, Routes: s.cfg.NATSRoutes,
		TokenFile: s.cfg.NATSTokenFile,
	}
	switch s.cfg.NATS {
	case "off":
		return nil
	case "external":
		cfg.URL, cfg.CredsFile = s.cfg.NATSURL, s.cfg.NATSCreds
		if s.cfg.NATSTLSCA != "" || s.cfg.NATSTLSCert != "" {
			tc, err := natsTLS(s.cfg.NATSTLSCA, s.cfg.NATSTLSCert, s.cfg.NATSTLSKey)
			if err != nil {
				return err
			}
			cfg.TLS = tc
		}
	}
	if n := len(cfg.Routes); n > 1 {
		cfg.Replicas = min(n, 3)
	}
	bus, err := cluster.Start(ctx, cfg)
	if err != nil {
		return err
	}
	s.bus = bus
	return nil
}

func natsTLS(ca, cert, key string) (*tls.Config, error) {
	tc, err := tlsconf.ClientConfig(ca, cert, key, "")
	if err != nil {
		return nil, fmt.Errorf("nats TLS: %w", err)
	}
	return tc, nil
}
