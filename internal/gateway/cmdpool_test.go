package gateway_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/croupier/croupier/api/netsvr"
	"github.com/croupier/croupier/internal/gateway"
)

// A business registered with processCmdGoroutineNum > 1 has its one-way
// commands run on a pool; a command with an answer waits for every earlier
// one, so answers come in request order and see all earlier commands.
func TestProcessCmdGoroutineNum(t *testing.T) {
	t.Parallel()
	g := startGateway(t, func(c *gateway.Config) { c.ConnOpenWorkerID = 1 })
	b := dialBiz(t, g)
	resp := &netsvr.RegisterResp{}
	b.call(netsvr.Cmd_Register, &netsvr.RegisterReq{WorkerId: 1, ServerId: 7, ProcessCmdGoroutineNum: 8}, resp)
	if resp.Code != netsvr.RegisterRespCode_Success {
		t.Fatalf("register: %v", resp)
	}
	const clients, subs = 10, 300
	ws := make([]*wsc, clients)
	ids := make([]string, clients)
	for i := range ws {
		ws[i] = dialWS(t, g)
		ids[i] = b.connOpen().UniqId
	}
	// Pipelined: 300 subscriptions, a CheckOnline in the middle, then
	// TopicCount; nothing is read until all are sent.
	for i := range subs {
		b.send(netsvr.Cmd_TopicSubscribe, &netsvr.TopicSubscribe{UniqId: ids[i%clients], Topics: []string{fmt.Sprintf("t%d", i)}})
		if i == subs/2 {
			b.send(netsvr.Cmd_CheckOnline, &netsvr.CheckOnlineReq{UniqIds: ids})
		}
	}
	b.send(netsvr.Cmd_TopicCount, &netsvr.UniqIdCountResp{})
	online := &netsvr.CheckOnlineResp{}
	b.recv(netsvr.Cmd_CheckOnline, online)
	if got, want := slices.Sorted(slices.Values(online.UniqIds)), slices.Sorted(slices.Values(ids)); !slices.Equal(got, want) {
		t.Fatalf("CheckOnline answered %v", got)
	}
	count := &netsvr.TopicCountResp{}
	b.recv(netsvr.Cmd_TopicCount, count)
	if count.Count != subs {
		t.Fatalf("TopicCount after %d pipelined subscriptions: %d", subs, count.Count)
	}
	// One-way data commands still reach the clients.
	b.send(netsvr.Cmd_SingleCast, &netsvr.SingleCast{UniqId: ids[3], Data: []byte("hello")})
	ws[3].expectData("hello")
}
