package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The heartbeat floor: what the cheapest Go server answering one small
// message per agent per heartbeat interval costs on this machine — a bare
// TCP echo (no TLS, HTTP/2, gRPC or protobuf; one goroutine per
// connection) in a process of its own, measured like the server: its CPU
// time from /proc over the idle window. Every N's idle CPU per heartbeat is
// printed next to it, so the two come from the same run and machine.

// floorMessage is the echoed message: about a tunnel ping's size.
const floorMessage = 16

// serveFloor is the echo process (`scale -floor-server`): it prints its
// address and echoes every connection until its standard input closes.
func serveFloor() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin) // the harness ended
		_ = ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil
		}
		go func() {
			defer c.Close()
			buf := make([]byte, floorMessage)
			for {
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		}()
	}
}

// heartbeatFloor runs the echo process with n connections, each sending
// one message per interval (spread evenly over the interval), and returns
// the echo process's CPU time per message over window.
func heartbeatFloor(ctx context.Context, n int, interval, window time.Duration) (time.Duration, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "-floor-server")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("floor server: %w", err)
	}
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", strings.TrimSpace(addr))
		if err != nil {
			return 0, fmt.Errorf("floor: dial: %w", err)
		}
		conns = append(conns, c)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i, c := range conns {
		wg.Go(func() {
			buf := make([]byte, floorMessage)
			t := time.NewTimer(time.Duration(i) * interval / time.Duration(n))
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				t.Reset(interval)
				if _, err := c.Write(buf); err != nil {
					return
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
			}
		})
	}
	select { // until every connection has sent once
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(interval):
	}
	c0, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(window):
	}
	c1, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	msgs := float64(n) * window.Seconds() / interval.Seconds()
	return time.Duration(float64(c1-c0) / msgs), nil
}

// procCPU is a process's CPU time (user + system) from /proc.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 12th and 13th of them, in clock ticks (100 Hz on Linux).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}
