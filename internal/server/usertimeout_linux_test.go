package server

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The gRPC port's connections get TCP_USER_TIMEOUT, as gRPC's own TLS
// credentials gave them before TLS moved to the listener.
func TestUserTimeoutListener(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	lis := userTimeoutListener{raw}
	done := make(chan net.Conn, 1)
	go func() {
		c, err := lis.Accept()
		if err != nil {
			t.Error(err)
		}
		done <- c
	}()
	client, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c := <-done
	if c == nil {
		t.FailNow()
	}
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	if err := rc.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT) }); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if time.Duration(got)*time.Millisecond != keepaliveTimeout {
		t.Fatalf("TCP_USER_TIMEOUT %d ms, want %v", got, keepaliveTimeout)
	}
}
