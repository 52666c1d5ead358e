package tlsconf_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/croupier/croupier/internal/tlsconf"
)

func TestCheckInsecureAllowed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr     string
		insecure bool
		ok       bool
	}{
		// TLS on: anything goes.
		{":8443", false, true},
		{"0.0.0.0:8443", false, true},
		{"game.example.com:8443", false, true},

		// Loopback.
		{"127.0.0.1:8443", true, true},
		{"127.0.0.1:0", true, true},
		{"127.10.20.30:8443", true, true},
		{"[::1]:8443", true, true},
		{"localhost:8443", true, true},
		{"LOCALHOST:8443", true, true},
		{"localhost.:8443", true, true},
		{"localhost", true, true},
		{"127.0.0.1", true, true},
		{"::1", true, true},
		{"[::1]", true, true},
		{"[::ffff:127.0.0.1]:8443", true, true},
		{"dns:///localhost:8443", true, true},
		{"passthrough:///127.0.0.1:8443", true, true},
		{"dns://8.8.8.8/127.0.0.1:8443", true, true},
		{"http://127.0.0.1:8444/tunnel", true, true},
		{"unix:///run/croupier.sock", true, true},

		// Not loopback.
		{":8443", true, false},
		{"", true, false},
		{"0.0.0.0:8443", true, false},
		{"[::]:8443", true, false},
		{"10.0.0.5:8443", true, false},
		{"192.168.1.1:8443", true, false},
		{"game.example.com:8443", true, false},
		{"localhost.example.com:8443", true, false},
		{"foo.localhost:8443", true, false},
		{"128.0.0.1:8443", true, false},
		{"dns:///game.example.com:8443", true, false},
		{"dns://127.0.0.1/game.example.com:8443", true, false},
		{"http://10.0.0.5:8444/tunnel", true, false},
	}
	for _, tc := range tests {
		err := tlsconf.CheckInsecureAllowed(tc.addr, tc.insecure)
		if tc.ok && err != nil {
			t.Errorf("CheckInsecureAllowed(%q, %v) = %v, want nil", tc.addr, tc.insecure, err)
		}
		if !tc.ok && !errors.Is(err, tlsconf.ErrInsecureNotLoopback) {
			t.Errorf("CheckInsecureAllowed(%q, %v) = %v, want ErrInsecureNotLoopback", tc.addr, tc.insecure, err)
		}
	}
}

func TestCheckInsecureAllowedExplainsFix(t *testing.T) {
	t.Parallel()
	err := tlsconf.CheckInsecureAllowed(":9000", true)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"loopback", "all interfaces", "127.0.0.1:9000", "croupier certs init"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
