package gateway_test

import (
	"strings"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/gateway"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := func() error { c := gateway.DefaultConfig(); return c.Validate() }(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(*gateway.Config)
		want   string
	}{
		{"business off loopback without TLS", func(c *gateway.Config) { c.BusinessAddr = "0.0.0.0:6061" }, "requires mTLS"},
		{"half business TLS", func(c *gateway.Config) { c.BusinessTLSCA = "ca.crt" }, "set all three"},
		{"half client TLS", func(c *gateway.Config) { c.ClientTLSCert = "gw.crt" }, "set both"},
		{"server id", func(c *gateway.Config) { c.ServerID = 256 }, "0–255"},
		{"send type", func(c *gateway.Config) { c.SendMessageType = "xml" }, "text or binary"},
		{"workerId", func(c *gateway.Config) { c.ConnOpenWorkerID = 1000 }, "conn_open_worker_id"},
		{"limit group", func(c *gateway.Config) { c.LimitGroups = []string{"chat=0:1"} }, "positive integer"},
		{"limit group workerId twice", func(c *gateway.Config) { c.LimitGroups = []string{"a=1:1", "b=1:1"} }, "already in group"},
		{"metrics item", func(c *gateway.Config) { c.MetricsItems = []int{7} }, "metrics_items 7"},
		{"token keys", func(c *gateway.Config) { c.CustomUniqIDTokenKey = "uniqId" }, "different"},
		{"nats kind", func(c *gateway.Config) { c.NATS = "redis" }, "use off, embedded or external"},
		{"nats external without url", func(c *gateway.Config) { c.NATS = "external" }, "needs nats_url"},
		{"gateway tier without rooms", func(c *gateway.Config) { c.NATS = "external"; c.NATSURL = "nats://n:4222"; c.RoomsAddr = "" }, "set rooms_addr"},
		{"half cluster TLS", func(c *gateway.Config) { c.NATS = "embedded"; c.ClusterTLSCA = "ca.crt" }, "cluster_tls_ca"},
		{"cluster replicas", func(c *gateway.Config) { c.NATS = "embedded"; c.ClusterReplicas = 7 }, "cluster_replicas 7"},
		{"login free", func(c *gateway.Config) { c.LoginUserFree = 0 }, "login_user_free (0)"},
		{"handshake timeout", func(c *gateway.Config) { c.HandshakeTimeout = time.Millisecond }, "handshake_timeout 1ms"},
		{"login waits", func(c *gateway.Config) { c.LoginBaseWait = time.Hour }, "login waits must satisfy"},
	}
	for _, tc := range cases {
		c := gateway.DefaultConfig()
		tc.mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	// The default is a one-node gateway tier on an embedded NATS, with the
	// cluster listener's TLS files defaulted; without rooms there is
	// nothing for the tier to carry and no NATS runs.
	c := gateway.DefaultConfig()
	if err := c.Validate(); err != nil || c.NATS != "embedded" || !c.ClusterTLSDefaulted() {
		t.Errorf("defaults: nats %q, cluster TLS defaulted %v, err %v", c.NATS, c.ClusterTLSDefaulted(), err)
	}
	c = gateway.DefaultConfig()
	c.RoomsAddr = ""
	if err := c.Validate(); err != nil || c.NATS != "off" {
		t.Errorf("no rooms: nats %q, err %v; want off", c.NATS, err)
	}
	// Off loopback with mTLS is allowed.
	c = gateway.DefaultConfig()
	c.BusinessAddr = "0.0.0.0:6061"
	c.BusinessTLSCA, c.BusinessTLSCert, c.BusinessTLSKey = "ca.crt", "gw.crt", "gw.key"
	if err := c.Validate(); err != nil {
		t.Errorf("off loopback with mTLS: %v", err)
	}
}
