package localpeer

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"testing"
)

// TestListenerAdmits checks the decision on a pipe with a stand-in
// for /proc: an allowed uid passes, another uid and an unknown user are
// refused on the first read or write, and the connection is closed.
func TestListenerAdmits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		sock  Socket
		err   error
		admit bool
	}{
		{"this user", Socket{UID: os.Getuid()}, nil, true},
		{"root", Socket{UID: 0}, nil, true},
		{"listed", Socket{UID: 1234}, nil, true},
		{"another user", Socket{UID: 4321}, nil, false},
		{"unknown", Socket{}, errors.New("/proc/net/tcp cannot be read here"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := NewListener(nil, "SDK", []int{1234}, slog.New(slog.DiscardHandler))
			l.lookup = func(net.Addr, net.Addr) (Socket, error) { return tc.sock, tc.err }
			server, client := net.Pipe()
			defer client.Close()
			pc := &conn{Conn: server, l: l}
			go func() { _, _ = client.Write([]byte("x")) }()
			_, err := pc.Read(make([]byte, 1))
			if tc.admit != (err == nil) {
				t.Fatalf("first read: %v; want admitted %v", err, tc.admit)
			}
			if tc.admit {
				return
			}
			if _, err := pc.Write([]byte("y")); err == nil {
				t.Fatal("a write on a refused connection succeeded")
			}
			if _, err := client.Read(make([]byte, 1)); err == nil {
				t.Fatal("the refused connection is still open")
			}
		})
	}
}
