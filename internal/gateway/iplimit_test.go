package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestConnectLimitCountsAnIPv6ClientByPrefix: the connect limit takes an
// IPv6 client's tokens by its /64, so rotating source addresses within
// one prefix (any subscriber can) does not get past it; another prefix
// and IPv4 have their own.
func TestConnectLimitCountsAnIPv6ClientByPrefix(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ClientAddr, cfg.BusinessAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.ConnectRatePerIP, cfg.ConnectBurstPerIP = 0.001, 2
	g, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	upgrade := func(remote string) int {
		r := httptest.NewRequest(http.MethodGet, cfg.ClientPath, nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder() // not an upgrade: refused after the limit, which is what counts
		g.serveWS(w, r)
		return w.Code
	}
	for _, remote := range []string{"[2001:db8:1:2::1]:40000", "[2001:db8:1:2::2]:40001"} {
		if code := upgrade(remote); code == http.StatusTooManyRequests {
			t.Fatalf("%s: 429 within the burst", remote)
		}
	}
	if code := upgrade("[2001:db8:1:2:ffff::3]:40002"); code != http.StatusTooManyRequests {
		t.Fatalf("a third address of the same /64: HTTP %d, want 429", code)
	}
	for _, remote := range []string{"[2001:db8:1:3::1]:40000", "192.0.2.7:40000"} {
		if code := upgrade(remote); code == http.StatusTooManyRequests {
			t.Fatalf("%s (another client): 429", remote)
		}
	}
}
