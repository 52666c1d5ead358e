package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// wsConn is a minimal RFC 6455 client (text frames, no extensions), enough
// to talk to the player gateway as a game client does.
type wsConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialWS(t *testing.T, addr, path string) *wsConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	var k [16]byte
	_, _ = rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, addr, key); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(h[:]) {
		t.Fatalf("WebSocket upgrade at %s%s: %s", addr, path, resp.Status)
	}
	return &wsConn{t: t, conn: conn, r: r}
}

// send writes one masked text frame (payloads under 126 bytes).
func (c *wsConn) send(s string) {
	c.t.Helper()
	if len(s) >= 126 {
		c.t.Fatalf("wsConn.send: %d bytes; this client sends short frames only", len(s))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	f := append([]byte{0x81, 0x80 | byte(len(s))}, mask[:]...)
	for i := range len(s) {
		f = append(f, s[i]^mask[i%4])
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.conn.Write(f); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next data frame's payload (server frames are unmasked).
func (c *wsConn) read() string {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		c.t.Fatalf("ws read: %v", err)
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(c.r, e[:]); err != nil {
			c.t.Fatal(err)
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(c.r, e[:]); err != nil {
			c.t.Fatal(err)
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	if n > 1<<20 {
		c.t.Fatalf("ws frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.r, p); err != nil {
		c.t.Fatal(err)
	}
	return string(p)
}
