package gateway

import (
	"fmt"
	"path/filepath"

	"github.com/croupier/croupier/internal/config"
)

// validateCluster appends the problems of the gateway-tier keys to p and
// fills the defaults that depend on other keys.
func (c *Config) validateCluster(p []string) []string {
	switch c.NATS {
	case "off", "":
		c.NATS = "off"
		return p
	case "embedded":
		if c.RoomsAddr == "" {
			c.NATS = "off" // nothing for the tier to carry
			return p
		}
	case "external":
		if c.NATSURL == "" {
			p = append(p, "nats external needs nats_url (nats://host:4222,nats://host2:4222)")
		}
	default:
		return append(p, fmt.Sprintf("nats %q: use off, embedded or external", c.NATS))
	}
	if c.RoomsAddr == "" {
		p = append(p, "nats "+c.NATS+": the gateway tier carries the rooms system; set rooms_addr or nats off")
	}
	if c.DataDir == "" {
		c.DataDir = config.DefaultDataDir()
	}
	if c.ClusterReplicas == 0 {
		c.ClusterReplicas = max(1, min(len(c.NATSRoutes), 3))
	}
	if c.ClusterReplicas < 1 || c.ClusterReplicas > 5 {
		p = append(p, fmt.Sprintf("cluster_replicas %d: must be 1–5 (0: the number of routes, at most 3)", c.ClusterReplicas))
	}
	if c.ClusterAddr == "" {
		return p
	}
	certs := filepath.Join(c.DataDir, "certs")
	if c.ClusterTLSCA == "" && c.ClusterTLSCert == "" && c.ClusterTLSKey == "" {
		c.ClusterTLSCA, c.ClusterTLSCert, c.ClusterTLSKey = filepath.Join(certs, "ca.crt"), filepath.Join(certs, "server.crt"), filepath.Join(certs, "server.key")
		c.clusterTLSDefaulted = true
	}
	if c.ClusterTLSCA == "" || c.ClusterTLSCert == "" || c.ClusterTLSKey == "" {
		p = append(p, "cluster_tls_ca, cluster_tls_cert and cluster_tls_key: set all three (the cluster services use mTLS), or none for the files of `croupier certs init` in data_dir/certs")
	}
	return p
}

// ClusterTLSDefaulted reports that the cluster listener's TLS files are
// defaults, not configured: if they are missing the node serves no
// cluster services (and says so) instead of refusing to start — a single
// gateway needs none.
func (c *Config) ClusterTLSDefaulted() bool { return c.clusterTLSDefaulted }
