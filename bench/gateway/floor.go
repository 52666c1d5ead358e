//go:build linux

package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// floor measures what no gateway can beat on this machine, the same way
// as the gateway: a separate process (this program with -floor-serve)
// holds n loopback TCP connections and, on each command, writes one
// 64-byte WebSocket frame to each of them — no WebSocket server, no hub,
// no business protocol — while the harness's epoll readers record the
// delivery latency and /proc gives the writer's CPU. With split 2 the
// writes of one fan-out are divided between two goroutines.
func floor(n, messages int, pace time.Duration) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-floor-serve", strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	out := bufio.NewReader(stdout)
	addr, err := out.ReadString('\n')
	if err != nil {
		return err
	}
	cs, err := dialTCP(strings.TrimSpace(addr), n)
	if err != nil {
		closeAll(cs)
		return err
	}
	if line, err := out.ReadString('\n'); err != nil || line != "ready\n" {
		closeAll(cs)
		return fmt.Errorf("floor server: %q %v", line, err)
	}
	var delivered atomic.Int64
	er, err := newEpollReaders(cs, 2, &delivered)
	if err != nil {
		closeAll(cs)
		return err
	}
	defer er.close()
	p := &proc{pid: cmd.Process.Pid}
	for _, split := range []int{1, 2} {
		_ = er.latencies()
		start0, cpu0 := delivered.Load(), p.cpu()
		for m := 0; m < messages; m++ {
			if _, err := fmt.Fprintf(stdin, "%d\n", split); err != nil {
				return err
			}
			time.Sleep(pace)
		}
		want := start0 + int64(messages*n)
		deadline := time.Now().Add(time.Minute)
		for delivered.Load() < want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		cpu, got := p.cpu()-cpu0, delivered.Load()-start0
		all := er.latencies()
		slices.Sort(all)
		pct := func(q float64) time.Duration {
			if len(all) == 0 {
				return 0
			}
			return all[int(q*float64(len(all)-1))]
		}
		fmt.Printf("floor, no gateway (a bare writer process, %d goroutine(s)), %d connections, %d x 64 B (paced 1 per %s): %d delivered; writer CPU %s = %.2f us per delivered message; latency p50 %s p99 %s max %s\n",
			split, n, messages, pace, got, cpu, float64(cpu.Microseconds())/float64(max(got, 1)),
			pct(0.5).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), pct(1).Round(10*time.Microsecond))
	}
	return nil
}

// dialTCP opens n plain TCP connections to addr.
func dialTCP(addr string, n int) ([]*wsConn, error) {
	cs := make([]*wsConn, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return cs, err
		}
		cs = append(cs, &wsConn{conn: c, r: bufio.NewReader(c)})
	}
	return cs, nil
}

// floorServe is the writer process of floor: it prints its address,
// accepts n connections, prints "ready", then for each line K on stdin
// writes one timestamped 64-byte frame to every connection with K
// goroutines. It exits when stdin closes.
func floorServe(n int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	conns := make([]net.Conn, 0, n)
	for len(conns) < n {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	_ = ln.Close()
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		split, err := strconv.Atoi(in.Text())
		if err != nil || split < 1 {
			return errors.New("floor-serve: bad command " + in.Text())
		}
		frame := make([]byte, 66)
		frame[0], frame[1] = 0x81, 64
		binary.BigEndian.PutUint64(frame[2:], uint64(time.Now().UnixNano()))
		var wg sync.WaitGroup
		per := (len(conns) + split - 1) / split
		for s := 0; s < split; s++ {
			wg.Add(1)
			go func(part []net.Conn) {
				defer wg.Done()
				for _, c := range part {
					_, _ = c.Write(frame)
				}
			}(conns[min(s*per, len(conns)):min((s+1)*per, len(conns))])
		}
		wg.Wait()
	}
	for _, c := range conns {
		_ = c.Close()
	}
	if err := in.Err(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
