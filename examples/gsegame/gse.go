package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/croupier/croupier/api/tencentcloud/gse/grpcsdk"
)

// LOCAL_ADDRESS of GSE's samples.
const localAddress = "127.0.0.1:5758"

var pid = strconv.Itoa(os.Getpid())

// gseClient calls the agent's GseGrpcSdkService.
type gseClient struct {
	conn *grpc.ClientConn
	cli  grpcsdk.GseGrpcSdkServiceClient
}

func dialGSE() (*gseClient, error) {
	addr := localAddress
	if v := os.Getenv("GSE_SDK_ADDR"); v != "" {
		addr = v
	}
	// WaitForReady: a call made while the agent restarts waits for it (up
	// to the call's deadline) instead of failing at once.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)))
	if err != nil {
		return nil, err
	}
	return &gseClient{conn: conn, cli: grpcsdk.NewGseGrpcSdkServiceClient(conn)}, nil
}

func (c *gseClient) close() { _ = c.conn.Close() }

// callTimeout bounds every call to the agent.
const callTimeout = 15 * time.Second

// getContext adds the metadata every GSE call carries, as GSE's samples do
// (plus a deadline).
func getContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	ctx = metadata.AppendToOutgoingContext(ctx, "pid", pid)
	return metadata.AppendToOutgoingContext(ctx, "requestId", uuidV4()), cancel
}

func uuidV4() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (c *gseClient) processReady(logPaths []string, clientPort, grpcPort int32) (*grpcsdk.GseResponse, error) {
	ctx, cancel := getContext()
	defer cancel()
	return c.cli.ProcessReady(ctx, &grpcsdk.ProcessReadyRequest{LogPathsToUpload: logPaths, ClientPort: clientPort, GrpcPort: grpcPort})
}

func (c *gseClient) activate(id string, maxPlayers int32) (*grpcsdk.GseResponse, error) {
	ctx, cancel := getContext()
	defer cancel()
	return c.cli.ActivateGameServerSession(ctx, &grpcsdk.ActivateGameServerSessionRequest{GameServerSessionId: id, MaxPlayers: maxPlayers})
}

func (c *gseClient) acceptPlayer(gss, ps string) (*grpcsdk.GseResponse, error) {
	ctx, cancel := getContext()
	defer cancel()
	return c.cli.AcceptPlayerSession(ctx, &grpcsdk.AcceptPlayerSessionRequest{GameServerSessionId: gss, PlayerSessionId: ps})
}

func (c *gseClient) removePlayer(gss, ps string) (*grpcsdk.GseResponse, error) {
	ctx, cancel := getContext()
	defer cancel()
	return c.cli.RemovePlayerSession(ctx, &grpcsdk.RemovePlayerSessionRequest{GameServerSessionId: gss, PlayerSessionId: ps})
}

func (c *gseClient) terminateSession(gss string) (*grpcsdk.GseResponse, error) {
	ctx, cancel := getContext()
	defer cancel()
	return c.cli.TerminateGameServerSession(ctx, &grpcsdk.TerminateGameServerSessionRequest{GameServerSessionId: gss})
}

func (c *gseClient) processEnding() (*grpcsdk.GseResponse, error) {
	ctx, cancel := getContext()
	defer cancel()
	return c.cli.ProcessEnding(ctx, &grpcsdk.ProcessEndingRequest{})
}
