package gateway

import "path/filepath"

// validateLive appends the problems of the RTMPS and live relay keys to p
// and fills the relay certificate defaults. Call it after validateCluster
// (DataDir).
func (c *Config) validateLive(p []string) []string {
	if c.RTMPSAddr != "" && (c.RTMPSTLSCert == "" || c.RTMPSTLSKey == "") {
		p = append(p, "rtmps_addr "+c.RTMPSAddr+": RTMPS needs rtmps_tls_cert and rtmps_tls_key (a server certificate publishers and players trust), or an empty rtmps_addr")
	}
	if c.NATS == "off" || c.RelayAddr == "" {
		return p // a node alone has nobody to relay to
	}
	tls := []*string{&c.RelayTLSCA, &c.RelayTLSCert, &c.RelayTLSKey, &c.RelayClientCert, &c.RelayClientKey}
	set := 0
	for _, f := range tls {
		if *f != "" {
			set++
		}
	}
	switch set {
	case 0:
		// The listener's side is the cluster listener's (same CA and
		// server certificate); the client side the certs init files.
		certs := filepath.Join(c.DataDir, "certs")
		for i, name := range []string{"ca.crt", "server.crt", "server.key", "client.crt", "client.key"} {
			*tls[i] = filepath.Join(certs, name)
		}
		if c.ClusterTLSCA != "" && c.ClusterTLSCert != "" && c.ClusterTLSKey != "" {
			c.RelayTLSCA, c.RelayTLSCert, c.RelayTLSKey = c.ClusterTLSCA, c.ClusterTLSCert, c.ClusterTLSKey
		}
		c.relayTLSDefaulted = true
	case len(tls):
	default:
		p = append(p, "relay_tls_ca, relay_tls_cert, relay_tls_key, relay_client_cert and relay_client_key: set all five (relays between nodes use mTLS: a server certificate for the listener, a client certificate to pull), or none for the files of `croupier certs init` in data_dir/certs")
	}
	return p
}

// RelayTLSDefaulted reports that the relay's TLS files are defaults, not
// configured: if they are missing the node runs without relays (and says
// so) instead of refusing to start.
func (c *Config) RelayTLSDefaulted() bool { return c.relayTLSDefaulted }
