package cluster_test

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/croupier/croupier/internal/cluster"
	"github.com/croupier/croupier/internal/cluster/clustertest"
)

// TestListenerNeedsToken: an embedded server that listens generates a 0600
// token in its data dir and refuses clients without it; a node with an
// external URL and the token file joins.
func TestListenerNeedsToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n, err := cluster.Start(t.Context(), cluster.Config{NodeID: "a", DataDir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	url := n.ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") {
		t.Fatalf("client URL %q; want loopback", url)
	}
	file := filepath.Join(dir, "nats.token")
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %04o; want 0600", fi.Mode().Perm())
	}
	for name, opts := range map[string][]nats.Option{
		"no token":    nil,
		"wrong token": {nats.Token("0123456789abcdef0123456789abcdef")},
	} {
		nc, err := nats.Connect(url, append(opts, nats.MaxReconnects(0))...)
		if err == nil {
			nc.Close()
			t.Fatalf("%s: connected", name)
		}
		if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Fatalf("%s: %v; want an authorization violation", name, err)
		}
	}
	b, err := cluster.Start(t.Context(), cluster.Config{NodeID: "b", URL: url, TokenFile: file})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		m, err := b.Members(t.Context())
		if err == nil && !slices.Equal(m, []string{"a", "b"}) {
			return &mismatch{m}
		}
		return err
	})
}

type mismatch struct{ m []string }

func (e *mismatch) Error() string { return "members " + strings.Join(e.m, ",") }

// TestRouteNeedsToken: a server that joins the route port without the
// cluster's credentials is refused (startCluster's nodes, which route to
// each other with them, show they are accepted).
func TestRouteNeedsToken(t *testing.T) {
	t.Parallel()
	n := startCluster(t, 3)[0] // routed with a token only clustertest knows
	addr := strings.TrimPrefix(n.RouteURL(), "nats://")
	route := func(creds string) string {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "INFO ") {
			t.Fatalf("route port said %q, %v; want INFO", line, err)
		}
		if _, err := c.Write([]byte(`CONNECT {"verbose":false,"pedantic":false,"name":"rogue","cluster":"c"` + creds + "}\r\nPING\r\n")); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after CONNECT: %v", err)
		}
		return line
	}
	for _, creds := range []string{"", `,"user":"croupier","pass":"wrong-token-0123456789"`} {
		if line := route(creds); !strings.Contains(line, "Authorization Violation") {
			t.Fatalf("route with credentials %q: got %q; want an authorization violation", creds, line)
		}
	}
}

// TestToken: the token file's checks, and a listening server with
// neither a token nor a data dir refuses to start.
func TestToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, body string
		mode       os.FileMode
		want       string
	}{
		{"open", "0123456789abcdef0123", 0o644, "chmod 600"},
		{"short", "short", 0o600, "use 16 to 512"},
		{"space", "0123456789 abcdef0123", 0o600, "printable ASCII"},
		{"ok", "0123456789abcdef0123\n", 0o600, ""},
	} {
		tok, err := cluster.ReadToken(write(tc.name, tc.body, tc.mode))
		if tc.want == "" {
			if err != nil || tok != strings.TrimSpace(tc.body) {
				t.Fatalf("%s: %q, %v", tc.name, tok, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: %v; want %q", tc.name, err, tc.want)
		}
	}
	if _, err := cluster.ReadToken(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing token file was accepted")
	}
	_, err := cluster.Start(t.Context(), cluster.Config{NodeID: "x", Listen: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "--nats-token-file") {
		t.Fatalf("listening without a token: %v; want an error naming --nats-token-file", err)
	}
}
