// Command gsegame is a game server written against Tencent GSE's gRPC SDK
// contract only — the generated tencentcloud.gse.grpcsdk protos and
// nothing of Croupier — as a GSE game would be. It runs unchanged under the
// Croupier agent, which is what it demonstrates (and what the fleet tests
// launch).
//
// Lifecycle, as in GSE's samples:
//
//  1. serve GameServerGrpcSdkService on a free port, listen for players on
//     another;
//  2. ProcessReady(logPathsToUpload, clientPort, grpcPort);
//  3. OnStartGameServerSession: keep the session and call
//     ActivateGameServerSession from inside the callback;
//  4. players connect to the client port and send "JOIN <playerSessionId>";
//     the game calls AcceptPlayerSession, and RemovePlayerSession when they
//     leave;
//  5. OnProcessTerminate: TerminateGameServerSession, ProcessEnding, exit.
//
// The agent is at 127.0.0.1:5758 as in GSE; $GSE_SDK_ADDR overrides it
// (the Croupier agent sets it for the processes it launches, so tests can
// run agents on other ports).
//
// Flags that make the game misbehave exist for the supervision tests:
//
//	-mode=noready     never call ProcessReady
//	-mode=hang        on OnProcessTerminate call ProcessEnding but do not exit
//	-unhealthy        answer OnHealthCheck with healthStatus=false
//	-session-time=D   end each session (TerminateGameServerSession) after D
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/croupier/croupier/api/tencentcloud/gse/grpcsdk"
)

func main() {
	mode := flag.String("mode", "normal", "normal, noready or hang")
	unhealthy := flag.Bool("unhealthy", false, "report healthStatus=false")
	logPath := flag.String("log", "gsegame.log", "log file, reported in ProcessReady.logPathsToUpload")
	sessionTime := flag.Duration("session-time", 0, "end each session after this long (0: never)")
	flag.Parse()

	logFile, err := os.OpenFile(*logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		log.Fatalf("open log: %v", err)
	}
	logger := log.New(logFile, fmt.Sprintf("gsegame[%d] ", os.Getpid()), log.LstdFlags|log.Lmicroseconds)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	gse, err := dialGSE()
	if err != nil {
		logger.Fatalf("dial GSE: %v", err)
	}
	defer gse.close()

	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		logger.Fatalf("listen grpc: %v", err)
	}
	clientLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		logger.Fatalf("listen clients: %v", err)
	}
	g := &game{gse: gse, log: logger, healthy: !*unhealthy, hang: *mode == "hang", sessionTime: *sessionTime, done: make(chan struct{})}
	srv := grpc.NewServer()
	grpcsdk.RegisterGameServerGrpcSdkServiceServer(srv, g)
	go func() { _ = srv.Serve(grpcLis) }()
	go g.servePlayers(clientLis)

	grpcPort, clientPort := grpcLis.Addr().(*net.TCPAddr).Port, clientLis.Addr().(*net.TCPAddr).Port
	if *mode != "noready" {
		resp, err := gse.processReady([]string{*logPath}, int32(clientPort), int32(grpcPort))
		if err != nil || resp.GetStatus() != grpcsdk.GseResponse_OK {
			logger.Fatalf("ProcessReady: %v %v", err, resp.GetErrorMessage())
		}
	}
	logger.Printf("ready: client port %d, grpc port %d", clientPort, grpcPort)

	select {
	case <-ctx.Done():
		logger.Printf("signal: ending")
		g.end()
	case <-g.done:
	}
	time.Sleep(100 * time.Millisecond) // let the last answers reach the agent
	srv.Stop()
	_ = clientLis.Close()
	logger.Printf("exit")
}
