package main

import (
	"bufio"
	"context"
	"log"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/croupier/croupier/api/tencentcloud/gse/grpcsdk"
)

// game implements GameServerGrpcSdkService, the callbacks GSE makes.
type game struct {
	grpcsdk.UnimplementedGameServerGrpcSdkServiceServer
	gse         *gseClient
	log         *log.Logger
	healthy     bool
	hang        bool
	sessionTime time.Duration

	mu      sync.Mutex
	session *grpcsdk.GameServerSession
	endOnce sync.Once
	done    chan struct{}
}

func (g *game) OnHealthCheck(context.Context, *grpcsdk.HealthCheckRequest) (*grpcsdk.HealthCheckResponse, error) {
	return &grpcsdk.HealthCheckResponse{HealthStatus: g.healthy}, nil
}

// OnStartGameServerSession keeps the session and activates it from inside
// the callback, as GSE's sample does.
func (g *game) OnStartGameServerSession(_ context.Context, req *grpcsdk.StartGameServerSessionRequest) (*grpcsdk.GseResponse, error) {
	s := req.GetGameServerSession()
	g.mu.Lock()
	g.session = s
	g.mu.Unlock()
	g.log.Printf("session %s (%s): %d players, data %q", s.GetGameServerSessionId(), s.GetName(), s.GetMaxPlayers(), s.GetGameServerSessionData())
	resp, err := g.gse.activate(s.GetGameServerSessionId(), s.GetMaxPlayers())
	if err == nil && resp.GetStatus() == grpcsdk.GseResponse_OK && g.sessionTime > 0 {
		id := s.GetGameServerSessionId()
		time.AfterFunc(g.sessionTime, func() { g.endSession(id) })
	}
	return resp, err
}

// OnProcessTerminate ends the session and the process.
func (g *game) OnProcessTerminate(_ context.Context, req *grpcsdk.ProcessTerminateRequest) (*grpcsdk.GseResponse, error) {
	g.log.Printf("terminate by %s", time.Unix(req.GetTerminationTime(), 0).Format(time.RFC3339))
	go g.end()
	return &grpcsdk.GseResponse{Status: grpcsdk.GseResponse_OK}, nil
}

func (g *game) endSession(id string) {
	g.mu.Lock()
	current := g.session != nil && g.session.GetGameServerSessionId() == id
	if current {
		g.session = nil
	}
	g.mu.Unlock()
	if !current {
		return
	}
	resp, err := g.gse.terminateSession(id)
	g.log.Printf("TerminateGameServerSession %s: %v %v", id, resp.GetStatus(), err)
}

// end: TerminateGameServerSession, ProcessEnding, then exit (unless the
// game was told to hang).
func (g *game) end() {
	g.endOnce.Do(func() {
		g.mu.Lock()
		s := g.session
		g.mu.Unlock()
		if s != nil {
			g.endSession(s.GetGameServerSessionId())
		}
		resp, err := g.gse.processEnding()
		g.log.Printf("ProcessEnding: %v %v", resp.GetStatus(), err)
		if !g.hang {
			close(g.done)
		}
	})
}

// servePlayers is the game's own protocol: a line "JOIN <playerSessionId>"
// answered "OK" or "ERR <reason>"; closing the connection leaves.
func (g *game) servePlayers(lis net.Listener) {
	for {
		c, err := lis.Accept()
		if err != nil {
			return
		}
		go g.player(c)
	}
}

func (g *game) player(c net.Conn) {
	defer c.Close()
	sc := bufio.NewScanner(c)
	if !sc.Scan() {
		return
	}
	cmd, ps, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
	g.mu.Lock()
	s := g.session
	g.mu.Unlock()
	if cmd != "JOIN" || s == nil {
		_, _ = c.Write([]byte("ERR no session\n"))
		return
	}
	gss := s.GetGameServerSessionId()
	resp, err := g.gse.acceptPlayer(gss, ps)
	if err != nil || resp.GetStatus() != grpcsdk.GseResponse_OK {
		_, _ = c.Write([]byte("ERR " + resp.GetErrorMessage() + "\n"))
		return
	}
	_, _ = c.Write([]byte("OK\n"))
	for sc.Scan() { // play until the client leaves
	}
	_, _ = g.gse.removePlayer(gss, ps)
}
